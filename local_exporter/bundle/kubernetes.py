"""Kubernetes manifests: the bridge as a DaemonSet on every node, a headless Service, a PodMonitor
for the Prometheus Operator, and a PrometheusRule holding the same rules as prometheus/rules/.

The pods mount the node's Zincati socket directory and system bus directory read-only (rpm-ostree
lets any user read it) and the os_update boot record's directory, run as an unprivileged user
with the agent's group, and are scraped by their node's name as `instance`,
so the rules, alerts and dashboards see the same hosts as with a static scrape config.
"""

from __future__ import annotations

from typing import Any

from local_exporter.bundle.alerts import alert_groups
from local_exporter.bundle.compose import DBUS_DIRECTORY, STATE_DIRECTORY, ZINCATI_SOCKETS
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.prometheus_config import BRIDGE_PORT, job_name
from local_exporter.bundle.rules import recording_rules
from local_exporter.bundle.yamltext import body, comment, document
from local_exporter.common import jobs

MANIFESTS_PATH = "deploy/kubernetes/local-exporter.yaml"
RULES_PATH = "deploy/kubernetes/prometheusrule.yaml"
NAME = "local-exporter"
LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": "bridge"}
#: The unprivileged user the container runs as (the image's `nobody`).
USER_ID = 65534


def _daemonset(config: BundleConfig) -> dict[str, Any]:
    probe = {"httpGet": {"path": "/-/healthy", "port": "http"}, "periodSeconds": 30, "timeoutSeconds": 5}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": NAME, "labels": LABELS},
        "spec": {
            "selector": {"matchLabels": LABELS},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}},
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    # Every node updates itself, control-plane nodes included.
                    "tolerations": [{"operator": "Exists"}],
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": USER_ID,
                        "runAsGroup": USER_ID,
                        "supplementalGroups": [config.agent_group_id],
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "bridge",
                            "image": config.image,
                            "args": ["serve", "--config", "/etc/local_exporter/config.toml"],
                            "ports": [{"name": "http", "containerPort": BRIDGE_PORT, "protocol": "TCP"}],
                            "livenessProbe": probe,
                            "readinessProbe": {**probe, "httpGet": {"path": "/-/ready", "port": "http"}},
                            "resources": {
                                "requests": {"cpu": "10m", "memory": "32Mi"},
                                "limits": {"memory": "128Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [
                                {"name": "zincati", "mountPath": ZINCATI_SOCKETS, "readOnly": True},
                                # rpm-ostree over the system bus (kinds rpm_ostree, os_update).
                                {"name": "dbus", "mountPath": DBUS_DIRECTORY, "readOnly": True},
                                # The os_update boot record must outlive the pod: a host path.
                                {"name": "state", "mountPath": STATE_DIRECTORY},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "zincati", "hostPath": {"path": ZINCATI_SOCKETS, "type": "Directory"}},
                        {"name": "dbus", "hostPath": {"path": DBUS_DIRECTORY, "type": "Directory"}},
                        {"name": "state", "hostPath": {"path": STATE_DIRECTORY, "type": "DirectoryOrCreate"}},
                    ],
                },
            },
        },
    }


def _service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": NAME, "labels": LABELS},
        "spec": {
            "clusterIP": "None",
            "selector": LABELS,
            "ports": [{"name": "http", "port": BRIDGE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _podmonitor(config: BundleConfig) -> dict[str, Any]:
    def endpoint(job: str, path: str, params: dict[str, list[str]] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"port": "http", "path": path, "interval": config.scrape_interval}
        if params:
            out["params"] = params
        # Each node is its own `instance`, as with a static scrape config of the hosts.
        out["relabelings"] = [
            {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "instance"},
            {"targetLabel": "job", "replacement": job},
        ]
        return out

    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": NAME, "labels": LABELS},
        "spec": {
            "selector": {"matchLabels": LABELS},
            "podMetricsEndpoints": [
                endpoint(job_name(config.agent_selector), "/bridge", {"selector": [jobs.AGENT_SELECTOR]}),
                endpoint(job_name(config.bridge_selector), "/metrics"),
            ],
        },
    }


def _prometheusrule(config: BundleConfig) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": NAME, "labels": LABELS},
        "spec": {"groups": [*recording_rules(config), *alert_groups(config)]},
    }


def manifests(config: BundleConfig) -> list[dict[str, Any]]:
    return [_daemonset(config), _service(), _podmonitor(config)]


def manifests_text(config: BundleConfig) -> str:
    header = comment(
        "The bridge on every node (docs/deploy.md): `kubectl apply -n monitoring -f local-exporter.yaml`.\n"
        f"Set supplementalGroups to the nodes' zincati group (`getent group zincati`; {config.agent_group_id} here)."
    )
    return document([header, "---\n".join(body(m) for m in manifests(config))])


def rules_text(config: BundleConfig) -> str:
    header = comment("The bundle's recording rules and alerts for the Prometheus Operator (prometheus/rules/).")
    return document([header, body(_prometheusrule(config))])


def render(config: BundleConfig) -> dict[str, str]:
    return {MANIFESTS_PATH: manifests_text(config), RULES_PATH: rules_text(config)}
