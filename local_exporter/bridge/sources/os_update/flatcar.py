"""A Flatcar host's update phase, from what the bridge read: a pure function, no I/O.

The inputs: update_engine's status as followed by its signals (bridge/sources/update_engine.py:
which activity failed or succeeded and when), the release, update config and locksmith files,
and the boot record. What each tells, read from flatcar/update_engine 7382641
(update_attempter.cc, update_check_scheduler.cc) and flatcar/locksmith 5b2275e
(locksmithctl/daemon.go):
- A check runs 2-12 minutes after update_engine starts, then every 45 ± 5 minutes (up to 4 h
  apart after HTTP 500/503 only). A good one sets `last_checked_time`; a failed one passes
  through REPORTING_ERROR_EVENT and leaves it. No check runs while an update waits for the
  reboot (NEED_REBOOT: pings only), so the check time freezes then.
- An update found goes UPDATE_AVAILABLE, DOWNLOADING, FINALIZING (verification and
  postinstall), then UPDATED_NEED_REBOOT.
- locksmith stays `running` while NEED_REBOOT waits for its reboot window, is `reboot-planned`
  while it waits for the etcd lock (strategy `etcd-lock`) and for logged-in users (5 minutes),
  and `rebooting` once the reboot was asked for.
- update_engine has no "disabled": `/usr/.noupdate` keeps it from starting, and
  `SERVER=disabled` is Flatcar's documented way to turn updates off (each check then fails).
"""

from __future__ import annotations

from dataclasses import dataclass

from local_exporter.agents import locksmith
from local_exporter.agents import update_engine as api
from local_exporter.bridge.sources.os_update.judge import Judgement
from local_exporter.bridge.sources.update_engine import Followed, HostFiles

#: No successful check for this long, while update_engine is not waiting for the reboot, is a
#: failing check even where the error events were not seen: the first check (at most 12
#: minutes after start) and two more intervals at their longest (45 + 5 minutes).
CHECK_OVERDUE = api.FIRST_CHECK + api.CHECK_FUZZ / 2 + 2 * (api.CHECK_INTERVAL + api.CHECK_FUZZ / 2)


#: systemd restarts a stopped update_engine after this long (update-engine.service, RestartSec).
RESTART_SECONDS = 30.0


@dataclass(frozen=True)
class FlatcarHost:
    """Everything `judge` reads besides update_engine's status."""

    files: HostFiles
    #: When the host booted into a release other than the one of its previous boot.
    rebooted_at: float | None
    rebooted_for: float
    #: Whether update_engine answered the bridge's last read, and when it last did.
    up: bool
    last_answer: float | None
    #: Reads may fail this long before update_engine counts as down (systemd restarts it in 30 s).
    down_after: float


def judge(followed: Followed | None, host: FlatcarHost, now: float) -> Judgement:
    """The host's phase now; see agents/os_update.py for the phases and their order."""
    files = host.files
    if files.no_update:
        return Judgement("updates_disabled")  # the unit does not start: not down
    gone = not host.up and (host.last_answer is None or now - host.last_answer >= host.down_after)
    if followed is None or gone:
        return Judgement("agent_down")
    if files.updates_disabled:
        return Judgement("updates_disabled")
    operation = followed.status.operation
    failing = sorted(
        (at, kind) for kind, at in followed.failures.items() if at > followed.successes.get(kind, float("-inf"))
    )
    if failing:
        return Judgement("failing", failure=failing[-1][1])
    checked = max(followed.last_check_success or 0.0, followed.first_seen)
    if operation != api.NEED_REBOOT and now - checked > CHECK_OVERDUE:
        return Judgement("failing", failure="update_check")
    target = followed.target
    if operation == api.NEED_REBOOT:
        return _staged(files, target)
    if operation in api.INSTALLING:
        return Judgement("downloading", target=target)
    if host.rebooted_at is not None and now - host.rebooted_at < host.rebooted_for:
        return Judgement("rebooted", target=files.version)
    return Judgement("idle")


def _staged(files: HostFiles, target: str) -> Judgement:
    """An update installed, waiting for the reboot: where locksmith is, if it runs."""
    conf = files.coordinator or {}
    strategy, state = conf.get(locksmith.STRATEGY_KEY, ""), conf.get(locksmith.STATE_KEY, "")
    if state == locksmith.REBOOTING or (state == locksmith.REBOOT_PLANNED and strategy == locksmith.REBOOT):
        return Judgement("rebooting", target=target)
    if state == locksmith.REBOOT_PLANNED and strategy == locksmith.ETCD_LOCK:
        return Judgement("staged", target=target, waiting="reboot_lock")
    window = files.setting(locksmith.WINDOW_START_KEYS) and files.setting(locksmith.WINDOW_LENGTH_KEYS)
    if state == locksmith.RUNNING and window:
        return Judgement("staged", target=target, waiting="maintenance_window")
    return Judgement("staged", target=target)
