"""Grafana's file provisioning for the bundle: the Prometheus data source and a dashboard
provider that loads dashboards/*.json read-only. The compose stack mounts both (compose/)."""

from __future__ import annotations

from typing import Any

from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.yamltext import dump

DIRECTORY = "compose/grafana/provisioning"
DATASOURCE_PATH = f"{DIRECTORY}/datasources/prometheus.yml"
DASHBOARDS_PATH = f"{DIRECTORY}/dashboards/local-exporter.yml"
#: Where the Grafana container finds the dashboards (the compose file mounts dashboards/ there).
DASHBOARDS_MOUNT = "/var/lib/grafana/dashboards/local-exporter"
#: The Prometheus of the compose stack, by its service name.
PROMETHEUS_URL = "http://prometheus:9090"
#: The uid the data source is provisioned with: the dashboards' `datasource` variable picks it
#: as the default Prometheus.
DATASOURCE_UID = "prometheus"


def datasource(config: BundleConfig, *, name: str = "Prometheus", url: str = PROMETHEUS_URL) -> dict[str, Any]:
    """The data source the dashboards read (by its uid), at `url`: a Prometheus, or a store
    that answers Prometheus' query API (VictoriaMetrics, bundle/scale_out.py)."""
    return {
        "name": name,
        "uid": DATASOURCE_UID,
        "type": "prometheus",
        "access": "proxy",
        "url": url,
        "isDefault": True,
        "editable": False,
        "jsonData": {
            # The scrape interval: Grafana's $__rate_interval is four times it at least.
            "timeInterval": config.scrape_interval,
            "prometheusType": "Prometheus",
            "httpMethod": "POST",
        },
    }


def datasource_text(config: BundleConfig) -> str:
    return dump({"apiVersion": 1, "datasources": [datasource(config)]})


def dashboards_text(config: BundleConfig) -> str:
    provider = {
        "name": "local-exporter",
        "folder": config.dashboard_folder,
        "type": "file",
        "disableDeletion": True,
        "allowUiUpdates": False,
        "updateIntervalSeconds": 60,
        "options": {"path": DASHBOARDS_MOUNT, "foldersFromFilesStructure": False},
    }
    return dump({"apiVersion": 1, "providers": [provider]})


def render(config: BundleConfig) -> dict[str, str]:
    return {DATASOURCE_PATH: datasource_text(config), DASHBOARDS_PATH: dashboards_text(config)}
