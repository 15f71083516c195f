"""Every metric name the bundle reads, taken from the code that emits it.

The agents' names come from the catalogue of the real agents (agents/), the bridge's
real agent byte for byte), airlock's from its model, the bridge's from its metrics module:
a rule or panel cannot name a metric nothing emits.
"""

from __future__ import annotations

from local_exporter.agents import airlock, kubernetes, nebraska, os_release
from local_exporter.agents import os_update as host_state
from local_exporter.agents.zincati import family as _zincati
from local_exporter.bridge import metrics as bridge

# Zincati (through the bridge)
PROCESS_START = _zincati("process_start_time_seconds")
OS_INFO = _zincati("zincati_identity_os_info")
UPDATES_ENABLED = _zincati("zincati_update_agent_updates_enabled")
LAST_REFRESH = _zincati("zincati_update_agent_last_refresh_timestamp")
LATEST_STATE_CHANGE = _zincati("zincati_update_agent_latest_state_change_timestamp")
FINALIZATION_ATTEMPTS = _zincati("zincati_update_agent_finalization_attempts")
FINALIZATION_BLOCKED = _zincati("zincati_update_agent_finalization_blocked_count")
FINALIZATION_SUCCESSES = _zincati("zincati_update_agent_finalization_successes")
POSTPONED_FINALIZATIONS = _zincati("zincati_update_agent_postponed_finalizations_total")
CHECKS = _zincati("zincati_cincinnati_update_checks_total")
CHECK_ERRORS = _zincati("zincati_cincinnati_update_checks_errors_total")
DEADEND = _zincati("zincati_cincinnati_booted_release_is_deadend")
DEPLOY_ATTEMPTS = _zincati("zincati_rpm_ostree_deploy_attempts_total")
DEPLOY_FAILURES = _zincati("zincati_rpm_ostree_deploy_failures_total")
FINALIZE_ATTEMPTS = _zincati("zincati_rpm_ostree_finalize_attempts_total")
FINALIZE_FAILURES = _zincati("zincati_rpm_ostree_finalize_failures_total")
STATUS_FAILURES = _zincati("zincati_rpm_ostree_status_failures_total")
REGISTER_FAILURES = _zincati("zincati_rpm_ostree_register_driver_failures_total")
LOCK_REQUESTS = _zincati("zincati_strategy_fleet_lock_requests_total")
LOCK_ERRORS = _zincati("zincati_strategy_fleet_lock_errors_total")
STRATEGY = _zincati("zincati_updates_strategy_mode")
CAN_FINALIZE = _zincati("zincati_updates_strategy_can_finalize_responses")
#: What a busy reboot semaphore looks like to Zincati: airlock's and other servers' kinds.
LOCK_BUSY_KINDS = ("failed_lock", "lock_held")

# The host's own update state, where its bridge runs the os_update selector (agents/os_update.py)
OS_UPDATE_INFO = host_state.INFO
OS_UPDATE_PHASE = host_state.PHASE
OS_UPDATE_WAITING = host_state.WAITING
OS_UPDATE_SOURCE_UP = host_state.SOURCE_UP
OS_UPDATE_TARGET = host_state.TARGET
OS_UPDATE_FAILURE = host_state.FAILURE
OS_UPDATE_PHASE_START = host_state.PHASE_START
OS_UPDATE_LAST_CHECK = host_state.LAST_CHECK
OS_UPDATE_VERSION_RANK = host_state.VERSION_RANK

# The update servers' releases, through a release feed bridge (agents/os_release.py).
RELEASE_NEWEST = os_release.NEWEST
RELEASE_DEADEND = os_release.DEADEND
RELEASE_PLANNED_SHARE = os_release.PLANNED_SHARE
RELEASE_FEED_UPDATED = os_release.FEED_UPDATED

# The Kubernetes reboot coordinators of Flatcar nodes (agents/kubernetes.py).
NODE_ANNOTATIONS = kubernetes.NODE_ANNOTATIONS
KURED_REBOOT_REQUIRED = kubernetes.KURED_REBOOT_REQUIRED

# Nebraska (Flatcar's update server, scraped directly).
NEBRASKA_INSTANCES = nebraska.INSTANCES_PER_CHANNEL
NEBRASKA_FAILED_UPDATES = nebraska.FAILED_UPDATES

# Airlock (the FleetLock server, scraped directly); counters' samples end in `_total`.
AIRLOCK_SLOTS = airlock.CONFIG_SLOTS
AIRLOCK_HOLDERS = airlock.LOCK_HOLDERS
AIRLOCK_PRE_REBOOT = airlock.PRE_REBOOT_REQUESTS + "_total"
AIRLOCK_STEADY_STATE = airlock.STEADY_STATE_REQUESTS + "_total"

# The bridge's own
BRIDGE_REQUESTS = bridge.REQUESTS_TOTAL
BRIDGE_DURATION = bridge.REQUEST_DURATION_SECONDS
BRIDGE_RESPONSE_BYTES = bridge.RESPONSE_BYTES_TOTAL
BRIDGE_LAST_PAYLOAD_BYTES = bridge.LAST_PAYLOAD_BYTES
BRIDGE_LAST_SUCCESS = bridge.LAST_SUCCESS_TIMESTAMP_SECONDS
BRIDGE_IN_FLIGHT = bridge.IN_FLIGHT_REQUESTS
BRIDGE_REJECTED = bridge.REJECTED_REQUESTS_TOTAL
BRIDGE_RELOAD_SUCCESSFUL = bridge.RELOAD_SUCCESSFUL
BRIDGE_WEB_CONFIG_RELOAD_SUCCESSFUL = bridge.WEB_CONFIG_RELOAD_SUCCESSFUL
BRIDGE_BUILD_INFO = bridge.BUILD_INFO

# Prometheus' own, per scrape
UP = "up"
