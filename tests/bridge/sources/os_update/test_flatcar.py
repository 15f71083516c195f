"""The Flatcar phase table: one case per update_engine operation and locksmith state, each
naming the source it models (flatcar/update_engine 7382641, flatcar/locksmith 5b2275e)."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import pytest

from local_exporter.agents import locksmith
from local_exporter.agents import update_engine as api
from local_exporter.agents.update_engine import Status
from local_exporter.bridge.sources.os_update import flatcar
from local_exporter.bridge.sources.os_update.judge import Judgement
from local_exporter.bridge.sources.update_engine import Followed, HostFiles, follow

NOW = 1_765_000_000.0
TARGET = "4230.2.1"


def _files(coordinator: tuple[str, str] | None = None, **config: str) -> HostFiles:
    conf = None
    if coordinator is not None:
        conf = MappingProxyType(api.parse_config(locksmith.render(*coordinator)))
    return HostFiles(
        version="4152.2.0",
        board="amd64-usr",
        group="stable",
        server=config.pop("SERVER", api.DEFAULT_SERVER),
        config=MappingProxyType(config),
        coordinator=conf,
        no_update=config.pop("noupdate", "") == "yes",
    )


def _host(files: HostFiles | None = None, **changes: object) -> flatcar.FlatcarHost:
    host = flatcar.FlatcarHost(
        files or _files(), rebooted_at=None, rebooted_for=900, up=True, last_answer=NOW, down_after=60
    )
    return replace(host, **changes)  # type: ignore[arg-type]


def _followed(*operations: str, checked: float = NOW - 600, target: str = "") -> Followed:
    """update_engine seen going through `operations`, one a second, ending now."""
    followed = None
    start = NOW - len(operations)
    for at, operation in enumerate(operations):
        status = Status(int(checked), 0.0, operation, target or api.VERSION_ZERO, 0)
        followed = follow(followed, status, ":1.5", start + at + 1, signal=True)
    assert followed is not None
    return followed


IDLE = _followed(api.IDLE)
STAGED = _followed(
    api.IDLE, api.CHECKING, api.UPDATE_AVAILABLE, api.DOWNLOADING, api.FINALIZING, api.NEED_REBOOT, target=TARGET
)
WINDOW = {"REBOOT_WINDOW_START": "Thu 04:00", "REBOOT_WINDOW_LENGTH": "1h"}

CASES = [
    # systemd/update-engine.service: ConditionPathExists=!/usr/.noupdate: never started, not down.
    ("noupdate file", None, _host(_files(noupdate="yes"), up=False, last_answer=None), Judgement("updates_disabled")),
    ("not on the bus", None, _host(up=False, last_answer=None), Judgement("agent_down")),
    ("gone past down_after", IDLE, _host(up=False, last_answer=NOW - 61), Judgement("agent_down")),
    # Restart=always, RestartSec=30: a read that fails within down_after is not down yet.
    ("gone a moment", IDLE, _host(up=False, last_answer=NOW - 10), Judgement("idle")),
    # Flatcar's docs: SERVER=disabled turns updates off (update_engine itself just fails).
    ("server disabled", IDLE, _host(_files(SERVER="disabled")), Judgement("updates_disabled")),
    # update_attempter.cc: a failed check CHECKING -> REPORTING_ERROR_EVENT -> IDLE.
    (
        "check failed",
        _followed(api.IDLE, api.CHECKING, api.REPORTING_ERROR, api.IDLE),
        _host(),
        Judgement("failing", failure="update_check"),
    ),
    # A failed download or postinstall: DOWNLOADING / FINALIZING -> REPORTING_ERROR_EVENT.
    (
        "install failed",
        _followed(
            api.IDLE, api.CHECKING, api.UPDATE_AVAILABLE, api.DOWNLOADING, api.REPORTING_ERROR, api.IDLE, target=TARGET
        ),
        _host(),
        Judgement("failing", failure="deploy"),
    ),
    # A check time from before this update_engine was seen is no evidence (it was 0 after a restart).
    (
        "an old check time, update_engine just seen",
        _followed(api.IDLE, checked=NOW - flatcar.CHECK_OVERDUE - 1),
        _host(),
        Judgement("idle"),  # first seen just now: update_engine may have started a minute ago
    ),
    # update_attempter.cc: in NEED_REBOOT only pings run, last_checked_time freezes: not failing.
    ("staged, no coordinator", STAGED, _host(), Judgement("staged", target=TARGET)),
    (
        "downloading",
        _followed(api.IDLE, api.CHECKING, api.UPDATE_AVAILABLE, api.DOWNLOADING, target=TARGET),
        _host(),
        Judgement("downloading", target=TARGET),
    ),
    # VERIFYING is never set: verification and postinstall run in FINALIZING.
    (
        "finalizing",
        _followed(api.IDLE, api.UPDATE_AVAILABLE, api.FINALIZING, target=TARGET),
        _host(),
        Judgement("downloading", target=TARGET),
    ),
    # locksmithd daemon.go: `running` through the window wait, `reboot-planned` for the etcd lock.
    (
        "waiting for the etcd lock",
        STAGED,
        _host(_files((locksmith.ETCD_LOCK, locksmith.REBOOT_PLANNED))),
        Judgement("staged", target=TARGET, waiting="reboot_lock"),
    ),
    (
        "waiting for the window",
        STAGED,
        _host(_files((locksmith.ETCD_LOCK, locksmith.RUNNING), **WINDOW)),
        Judgement("staged", target=TARGET, waiting="maintenance_window"),
    ),
    (
        "running, no window",
        STAGED,
        _host(_files((locksmith.REBOOT, locksmith.RUNNING))),
        Judgement("staged", target=TARGET),
    ),
    # reboot-planned under `reboot`: at most the 5-minute logged-in users' delay, then the reboot.
    (
        "reboot planned",
        STAGED,
        _host(_files((locksmith.REBOOT, locksmith.REBOOT_PLANNED))),
        Judgement("rebooting", target=TARGET),
    ),
    (
        "rebooting",
        STAGED,
        _host(_files((locksmith.ETCD_LOCK, locksmith.REBOOTING))),
        Judgement("rebooting", target=TARGET),
    ),
    ("rebooted recently", IDLE, _host(rebooted_at=NOW - 300), Judgement("rebooted", target="4152.2.0")),
    ("rebooted long ago", IDLE, _host(rebooted_at=NOW - 901), Judgement("idle")),
    ("checking", _followed(api.IDLE, api.CHECKING), _host(), Judgement("idle")),
]


@pytest.mark.parametrize(("case", "followed", "host", "expected"), CASES, ids=[c[0] for c in CASES])
def test_the_phase_table(case: str, followed: Followed | None, host: flatcar.FlatcarHost, expected: Judgement) -> None:
    assert flatcar.judge(followed, host, NOW) == expected


def test_no_good_check_for_longer_than_the_scheduler_allows_is_failing() -> None:
    # update_check_scheduler.cc: 2-12 min after start, then 45 ± 5 min apart; none good for
    # longer is a failing check, whether or not its error events were seen.
    # First seen long ago, its last good check older than three intervals at their longest.
    seen = follow(None, Status(int(NOW - 8000), 0.0, api.IDLE, api.VERSION_ZERO, 0), ":1.5", NOW - 7000)
    assert flatcar.CHECK_OVERDUE == 720 + 2 * 3000
    assert flatcar.judge(seen, _host(), NOW) == Judgement("failing", failure="update_check")
    assert flatcar.judge(seen, _host(), NOW - 7000 + flatcar.CHECK_OVERDUE) == Judgement("idle")
