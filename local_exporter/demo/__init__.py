"""`local-exporter demo`: the whole product working on one machine, in minutes.

A simulated fleet mid-rollout behind real bridges, a real Prometheus evaluating the generated
rules, a real Alertmanager routing the generated alerts to a webhook receiver that prints them.
"""
