"""The dashboards for a Grafana that Kubernetes provisions: ConfigMaps for the dashboard sidecar of
kube-prometheus-stack's Grafana, and GrafanaDashboard resources for grafana-operator v5.

Both hold dashboards/<name>.json unchanged, one object per dashboard: the Grafana chart recommends
one dashboard per ConfigMap, and one object per dashboard keeps each far below Kubernetes' size
limits whatever the others weigh.
"""

from __future__ import annotations

from typing import Any

from local_exporter.bundle import dashboards
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.kubernetes import NAME
from local_exporter.bundle.yamltext import body, comment, document

CONFIGMAPS_PATH = "deploy/kubernetes/dashboards-configmaps.yaml"
GRAFANADASHBOARDS_PATH = "deploy/kubernetes/grafanadashboards.yaml"
LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": "dashboards"}

#: What kube-prometheus-stack's Grafana sidecar selects ConfigMaps by: its values set
#: `grafana.sidecar.dashboards.label: grafana_dashboard` and `labelValue: "1"`
#: (prometheus-community/helm-charts, charts/kube-prometheus-stack/values.yaml, chart 88.5.3).
SIDECAR_LABELS = {"grafana_dashboard": "1"}
#: The annotation k8s-sidecar reads a ConfigMap's directory from when the Grafana chart's
#: `sidecar.dashboards.folderAnnotation` is unset, as it is by default (kiwigrid/k8s-sidecar:
#: README, `FOLDER_ANNOTATION`, and src/sidecar.py). Its value is a directory under the sidecar's
#: folder, which Grafana turns into a folder of that name with `foldersFromFilesStructure`.
FOLDER_ANNOTATION = "k8s-sidecar-target-directory"
#: The labels a `Grafana` resource must carry for grafana-operator to import the dashboards into
#: it: the operator's quick start (docs/docs/quick-start.md) labels its Grafana so, which makes
#: it the label users of the operator are likeliest to have already.
INSTANCE_LABELS = {"dashboards": "grafana"}


def _named(config: BundleConfig) -> list[tuple[str, str, str]]:
    """(object name, file name, JSON text) of every dashboard, in DASHBOARDS' order."""
    texts = dashboards.render(config)
    return [
        (f"{NAME}-{file.removesuffix('.json')}", file, texts[f"{dashboards.DIRECTORY}/{file}"])
        for file in dashboards.DASHBOARDS
    ]


def configmaps(config: BundleConfig) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "labels": {**LABELS, **SIDECAR_LABELS},
                # A relative directory: the sidecar puts it under its own folder.
                "annotations": {FOLDER_ANNOTATION: config.dashboard_folder},
            },
            # The key is the file the sidecar writes; Grafana reads only *.json.
            "data": {file: text},
        }
        for name, file, text in _named(config)
    ]


def grafanadashboards(config: BundleConfig) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "grafana.integreatly.org/v1beta1",
            "kind": "GrafanaDashboard",
            "metadata": {"name": name, "labels": LABELS},
            "spec": {
                "instanceSelector": {"matchLabels": INSTANCE_LABELS},
                "folder": config.dashboard_folder,
                # The JSON itself, not a configMapRef: the sidecar's ConfigMaps are not needed
                # beside the operator, and would be picked up twice where both run.
                "json": text,
            },
        }
        for name, _file, text in _named(config)
    ]


def configmaps_text(config: BundleConfig) -> str:
    labels = ", ".join(f'{k}: "{v}"' for k, v in SIDECAR_LABELS.items())
    header = comment(
        "The dashboards for kube-prometheus-stack's Grafana sidecar (docs/deploy.md), one ConfigMap each,\n"
        f"labelled {labels}. Grafana files them in {config.dashboard_folder!r} with the chart's\n"
        "grafana.sidecar.dashboards.provider.foldersFromFilesStructure=true."
    )
    return document([header, "---\n".join(body(m) for m in configmaps(config))])


def grafanadashboards_text(config: BundleConfig) -> str:
    labels = ", ".join(f"{k}: {v}" for k, v in INSTANCE_LABELS.items())
    header = comment(
        "The dashboards for grafana-operator v5 (docs/deploy.md): apply them in the namespace of the\n"
        f"Grafana resource that should show them, and label that resource {labels}."
    )
    return document([header, "---\n".join(body(m) for m in grafanadashboards(config))])


def render(config: BundleConfig) -> dict[str, str]:
    return {CONFIGMAPS_PATH: configmaps_text(config), GRAFANADASHBOARDS_PATH: grafanadashboards_text(config)}
