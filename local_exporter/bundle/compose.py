"""The compose stack: the bridge (built from the project's Containerfile), a simulated fleet under
the `demo` profile, Prometheus with the generated rules, Alertmanager with the generated config,
a receiver that prints what Alertmanager sends, and Grafana with the generated provisioning and
dashboards.

Inside a container 127.0.0.1 is the container itself, so the stack's Alertmanager gets a config
of its own (compose/alertmanager/alertmanager.yml): every receiver URL on a loopback address,
as the defaults are, goes to the `receiver` service; any other URL is kept.

Every mount is read-only except the servers' own data volumes; every service has a healthcheck
and starts after what it reads is healthy. The simulated fleet shares its file_sd target files
with Prometheus through a volume, so without the `demo` profile Prometheus simply has no
simulated targets.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from local_exporter.bundle import alertmanager, dashboards, provisioning
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.prometheus_config import BRIDGE_PORT, job_name
from local_exporter.bundle.yamltext import body, comment, document
from local_exporter.common import jobs

COMPOSE_PATH = "compose/compose.yaml"
PROMETHEUS_PATH = "compose/prometheus/prometheus.yml"
ALERTMANAGER_PATH = "compose/alertmanager/alertmanager.yml"
#: Images of the servers, pinned (Grafana's matches the schema the dashboards are tested against).
PROMETHEUS_IMAGE = "docker.io/prom/prometheus:v2.53.4"
ALERTMANAGER_IMAGE = "docker.io/prom/alertmanager:v0.27.0"
GRAFANA_IMAGE = "docker.io/grafana/grafana:11.6.1"
#: The service that prints the notifications sent to loopback receiver URLs (`local-exporter receive`).
RECEIVER = "receiver"
RECEIVER_PORT = 9099
LOOPBACK = frozenset(("127.0.0.1", "localhost", "::1"))
#: The stack's cluster name (its Prometheus' external label).
CLUSTER = "compose"
#: Where the simulated fleet writes (and Prometheus reads) its file_sd targets.
SIM_DIRECTORY = "/sim"
PYTHON = "/opt/local_exporter/bin/python"
#: The Zincati socket directory on a Fedora CoreOS host, and nothing broader.
ZINCATI_SOCKETS = "/run/zincati/public"
#: The system bus' socket directory (rpm-ostree), and where the os_update selector keeps its
#: boot record: the bridge's mounts besides Zincati's sockets.
DBUS_DIRECTORY = "/run/dbus"
STATE_DIRECTORY = "/var/lib/local_exporter"
#: The simulated fleet: every bridge on 0.0.0.0, reached by the service's name.
FLEET_COMMAND = (
    *("simulate", "--preset", "demo", "--address", "0.0.0.0", "--target-host", "fleet"),
    *("--dir", SIM_DIRECTORY, "--bridge-port-base", "19100", "--airlock-port", "19099"),
)


def http_check(url: str, *, python: bool = False) -> dict[str, Any]:
    probe = (
        [PYTHON, "-c", f"import urllib.request; urllib.request.urlopen({url!r}, timeout=3)"]
        if python
        else ["wget", "-q", "-O", "/dev/null", url]
    )
    return {"test": ["CMD", *probe], "interval": "10s", "timeout": "5s", "retries": 5, "start_period": "20s"}


def healthy(*services: str) -> dict[str, Any]:
    return {service: {"condition": "service_healthy"} for service in services}


def compose_data(config: BundleConfig) -> dict[str, Any]:
    provisioning_mount = provisioning.DASHBOARDS_MOUNT
    return {
        "services": {
            "bridge": {
                "build": {"context": "..", "dockerfile": "Containerfile"},
                "image": config.image,
                "restart": "unless-stopped",
                # The agent's group owns Zincati's socket directory; the image runs as nobody.
                "group_add": [str(config.agent_group_id)],
                "ports": [f"{BRIDGE_PORT}:{BRIDGE_PORT}"],
                "volumes": [
                    f"{ZINCATI_SOCKETS}:{ZINCATI_SOCKETS}:ro",
                    # rpm-ostree over the system bus, and the os_update selector's boot record.
                    f"{DBUS_DIRECTORY}:{DBUS_DIRECTORY}:ro",
                    f"bridge-state:{STATE_DIRECTORY}",
                ],
                "healthcheck": http_check(f"http://127.0.0.1:{BRIDGE_PORT}/-/healthy", python=True),
            },
            "fleet": {
                "profiles": ["demo"],
                "image": config.image,
                "depends_on": healthy("bridge"),
                "command": list(FLEET_COMMAND),
                "volumes": [f"sim:{SIM_DIRECTORY}"],
                "healthcheck": http_check("http://127.0.0.1:19100/-/healthy", python=True),
            },
            "prometheus": {
                "image": PROMETHEUS_IMAGE,
                "restart": "unless-stopped",
                "depends_on": healthy("bridge", "alertmanager"),
                "command": [
                    "--config.file=/etc/prometheus/prometheus.yml",
                    "--storage.tsdb.path=/prometheus",
                    "--storage.tsdb.retention.time=30d",
                ],
                "ports": ["9090:9090"],
                "volumes": [
                    "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro",
                    "../prometheus/rules:/etc/prometheus/rules:ro",
                    f"sim:{SIM_DIRECTORY}:ro",
                    "prometheus-data:/prometheus",
                ],
                "healthcheck": http_check("http://127.0.0.1:9090/-/ready"),
            },
            "alertmanager": {
                "image": ALERTMANAGER_IMAGE,
                "restart": "unless-stopped",
                "command": ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"],
                "ports": ["9093:9093"],
                "volumes": [
                    "./alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro",
                    "../alertmanager/templates:/etc/alertmanager/templates:ro",
                    "alertmanager-data:/alertmanager",
                ],
                "healthcheck": http_check("http://127.0.0.1:9093/-/ready"),
            },
            RECEIVER: {
                "image": config.image,
                "restart": "unless-stopped",
                "command": ["receive", "--address", "0.0.0.0", "--port", str(RECEIVER_PORT)],
                "healthcheck": http_check(f"http://127.0.0.1:{RECEIVER_PORT}/-/healthy", python=True),
            },
            "grafana": {
                "image": GRAFANA_IMAGE,
                "restart": "unless-stopped",
                "depends_on": healthy("prometheus"),
                "environment": {
                    "GF_AUTH_ANONYMOUS_ENABLED": "true",
                    "GF_AUTH_ANONYMOUS_ORG_ROLE": "Viewer",
                    "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH": f"{provisioning_mount}/rollout-overview.json",
                },
                "ports": ["3000:3000"],
                "volumes": [
                    "./grafana/provisioning:/etc/grafana/provisioning:ro",
                    f"../{dashboards.DIRECTORY}:{provisioning_mount}:ro",
                    "grafana-data:/var/lib/grafana",
                ],
                "healthcheck": http_check("http://127.0.0.1:3000/api/health"),
            },
        },
        "volumes": {"sim": {}, "bridge-state": {}, "prometheus-data": {}, "alertmanager-data": {}, "grafana-data": {}},
    }


def prometheus_data(config: BundleConfig) -> dict[str, Any]:
    def targets(name: str) -> list[dict[str, Any]]:
        return [{"files": [f"{SIM_DIRECTORY}/prometheus/{name}.json"], "refresh_interval": "30s"}]

    bridge = [{"targets": [f"bridge:{BRIDGE_PORT}"]}]
    return {
        "global": {
            "scrape_interval": config.scrape_interval,
            "scrape_timeout": "10s",
            "evaluation_interval": config.scrape_interval,
            "external_labels": {config.cluster_label: CLUSTER},
        },
        "rule_files": ["/etc/prometheus/rules/*.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": ["alertmanager:9093"]}]}]},
        "scrape_configs": [
            {
                "job_name": job_name(config.agent_selector),
                "metrics_path": "/bridge",
                "params": {"selector": [jobs.AGENT_SELECTOR]},
                "static_configs": bridge,
                "file_sd_configs": targets("bridges"),
            },
            {
                "job_name": job_name(config.bridge_selector),
                "static_configs": bridge,
                "file_sd_configs": targets("bridges"),
            },
            {"job_name": job_name(config.airlock_selector), "file_sd_configs": targets("airlock")},
        ],
    }


def in_stack(url: str) -> str:
    """A receiver URL as the stack's Alertmanager must use it: loopback means the receiver service."""
    parts = urlsplit(url)
    if parts.hostname not in LOOPBACK:
        return url
    return urlunsplit(parts._replace(netloc=f"{RECEIVER}:{RECEIVER_PORT}"))


def alertmanager_config(config: BundleConfig) -> BundleConfig:
    """`config` with its receivers reachable from the stack's Alertmanager."""
    receivers = config.receivers
    urls = {f.name: in_stack(getattr(receivers, f.name)) for f in fields(receivers)}
    return replace(config, receivers=replace(receivers, **urls))


def compose_text(config: BundleConfig) -> str:
    return document(
        [
            comment(
                "The whole bundle in one stack: `docker compose up` (with `--profile demo`, a simulated fleet too).\n"
                "Run from this directory; the bridge reads the host's Zincati socket directory read-only, in the\n"
                "agent's group (agent_group_id in the bundle config: `getent group zincati` on the host)."
            ),
            body(compose_data(config)),
        ]
    )


def prometheus_text(config: BundleConfig) -> str:
    return document(
        [
            comment("Prometheus of the compose stack: the bridge service, and the simulated fleet's file_sd targets."),
            body(prometheus_data(config)),
        ]
    )


def render(config: BundleConfig) -> dict[str, str]:
    return {
        COMPOSE_PATH: compose_text(config),
        PROMETHEUS_PATH: prometheus_text(config),
        ALERTMANAGER_PATH: alertmanager.config_text(alertmanager_config(config)),
    }
