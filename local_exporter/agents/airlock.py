"""airlock, the FleetLock server Fedora CoreOS fleets use (coreos/airlock): its protocol and
metric families, as its source defines them.

The simulator's airlock (sim/airlock.py) serves exactly these; the bundle's rules and
dashboards (bundle/names.py) read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

ErrorKind = Literal["invalid_client_identity", "unknown_group", "failed_sem_init", "failed_lock"]

#: HTTP status airlock answers with, per error kind.
ERROR_STATUS: Mapping[ErrorKind, int] = {
    "invalid_client_identity": 400,
    "unknown_group": 400,
    "failed_sem_init": 500,
    "failed_lock": 500,
}

PRE_REBOOT_PATH = "/v1/pre-reboot"
STEADY_STATE_PATH = "/v1/steady-state"
METRICS_PATH = "/metrics"
PROTOCOL_HEADER = "fleet-lock-protocol"


# Airlock's metric families (the counters' samples end in `_total`).
CONFIG_GROUPS = "airlock_config_groups"
CONFIG_SLOTS = "airlock_config_semaphore_slots"
LOCK_HOLDERS = "airlock_database_semaphore_lock_holders"
DATABASE_SLOTS = "airlock_database_semaphore_slots"
PRE_REBOOT_REQUESTS = "airlock_v1_pre_reboot_incoming_requests"
STEADY_STATE_REQUESTS = "airlock_v1_steady_state_incoming_requests"
