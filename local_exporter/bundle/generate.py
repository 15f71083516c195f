"""Write the bundle's files from a BundleConfig, or check that the committed ones match.

Output is deterministic (stable order, block-style multi-line expressions, a trailing
newline), so `--check` can compare byte for byte.
"""

from __future__ import annotations

from pathlib import Path

from local_exporter.bundle import (
    alertmanager,
    compose,
    dashboards,
    fcos,
    grafana_k8s,
    kubernetes,
    prometheus_config,
    provisioning,
    scale_out,
)
from local_exporter.bundle.alerts import alert_groups, vmalert_alert_groups
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.rules import recording_rules
from local_exporter.bundle.yamltext import HEADER, body, comment, document, dump

VMALERT_ALERTS_PATH = "prometheus/vmalert/alerts.yml"

__all__ = ["HEADER", "differences", "dump", "refusal", "render", "write"]


def render(config: BundleConfig) -> dict[str, str]:
    """Relative path -> content, for every generated file."""
    return {
        "prometheus/rules/recording.yml": dump({"groups": recording_rules(config)}),
        "prometheus/rules/alerts.yml": dump({"groups": alert_groups(config)}),
        VMALERT_ALERTS_PATH: document(
            [
                comment(
                    "The alerts of ../rules/alerts.yml for vmalert before 1.91 (Debian's is 1.79), which refuses\n"
                    "keep_firing_for: without it, RebootPending can resolve on one failed scrape and fire again\n"
                    "at its next `for:`. vmalert 1.91 or later takes ../rules/alerts.yml (docs/deploy.md)."
                ),
                body({"groups": vmalert_alert_groups(config)}),
            ]
        ),
        prometheus_config.CONFIG_PATH: prometheus_config.config_text(config),
        alertmanager.CONFIG_PATH: alertmanager.config_text(config),
        alertmanager.TEMPLATE_PATH: alertmanager.template_text(config),
        **dashboards.render(config),
        **provisioning.render(config),
        **compose.render(config),
        **scale_out.render(config),
        **kubernetes.render(config),
        **fcos.render(config),
        **grafana_k8s.render(config),
    }


def refusal(root: Path, config: BundleConfig) -> str | None:
    """Why the bundle may not be written under `root`, or None: it may go into a directory that
    does not exist yet, is empty, or holds a bundle already (one of its files). Anything else is
    someone's directory the bundle would scatter its folders into."""
    if not root.exists():
        return None
    if not root.is_dir():
        return f"{root} is not a directory"
    if any(root.iterdir()) and not any((root / relative).is_file() for relative in render(config)):
        return f"{root} holds other files and no bundle"
    return None


def write(root: Path, config: BundleConfig) -> list[str]:
    """Write every file under `root`; the paths written."""
    written = []
    for relative, content in render(config).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
            written.append(relative)
    return written


def differences(root: Path, config: BundleConfig) -> list[str]:
    """The generated files that are missing or differ under `root`."""
    return [
        relative
        for relative, content in render(config).items()
        if not (root / relative).exists() or (root / relative).read_text(encoding="utf-8") != content
    ]
