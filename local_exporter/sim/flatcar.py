"""A simulated Flatcar host's update stack: update_engine's state machine and locksmith's, pure
and deterministic (the fleet gives the time, the world and the randomness).

update_engine, as flatcar/update_engine 7382641 behaves (update_attempter.cc,
update_check_scheduler.cc):
- the first check 7 ± 5 minutes after it starts, then every 45 ± 5 minutes; only after an
  HTTP 500 or 503 does the interval double, up to 4 hours;
- a check goes CHECKING_FOR_UPDATE, then IDLE (no update: `last_checked_time` set),
  UPDATE_AVAILABLE (an update: `last_checked_time`, `new_version`, `new_size` set) or
  REPORTING_ERROR_EVENT and IDLE (failed: `last_checked_time` kept);
- an update found is copied, DOWNLOADING with its progress, FINALIZING (verification and
  postinstall; progress back to 0), then UPDATED_NEED_REBOOT; a failure there is an error
  event, IDLE, and the next check offers the update again;
- UPDATED_NEED_REBOOT pings every 45 ± 5 minutes and checks nothing.

locksmith (flatcar/locksmith locksmithctl/daemon.go) writes `starting`, then `running`; at
NEED_REBOOT, `reboot-planned`; under `etcd-lock` it asks the fleet's semaphore for a slot
(retrying 10, 20, 40, ... up to 300 s apart), then waits for logged-in users (5 minutes) and
reboots (`rebooting`). After the boot it gives its slot back.

Every status change is kept in `changes` until the caller takes them: update_engine broadcasts
each, so a live host's service signals each in order (sim/update_engine.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from local_exporter.agents import locksmith
from local_exporter.agents import update_engine as api
from local_exporter.agents.update_engine import Status

#: Seconds between the steps of an update that the daemon takes at its own pace.
CHECK_SECONDS = 2.0
ERROR_EVENT_SECONDS = 1.0
COPY_SECONDS = 10.0
FINALIZE_SECONDS = 5.0
#: A payload's size, as Nebraska announces it (bytes).
PAYLOAD_BYTES = 480_000_000
#: locksmith's retries of the etcd lock (daemon.go: 10 s doubling, at most 5 minutes).
LOCK_RETRY_FIRST, LOCK_RETRY_MAX = 10.0, 300.0


@dataclass(frozen=True)
class FlatcarConfig:
    group: str = "stable"
    #: locksmith's REBOOT_STRATEGY (`off`: locksmith exits, the host never reboots itself).
    strategy: str = locksmith.ETCD_LOCK
    server: str = api.DEFAULT_SERVER


@dataclass(frozen=True)
class FlatcarWorld:
    """What one step of a host sees."""

    #: The newest release offered to this host now (None: nothing newer than nothing).
    offer: str | None
    #: A failing check's HTTP status (0: no response at all), or None when checks work.
    check_error: int | None = None
    #: Whether the download and postinstall succeed.
    install_ok: bool = True
    #: How long the download takes.
    download_seconds: float = 60.0
    #: Whether the etcd lock was granted, when locksmith asks this step.
    lock_granted: bool = True
    #: Users logged in: locksmith waits 5 minutes for them before rebooting.
    users: int = 0


@dataclass
class FlatcarAgent:
    version: str
    config: FlatcarConfig = field(default_factory=FlatcarConfig)
    status: Status = field(default_factory=Status)
    coordinator: str = locksmith.STARTING
    #: Status changes not yet taken by `take_changes` (each is one StatusUpdate signal).
    changes: list[Status] = field(default_factory=list)
    #: What the next step does.
    stage: str = "wait_check"
    #: Set when locksmith has rebooted the host (the fleet boots it into `new_version`).
    reboot_requested: bool = False
    #: locksmith holds a slot of its group's semaphore.
    holds_lock: bool = False
    #: The release installed in the other partition, waiting for the reboot ("" none).
    installed: str = ""
    _interval: float = api.CHECK_INTERVAL
    #: Error events sent for failed installs (what Nebraska counts as failed updates).
    install_failures: int = 0
    _lock_retry: float = LOCK_RETRY_FIRST
    _users_waited: bool = False

    def start(self, now: float, rng: random.Random) -> float:
        """update_engine (and locksmith) start after a boot: IDLE, nothing checked yet; the
        delay to the first check."""
        self.stage, self.reboot_requested = "wait_check", False
        self.coordinator = locksmith.RUNNING
        self._interval = api.CHECK_INTERVAL
        self._set(Status(), always=True)  # main.cc broadcasts the status once at start
        return _fuzz(api.FIRST_CHECK, api.CHECK_FUZZ, rng)

    def boot(self, now: float, rng: random.Random) -> float:
        """The host rebooted: into the installed update, if one was."""
        if self.installed:
            self.version, self.installed = self.installed, ""
        return self.start(now, rng)

    def restart(self, now: float, rng: random.Random) -> float:
        """update_engine restarted without a reboot: an installed update is NEED_REBOOT again
        (the completed marker), but with new_version "0.0.0" and no check time."""
        delay = self.start(now, rng)
        if self.installed:
            self.changes.clear()
            self.stage = "need_reboot"
            self._set(Status(operation=api.NEED_REBOOT), always=True)
            return 0.0
        return delay

    def wants_lock(self, install_ok: bool) -> bool:
        """Whether locksmith asks its semaphore for a slot at the next step."""
        if self.config.strategy != locksmith.ETCD_LOCK or self.holds_lock:
            return False
        return self.stage == "need_reboot" or (self.stage == "finalizing" and install_ok)

    def take_changes(self) -> list[Status]:
        changes, self.changes = self.changes, []
        return changes

    def step(self, now: float, world: FlatcarWorld, rng: random.Random) -> float:
        """Do what is due now; the delay to the next step."""
        stage = self.stage
        if stage == "wait_check":
            self.stage = "checking"
            self._set(replace(self.status, operation=api.CHECKING))
            return CHECK_SECONDS
        if stage == "checking":
            return self._checked(now, world, rng)
        if stage == "error_event":
            # The event is sent; the error path resets new_version and new_size.
            self._set(replace(self.status, operation=api.IDLE, progress=0.0, new_version=api.VERSION_ZERO, new_size=0))
            self.stage = "wait_check"
            return self._next_check(rng)
        if stage == "copying":
            self.stage = "downloading"
            self._set(replace(self.status, operation=api.DOWNLOADING, progress=0.0))
            return self._download_step(world)
        if stage == "downloading":
            progress = min(1.0, self.status.progress + self._download_step(world) / max(world.download_seconds, 1e-9))
            if progress < 1.0:
                self._set(replace(self.status, progress=round(progress, 4)))
                return self._download_step(world)
            self.stage = "finalizing"
            self._set(replace(self.status, operation=api.FINALIZING, progress=0.0))
            return FINALIZE_SECONDS
        if stage == "finalizing":
            if not world.install_ok:
                self.install_failures += 1
                return self._error()
            self.stage, self.installed = "need_reboot", self.status.new_version
            self._set(replace(self.status, operation=api.NEED_REBOOT))
            return self._locksmith(now, world, rng)
        if stage == "need_reboot":
            return self._locksmith(now, world, rng)
        raise AssertionError(f"unknown stage {stage}")

    # --- update_engine -------------------------------------------------------------------------

    def _checked(self, now: float, world: FlatcarWorld, rng: random.Random) -> float:
        if world.check_error is not None or self.config.server == api.DISABLED_SERVER:
            error = world.check_error if world.check_error is not None else 0
            self._interval = (
                min(2 * self._interval, api.MAX_BACKOFF) if error in api.BACKOFF_STATUSES else api.CHECK_INTERVAL
            )
            return self._error()
        self._interval = api.CHECK_INTERVAL
        checked = int(now)
        if world.offer is None or world.offer == self.version:
            self.stage = "wait_check"
            self._set(replace(self.status, operation=api.IDLE, last_checked_time=checked))
            return self._next_check(rng)
        self.stage = "copying"
        self._set(
            replace(
                self.status,
                operation=api.UPDATE_AVAILABLE,
                last_checked_time=checked,
                new_version=world.offer,
                new_size=PAYLOAD_BYTES,
            )
        )
        return COPY_SECONDS

    def _error(self) -> float:
        self.stage = "error_event"
        self._set(replace(self.status, operation=api.REPORTING_ERROR))
        return ERROR_EVENT_SECONDS

    def _next_check(self, rng: random.Random) -> float:
        interval = self._interval
        # Under 45 minutes the regular fuzz, above it half the interval either way.
        return _fuzz(interval, api.CHECK_FUZZ if interval <= api.CHECK_INTERVAL else interval, rng)

    @staticmethod
    def _download_step(world: FlatcarWorld) -> float:
        # A signal at each 1 % or every 10 s (update_attempter.cc); ten steps are enough here.
        return max(min(10.0, world.download_seconds / 10), 0.1)

    # --- locksmith -----------------------------------------------------------------------------

    def _locksmith(self, now: float, world: FlatcarWorld, rng: random.Random) -> float:
        """locksmith's part once update_engine says NEED_REBOOT (its reboot window is not
        modelled: every time is inside it); the delay to its next move."""
        if self.config.strategy == locksmith.OFF:
            return _fuzz(api.CHECK_INTERVAL, api.CHECK_FUZZ, rng)  # pings only; nobody reboots
        if self.coordinator == locksmith.RUNNING:
            self.coordinator = locksmith.REBOOT_PLANNED
            self._users_waited = False
        if self.config.strategy == locksmith.ETCD_LOCK and not self.holds_lock:
            if not world.lock_granted:
                delay, self._lock_retry = self._lock_retry, min(2 * self._lock_retry, LOCK_RETRY_MAX)
                return delay
            self.holds_lock = True
        if world.users and not self._users_waited:
            self._users_waited = True  # "System reboot in 5 minutes!" to their terminals
            return locksmith.LOGGED_IN_DELAY
        self.coordinator = locksmith.REBOOTING
        self._lock_retry = LOCK_RETRY_FIRST
        self.reboot_requested = True
        return 0.0

    def _set(self, status: Status, *, always: bool = False) -> None:
        if always or status != self.status:
            self.changes.append(status)
        self.status = status


def _fuzz(interval: float, fuzz: float, rng: random.Random) -> float:
    """utils.cc FuzzInt: uniform in [interval - fuzz/2, interval + fuzz/2], not below 0."""
    return max(0.0, interval + rng.uniform(-fuzz / 2, fuzz / 2))
