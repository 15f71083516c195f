"""Group os-update-meta: the alerting pipeline itself (a dead man's switch)."""

from __future__ import annotations

from local_exporter.bundle.alerts.alert import Alert
from local_exporter.bundle.config import BundleConfig


def alerts(config: BundleConfig) -> list[Alert]:
    return [
        Alert(
            "Heartbeat",
            "info",
            "vector(1)",
            "The alerting pipeline is alive.",
            "Always firing: a dead man's switch receiver pages when it stops arriving.",
        ),
    ]
