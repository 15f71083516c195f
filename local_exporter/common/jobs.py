"""The Prometheus job and selector names the product uses by default, declared once.

The simulator writes scrape configs and backfills with these jobs, the example prometheus.yml
scrapes them, and the bundle's rules select them unless its config says otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: The update agents, scraped through each host's bridge.
AGENT_JOB = "zincati"
#: Flatcar's update agent, scraped through each Flatcar host's bridge (an os_update selector).
FLATCAR_AGENT_JOB = "update_engine"
#: The bridges' own /metrics.
BRIDGE_JOB = "local_exporter"
#: The FleetLock server.
AIRLOCK_JOB = "airlock"
#: Nebraska, Flatcar's update server (its own /metrics).
NEBRASKA_JOB = "nebraska"
#: The bridge next to Prometheus that reads the update servers (kinds cincinnati and nebraska).
RELEASE_FEED_JOB = "release_feed"
#: The release feed bridge's selectors: the Fedora CoreOS stream (kind cincinnati) and the
#: Flatcar tracks (kind nebraska).
RELEASE_FEED_SELECTOR = "fedora_coreos"
FLATCAR_RELEASE_FEED_SELECTOR = "flatcar"
#: kube-state-metrics (FLUO's node annotations) and Kured, where Flatcar runs Kubernetes nodes.
KUBE_STATE_METRICS_JOB = "kube-state-metrics"
KURED_JOB = "kured"
#: The bridge selector that reads Zincati's socket.
AGENT_SELECTOR = "zincati"
#: The bridge selector of a Flatcar host (os_update, reading update_engine).
FLATCAR_AGENT_SELECTOR = "update_engine"
#: The airlock's `instance` label, in the simulator's scrape config and its backfills.
AIRLOCK_INSTANCE = "airlock"


def release_feed_job(target: str, selectors: Sequence[str]) -> dict[str, Any]:
    """The scrape job of a release feed bridge at `target` serving `selectors`: one target per
    selector (Prometheus passes `__param_selector` as `?selector=`), told apart by a `selector`
    label, since they share an address."""
    return {
        "job_name": RELEASE_FEED_JOB,
        "metrics_path": "/bridge",
        "static_configs": [
            {"targets": [target], "labels": {"__param_selector": name, "selector": name}} for name in selectors
        ],
    }
