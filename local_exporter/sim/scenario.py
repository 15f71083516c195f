"""Scenarios as data: a fleet, the releases that appear on its stream, and injected faults.

A scenario is a small TOML file (or a built-in preset) that `scenario_file.py` parses once,
strictly, into the frozen records below; `fleet.py` runs it. Times are seconds from the
scenario's start.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal, get_args

from local_exporter.agents import os_update

FaultKind = Literal[
    "check_errors",
    "deploy_failures",
    "finalize_blocked",
    "keeps_slot",
    "updates_disabled",
    "agent_down",
    "stale",
    "deadend",
    "steady_state_errors",
    "driver_registration",
]
#: The error a FleetLock server answers `steady-state` with in the steady_state_errors fault:
#: one that does not take the slot back (servers other than airlock say lock_held).
STEADY_STATE_ERROR = "lock_held"
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
# The `kind` label values Zincati's `zincati_cincinnati_update_checks_errors_total` carries.
CHECK_ERROR_KINDS = ("generic_http_503", "client_failed_request")


def host_name(prefix: str, hosts: int, index: int) -> str:
    """`prefix-0007`: at least four digits, as many as the largest index needs."""
    return f"{prefix}-{index:0{max(4, len(str(hosts - 1)))}d}"


@dataclass(frozen=True)
class FleetSpec:
    hosts: int
    version: str
    stream: str = "stable"
    platform: str = "metal"
    basearch: str = "x86_64"
    strategy: Literal["immediate", "fleet_lock"] = "immediate"
    #: FleetLock groups and their reboot slots, in order; hosts are spread over them round-robin.
    groups: tuple[tuple[str, int], ...] = (("default", 1),)
    #: Configured on every host (then exported); None: each host has its own, hidden, as when
    #: Cincinnati derives it from the node's id.
    wariness: float | None = None
    seed: int = 1
    host_prefix: str = "host"

    def host_name(self, index: int) -> str:
        return host_name(self.host_prefix, self.hosts, index)

    def group_of(self, index: int) -> str:
        return self.groups[index % len(self.groups)][0]


#: The OSes a scenario's hosts run: Fedora CoreOS (`fleet`) and Flatcar (`flatcar`).
FEDORA_COREOS, FLATCAR = os_update.FEDORA_COREOS, os_update.FLATCAR
OSES = (FEDORA_COREOS, FLATCAR)
#: The faults a Flatcar host can have (update_engine has no driver, no dead ends, no FleetLock).
FLATCAR_FAULT_KINDS: tuple[FaultKind, ...] = (
    "check_errors",
    "deploy_failures",
    "finalize_blocked",
    "updates_disabled",
    "agent_down",
    "keeps_slot",
)


@dataclass(frozen=True)
class FlatcarFleetSpec:
    """The Flatcar hosts of a mixed fleet: update_engine with locksmith."""

    hosts: int
    version: str
    #: The update group (channel) every host is in: Flatcar's `stream`.
    group: str = "stable"
    #: locksmith's REBOOT_STRATEGY: `etcd-lock`, `reboot` or `off`.
    strategy: str = "etcd-lock"
    #: etcd lock groups and their slots (the semaphore's max); hosts round-robin.
    locks: tuple[tuple[str, int], ...] = (("default", 1),)
    wariness: float | None = None
    seed: int = 1
    host_prefix: str = "flatcar"

    @property
    def stream(self) -> str:
        return self.group

    def host_name(self, index: int) -> str:
        return host_name(self.host_prefix, self.hosts, index)

    def lock_group_of(self, index: int) -> str:
        return self.locks[index % len(self.locks)][0]


@dataclass(frozen=True)
class ReleaseSpec:
    version: str
    #: When the release appears on the stream.
    at: float
    #: The phased rollout window: a host of wariness w is offered it at `at + w * rollout`.
    rollout: float = 0.0
    stream: str = "stable"
    os: str = FEDORA_COREOS


@dataclass(frozen=True)
class FaultSpec:
    kind: FaultKind
    #: Indices of the hosts it applies to, ascending.
    hosts: tuple[int, ...]
    start: float = 0.0
    #: None: until the scenario ends.
    end: float | None = None
    #: check_errors: the error kind label.
    error: str = "generic_http_503"
    #: finalize_blocked: logged-in users.
    users: int = 1
    #: deadend: the release that is marked a dead-end ("" = the fleet's initial version).
    version: str = ""
    #: Whose hosts `hosts` indexes: the Fedora CoreOS fleet's or the Flatcar one's.
    os: str = FEDORA_COREOS

    def active(self, t: float) -> bool:
        return self.start <= t and (self.end is None or t < self.end)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    duration: float
    fleet: FleetSpec
    releases: tuple[ReleaseSpec, ...] = ()
    faults: tuple[FaultSpec, ...] = ()
    #: How long a host is down between finalizing and the new agent starting.
    reboot: float = 60.0
    #: Unix time the scenario starts at when backfilled (None: end it now).
    start: float | None = None
    #: How long `rpm-ostree deploy` takes (the download and the deployment): Zincati's tick
    #: blocks that long before the update is staged.
    download: float = 0.0
    #: Flatcar hosts beside the Fedora CoreOS ones (a mixed fleet), or None.
    flatcar: FlatcarFleetSpec | None = None

    @property
    def hosts(self) -> int:
        """Every host, both OSes'."""
        return self.fleet.hosts + (self.flatcar.hosts if self.flatcar is not None else 0)


def pick_hosts(seed: int, fault_index: int, count: int, hosts: int) -> tuple[int, ...]:
    """`count` of `hosts` host indices, ascending, the same for the same seed and fault index."""
    rng = random.Random(f"{seed}:{fault_index}")
    return tuple(sorted(rng.sample(range(hosts), count)))
