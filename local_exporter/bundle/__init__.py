"""The monitoring bundle: rules, alerts, Alertmanager config and dashboards, generated from one config object."""
