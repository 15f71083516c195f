"""A Fedora CoreOS host's update phase, from what the bridge read: pure functions, no I/O.

`observe` folds one read of Zincati's metrics into what the bridge has learnt so far
(`Memory`): which activities failed or succeeded and when, why a staged update waits, how often
the agent ticks. Counters are compared between two reads the bridge made itself, so two
Prometheus servers scraping the bridge see the same state. `judge` turns that, rpm-ostree's
state and the boot time into one phase (agents/os_update.py), by priority.

What each input tells, read from coreos/zincati be76c4aa (src/update_agent/actor.rs, mod.rs):
- A failed update check counts an error and leaves the agent in NoNewUpdate; a good one
  counts a check only. Deploy failures repeat in cycles of 12 for as long as the release is
  offered. The FleetLock `steady-state` is retried every tick while the agent stays in
  Initialized, holding its reboot slot and checking nothing.
- Driver registration is retried inside one tick (1 s to 256 s apart): the tick's timestamp
  (`last_refresh`) freezes meanwhile, while the failure counter moves.
- While staged, every tick counts a finalization attempt and asks the strategy:
  `can_finalize{response="deny"}` is the periodic strategy outside its window,
  `{response="error"}` with a FleetLock `failed_lock`/`lock_held` error is a full semaphore,
  and `finalization_blocked_count` is logged-in users.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from local_exporter.agents.zincati import family as _zincati
from local_exporter.bridge.sources.os_update.zincati import Reading
from local_exporter.bridge.sources.rpm_ostree import SysrootState

PROCESS_START = _zincati("process_start_time_seconds")
OS_INFO = _zincati("zincati_identity_os_info")
ENABLED = _zincati("zincati_update_agent_updates_enabled")
LAST_REFRESH = _zincati("zincati_update_agent_last_refresh_timestamp")
STATE_CHANGE = _zincati("zincati_update_agent_latest_state_change_timestamp")
CHECKS = _zincati("zincati_cincinnati_update_checks_total")
CHECK_ERRORS = _zincati("zincati_cincinnati_update_checks_errors_total")
DEADEND = _zincati("zincati_cincinnati_booted_release_is_deadend")
DEPLOY_ATTEMPTS = _zincati("zincati_rpm_ostree_deploy_attempts_total")
DEPLOY_FAILURES = _zincati("zincati_rpm_ostree_deploy_failures_total")
FINALIZE_FAILURES = _zincati("zincati_rpm_ostree_finalize_failures_total")
REGISTER_FAILURES = _zincati("zincati_rpm_ostree_register_driver_failures_total")
FINALIZATION_ATTEMPTS = _zincati("zincati_update_agent_finalization_attempts")
FINALIZATION_SUCCESSES = _zincati("zincati_update_agent_finalization_successes")
BLOCKED = _zincati("zincati_update_agent_finalization_blocked_count")
CAN_FINALIZE = _zincati("zincati_updates_strategy_can_finalize_responses")
LOCK_REQUESTS = _zincati("zincati_strategy_fleet_lock_requests_total")
LOCK_ERRORS = _zincati("zincati_strategy_fleet_lock_errors_total")
STRATEGY = _zincati("zincati_updates_strategy_mode")

#: FleetLock error kinds that mean "every slot is taken" (airlock: failed_lock; others: lock_held).
BUSY_LOCK_KINDS = frozenset(("failed_lock", "lock_held"))
#: Zincati's refresh period while it has work (mod.rs: 300 s, plus up to 10 % jitter); in
#: EndState, where updates are disabled, it ticks 36 times less often (10800 s).
AGENT_INTERVAL = 300.0
IDLE_FACTOR = 36
JITTER = 1.1
#: rpm-ostree transactions that stage an update, and the one that reboots into it.
STAGING = frozenset(("Deploy", "Rebase", "UpdateDeployment", "Upgrade"))
FINALIZING = "FinalizeDeployment"


@dataclass(frozen=True)
class Memory:
    """What the bridge has learnt from its reads of the agent, for its current process."""

    #: The last read that answered, and when the last read was tried.
    last: Reading | None = None
    last_failed_at: float | None = None
    #: Activity -> when it last failed / last succeeded (Unix time).
    failures: dict[str, float] = field(default_factory=dict)
    successes: dict[str, float] = field(default_factory=dict)
    last_check_success: float | None = None
    #: Why a staged update waits, and since when; None when nothing holds it.
    waiting: tuple[str, float] | None = None
    #: When the agent last started staging (a deploy attempt) and last finalized.
    deploying_at: float | None = None
    finalized_at: float | None = None
    #: The longest spacing seen between two of the agent's ticks (None until two are seen).
    interval: float | None = None
    #: The agent's last tick time when it last moved, and when the bridge saw it move.
    refresh: float | None = None


def observe(memory: Memory, reading: Reading | None, now: float) -> Memory:
    """`memory` after one read of the agent (`None`: the socket did not answer)."""
    if reading is None:
        return replace(memory, last_failed_at=now)
    previous = memory.last
    if previous is not None and previous.get(PROCESS_START) != reading.get(PROCESS_START):
        # A new process counts from zero; what the old one failed at is not its business.
        memory, previous = Memory(interval=memory.interval), None

    def delta(name: str, **match: str) -> float:
        return reading.total(name, **match) - (previous.total(name, **match) if previous is not None else 0.0)

    def moved(name: str, **match: str) -> bool:
        return delta(name, **match) > 0

    failures, successes = dict(memory.failures), dict(memory.successes)
    tick = reading.get(LAST_REFRESH)
    # The time an activity happened: the agent's own tick stamp, else this read.
    at = tick if tick is not None and tick > 0 else now
    checked = memory.last_check_success
    if moved(CHECK_ERRORS):
        failures["update_check"] = at
    elif moved(CHECKS):
        successes["update_check"] = at
        successes["reboot_lock_release"] = at  # checks only run once the slot is released
        checked = at
    if moved(DEPLOY_FAILURES):
        failures["deploy"] = at
    if moved(FINALIZATION_ATTEMPTS):
        successes["deploy"] = at  # staged: finalization is being attempted
    if moved(FINALIZE_FAILURES):
        failures["finalize"] = at
    busy = sum(delta(LOCK_ERRORS, api="pre-reboot", kind=kind) for kind in BUSY_LOCK_KINDS)
    if delta(LOCK_ERRORS, api="pre-reboot") > busy:
        failures["reboot_lock_acquire"] = at
    elif moved(LOCK_REQUESTS, api="pre-reboot") and not moved(LOCK_ERRORS, api="pre-reboot"):
        successes["reboot_lock_acquire"] = at
    if moved(LOCK_ERRORS, api="steady-state"):
        failures["reboot_lock_release"] = at
    elif moved(LOCK_REQUESTS, api="steady-state"):
        successes["reboot_lock_release"] = at
    if moved(REGISTER_FAILURES):
        failures["driver_registration"] = now
    interval, refresh = memory.interval, memory.refresh
    if tick is not None and refresh is not None and tick > refresh:
        successes["driver_registration"] = now  # a new tick: registration is over
        interval = max(interval or 0.0, tick - refresh)
    if tick is not None and (refresh is None or tick > refresh):
        refresh = tick
    waiting = memory.waiting
    if busy > 0:
        waiting = ("reboot_lock", waiting[1] if waiting and waiting[0] == "reboot_lock" else at)
    elif moved(CAN_FINALIZE, response="deny"):
        waiting = ("maintenance_window", waiting[1] if waiting and waiting[0] == "maintenance_window" else at)
    elif moved(BLOCKED):
        waiting = ("logged_in_users", waiting[1] if waiting and waiting[0] == "logged_in_users" else at)
    elif moved(CAN_FINALIZE, response="allow"):
        waiting = None
    return Memory(
        last=reading,
        last_failed_at=None,
        failures=failures,
        successes=successes,
        last_check_success=checked,
        waiting=waiting,
        deploying_at=at if moved(DEPLOY_ATTEMPTS) else memory.deploying_at,
        finalized_at=at if moved(FINALIZATION_SUCCESSES) else memory.finalized_at,
        interval=interval,
        refresh=refresh,
    )


@dataclass(frozen=True)
class Judgement:
    phase: str
    #: The version being downloaded, staged or rebooted into, when known.
    target: str = ""
    waiting: str = ""
    failure: str = ""


@dataclass(frozen=True)
class Host:
    """Everything `judge` reads besides the agent."""

    sysroot: SysrootState | None
    #: When the host booted into a deployment other than the one of its previous boot (Unix
    #: time); None when the last reboot did not change it, or when that is not known.
    rebooted_at: float | None
    #: How long after such a reboot the host shows `rebooted`.
    rebooted_for: float
    #: Reads of the agent may fail this long before it counts as down (a restart takes seconds).
    down_after: float
    #: The agent's refresh period (Zincati's default; a simulator running faster sets less).
    agent_interval: float = AGENT_INTERVAL


def judge(memory: Memory, host: Host, now: float) -> Judgement:
    """The host's phase now; see agents/os_update.py for the phases and their order."""
    reading = memory.last
    if reading is None or (memory.last_failed_at is not None and now - reading.at >= host.down_after):
        return Judgement("agent_down")
    if reading.get(ENABLED) == 0:
        return Judgement("updates_disabled")
    failing = sorted(
        (at, kind) for kind, at in memory.failures.items() if at > memory.successes.get(kind, float("-inf"))
    )
    if failing:
        return Judgement("failing", failure=failing[-1][1])
    if _stalled(memory, host, now):
        return Judgement("agent_down")
    if reading.get(DEADEND) == 1:
        return Judgement("dead_end")
    sysroot = host.sysroot
    staged = sysroot.staged if sysroot is not None else None
    method = sysroot.transaction[0] if sysroot is not None else ""
    target = staged.version if staged is not None else ""
    if method == FINALIZING or memory.finalized_at is not None:
        return Judgement("rebooting", target=target)
    if staged is not None or (sysroot is None and _recent(memory.successes.get("deploy"), memory, host, now)):
        return Judgement("staged", target=target, waiting=memory.waiting[0] if memory.waiting else "")
    if method in STAGING or (sysroot is None and _recent(memory.deploying_at, memory, host, now)):
        return Judgement("downloading")
    if host.rebooted_at is not None and now - host.rebooted_at < host.rebooted_for:
        booted = sysroot.booted if sysroot is not None else None
        return Judgement("rebooted", target=booted.version if booted is not None else "")
    return Judgement("idle")


def _expected_interval(memory: Memory, host: Host) -> float:
    reading = memory.last
    idle = reading is not None and reading.get(ENABLED) == 0
    default = host.agent_interval * (IDLE_FACTOR if idle else 1) * JITTER
    return max(default, memory.interval or 0.0)


def _stalled(memory: Memory, host: Host, now: float) -> bool:
    """The agent answers but has stopped ticking: judged by its own spacing, once two ticks
    were seen (an agent with a long `steady_interval_secs` is not stalled for it)."""
    if memory.interval is None or memory.refresh is None:
        return False
    return now - memory.refresh > 2 * _expected_interval(memory, host) + host.agent_interval / 5


def _recent(at: float | None, memory: Memory, host: Host, now: float) -> bool:
    return at is not None and now - at <= _expected_interval(memory, host) * 1.5
