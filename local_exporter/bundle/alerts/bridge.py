"""Group os-update-bridge: the bridges themselves (down, failing selectors, refused configs)."""

from __future__ import annotations

from local_exporter.bundle import names
from local_exporter.bundle.alerts.alert import Alert
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.rules import by, on, selected


def alerts(config: BundleConfig) -> list[Alert]:
    host = config.host_labels
    bridge = config.bridge_selector
    requests = names.BRIDGE_REQUESTS
    failures = selected(requests, bridge, 'outcome!~"success|cancelled"')
    window = config.selector_failing_window
    failed = f"sum {by((*host, 'selector'))} (rate({failures}[{window}]))"
    total = f"sum {by((*host, 'selector'))} (rate({selected(requests, bridge)}[{window}]))"
    return [
        Alert(
            "BridgeDown",
            "critical",
            f"max_over_time({selected(names.UP, bridge)}[{config.down_window}]) == 0",
            "A host's bridge cannot be scraped.",
            "The bridge on {{ $labels.instance }} has not answered a scrape for "
            f"{config.down_window}: "
            "nothing is known of that host's updates.",
            config.bridge_down_for,
        ),
        Alert(
            "BridgeSelectorFailing",
            "warning",
            f"{failed} / {on((*host, 'selector'))} {total} > 0.5",
            "A bridge selector fails most scrapes.",
            "Selector {{ $labels.selector }} on {{ $labels.instance }} failed {{ $value | humanizePercentage }} "
            f"of its scrapes over {window}, for {config.selector_failing_for} now.",
            config.selector_failing_for,
        ),
        Alert(
            "BridgeConfigRefused",
            "warning",
            f"max_over_time({selected(names.BRIDGE_RELOAD_SUCCESSFUL, bridge)}[{config.gauge_window}]) == 0 or "
            f"max_over_time({selected(names.BRIDGE_WEB_CONFIG_RELOAD_SUCCESSFUL, bridge)}[{config.gauge_window}]) == 0",
            "A bridge refused its changed config and serves the previous one.",
            "The bridge on {{ $labels.instance }} refused a changed config or web config file "
            "(SIGHUP, POST /-/reload, or a web config change): it still serves the previous one, "
            "and will not pick the change up until the file is fixed.",
            config.reload_failed_for,
        ),
    ]
