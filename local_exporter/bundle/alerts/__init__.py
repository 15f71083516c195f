"""Alerting rules: page when a rollout goes wrong, not for noise.

Every alert: the bundle's CamelCase prefix, `severity` critical/warning/info, a static `summary`,
a templated `description`, and a `runbook_url` to its section of docs/runbooks.md. Gauges are
read through `*_over_time` so that one failed scrape neither fires nor resolves an alert; error
counters through `increase`/`rate`, which are absent (not zero) while a family has never moved
and which handle the reset of every counter at a reboot. Per-host alerts carry `instance` so
that Alertmanager can inhibit them while that host's agent or bridge is down.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from local_exporter.bundle.alerts import agents, bridge, meta, releases, rollout
from local_exporter.bundle.alerts.alert import Alert
from local_exporter.bundle.config import BundleConfig

#: The one table of alert groups: Prometheus group name -> the module's `alerts(config)`.
GROUPS: dict[str, Callable[[BundleConfig], list[Alert]]] = {
    "os-update-bridge": bridge.alerts,
    "os-update-agents": agents.alerts,
    "os-update-rollout": rollout.alerts,
    "os-update-releases": releases.alerts,
    "os-update-meta": meta.alerts,
}


def alert_groups(config: BundleConfig) -> list[dict[str, Any]]:
    return [{"name": name, "rules": [a.rule(config) for a in alerts(config)]} for name, alerts in GROUPS.items()]


def vmalert_alert_groups(config: BundleConfig) -> list[dict[str, Any]]:
    """The alert groups for vmalert before 1.91, which refuses a whole file for `keep_firing_for`
    (one alert uses it, to ride out one failed scrape): the same rules without that field."""
    return [
        {**group, "rules": [{k: v for k, v in rule.items() if k != "keep_firing_for"} for rule in group["rules"]]}
        for group in alert_groups(config)
    ]
