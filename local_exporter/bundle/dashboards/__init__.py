"""The bundle's Grafana dashboards: one module per dashboard, all through `style`.

DASHBOARDS is the one table of them: file name -> the module's `dashboard(config)`.
"""

from __future__ import annotations

from collections.abc import Callable

from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.dashboards import bridge, errors, host, overview, reboots, status, versions
from local_exporter.bundle.dashboards.style import Dashboard, to_json

#: Where the dashboards are written, and where Grafana's provisioning reads them.
DIRECTORY = "dashboards"

DASHBOARDS: dict[str, Callable[[BundleConfig], Dashboard]] = {
    "rollout-overview.json": overview.dashboard,
    "version-breakdown.json": versions.dashboard,
    "status-breakdown.json": status.dashboard,
    "host.json": host.dashboard,
    "agent-errors.json": errors.dashboard,
    "reboot-coordination.json": reboots.dashboard,
    "bridge-health.json": bridge.dashboard,
}


def render(config: BundleConfig) -> dict[str, str]:
    """Relative path -> JSON text of every dashboard."""
    return {f"{DIRECTORY}/{name}": to_json(build(config).build(config)) for name, build in DASHBOARDS.items()}
