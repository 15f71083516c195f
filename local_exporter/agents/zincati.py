"""Zincati, the Fedora CoreOS update agent: the metric families it serves on its socket
(`/run/zincati/public/metrics.promsock`), with their HELP text and type.

The bridge's adapters, the simulator (sim/zincati.py renders exactly these) and the bundle's
rules and dashboards (bundle/names.py) read this table, so none can name a family Zincati lacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Family:
    help: str
    type: Literal["counter", "gauge"]
    #: Label names of its series, in the order Zincati's encoder writes them (sorted).
    labels: tuple[str, ...] = ()


# Names, types, HELP texts and labels as Zincati registers them (coreos/zincati be76c4aa, v0.0.32:
# src/update_agent/{mod,actor}.rs, src/cincinnati/mod.rs, src/rpm_ostree/cli_*.rs,
# src/strategy/{mod,fleet_lock}.rs, src/identity/mod.rs, src/cli/agent.rs).
FAMILIES: dict[str, Family] = {
    "process_start_time_seconds": Family("Start time of the process since unix epoch in seconds.", "gauge"),
    "zincati_cincinnati_booted_release_is_deadend": Family(
        "Whether currently booted OS release is a dead-end.", "gauge"
    ),
    "zincati_cincinnati_graph_edges_count": Family("Number of edges in Cincinnati update graph.", "gauge"),
    "zincati_cincinnati_graph_nodes_count": Family("Number of nodes in Cincinnati update graph.", "gauge"),
    "zincati_cincinnati_ignored_update_targets": Family(
        "Number of ignored targets among update targets found.", "gauge"
    ),
    "zincati_cincinnati_update_checks_errors_total": Family(
        "Total number of errors while checking for updates.", "counter", labels=("kind",)
    ),
    "zincati_cincinnati_update_checks_total": Family(
        "Total number of checks for updates to the upstream Cincinnati server.", "counter"
    ),
    "zincati_identity_os_info": Family(
        "Information about the underlying booted OS", "gauge", labels=("basearch", "os_version", "platform", "stream")
    ),
    "zincati_identity_rollout_wariness": Family("Client wariness for updates rollout", "gauge"),
    "zincati_rpm_ostree_deploy_attempts_total": Family("Total number of 'rpm-ostree deploy' attempts.", "counter"),
    "zincati_rpm_ostree_deploy_failures_total": Family("Total number of 'rpm-ostree deploy' failures.", "counter"),
    "zincati_rpm_ostree_finalize_attempts_total": Family(
        "Total number of 'rpm-ostree finalize-deployment' attempts.", "counter"
    ),
    "zincati_rpm_ostree_finalize_failures_total": Family(
        "Total number of 'rpm-ostree finalize-deployment' failures.", "counter"
    ),
    "zincati_rpm_ostree_register_driver_failures_total": Family(
        "Total number of failures to register as driver for rpm-ostree.", "counter"
    ),
    "zincati_rpm_ostree_status_attempts_total": Family("Total number of 'rpm-ostree status' attempts.", "counter"),
    "zincati_rpm_ostree_status_cache_misses_total": Family(
        "Total number of times rpm-ostree actor's cached status is stale during queries.", "counter"
    ),
    "zincati_rpm_ostree_status_cache_requests_total": Family(
        "Total number of attempts to query rpm-ostree actor's cached status.", "counter"
    ),
    "zincati_rpm_ostree_status_failures_total": Family("Total number of 'rpm-ostree status' failures.", "counter"),
    "zincati_strategy_fleet_lock_errors_total": Family(
        "Total number of errors while talking to the FleetLock server.", "counter", labels=("api", "kind")
    ),
    "zincati_strategy_fleet_lock_requests_total": Family(
        "Total number of requests to the FleetLock server.", "counter", labels=("api",)
    ),
    "zincati_update_agent_finalization_attempts": Family(
        "Total number of attempts to finalize a staged deployment by the update agent.", "counter"
    ),
    "zincati_update_agent_finalization_blocked_count": Family(
        "Total number of finalization attempts blocked due to reasons unrelated to update strategy.",
        "counter",
        labels=("reason",),
    ),
    "zincati_update_agent_finalization_detected_active_users": Family(
        "Number of active users detected by the update-agent.", "gauge"
    ),
    "zincati_update_agent_finalization_successes": Family(
        "Total number of successful update finalizations by the update agent.",
        "counter",
    ),
    "zincati_update_agent_last_refresh_timestamp": Family("UTC timestamp of update-agent last refresh tick.", "gauge"),
    "zincati_update_agent_latest_state_change_timestamp": Family(
        "UTC timestamp of update-agent last state change.", "gauge"
    ),
    "zincati_update_agent_postponed_finalizations_total": Family(
        "Total number of update finalization postponements due to active users.", "counter"
    ),
    "zincati_update_agent_updates_allow_downgrade": Family(
        "Whether downgrades via auto-updates logic are allowed.", "gauge"
    ),
    "zincati_update_agent_updates_enabled": Family("Whether auto-updates logic is enabled.", "gauge"),
    "zincati_updates_strategy_can_finalize_responses": Family(
        "Total number of responses from querying update strategy for finalization consent.",
        "counter",
        labels=("response",),
    ),
    "zincati_updates_strategy_mode": Family("Update strategy mode in use", "gauge", labels=("strategy",)),
    "zincati_updates_strategy_periodic_schedule_length_minutes": Family(
        "Total length of the periodic strategy schedule in use", "gauge"
    ),
}


def family(name: str) -> str:
    """`name`, checked: a KeyError at import time for a name Zincati does not register."""
    if name not in FAMILIES:
        raise KeyError(f"{name} is not a Zincati metric")
    return name
