"""The phase as a pure function: one case per Zincati UpdateAgentMachineState and per case the
PromQL inference got wrong (issue: exact host state). Zincati's behaviour is from coreos/zincati
be76c4aa: src/update_agent/actor.rs (tick actions), mod.rs (states, delays), src/strategy/."""

from __future__ import annotations

from dataclasses import replace

import pytest

from local_exporter.bridge.sources.os_update import judge as j
from local_exporter.bridge.sources.os_update.judge import Host, Judgement, Memory, judge, observe
from local_exporter.bridge.sources.os_update.zincati import Labels, Reading
from local_exporter.bridge.sources.rpm_ostree import Deployment, SysrootState

T0 = 1_800_000_000.0
OLD, NEW = "42.20250512.3.0", "42.20250526.3.0"
Series = tuple[str, dict[str, str], float]


def agent(
    at: float, *series: Series, start: float = T0 - 3600, refresh: float | None = None, enabled: float = 1
) -> Reading:
    """Zincati's samples at `at`: the always-present gauges plus `series`."""
    values: dict[tuple[str, Labels], float] = {
        (j.PROCESS_START, ()): start,
        (j.ENABLED, ()): enabled,
        (j.LAST_REFRESH, ()): at if refresh is None else refresh,
        (j.STATE_CHANGE, ()): start,
    }
    for name, labels, value in series:
        values[(name, tuple(sorted(labels.items())))] = value
    return Reading(at, values)


def deployment(role: str, version: str, checksum: str) -> Deployment:
    return Deployment(role, "fedora-coreos", checksum, version, "stable", "", T0 - 86400, False)


BOOTED = deployment("booted", OLD, "a" * 64)
STAGED = deployment("staged", NEW, "b" * 64)


def sysroot(*deployments: Deployment, method: str = "") -> SysrootState:
    return SysrootState(tuple(deployments), (method, ":1.7" if method else ""), "none", True, T0)


def host(state: SysrootState | None = None, rebooted_at: float | None = None) -> Host:
    return Host(state if state is not None else sysroot(BOOTED), rebooted_at, rebooted_for=3600, down_after=60)


def run(*readings: Reading | None, now: float | None = None, on: Host | None = None) -> Judgement:
    memory, last = Memory(), T0
    for reading in readings:
        last = reading.at if reading is not None else last + 15
        memory = observe(memory, reading, last)
    return judge(memory, on or host(), now if now is not None else last)


def checks(n: float) -> Series:
    return (j.CHECKS, {}, n)


@pytest.mark.parametrize(
    ("case", "result", "expected"),
    [
        # StartState: driver registration retried inside one tick; last_refresh frozen.
        (
            "StartState, registration failing",
            run(
                agent(T0, (j.REGISTER_FAILURES, {}, 2), refresh=T0 - 100),
                agent(T0 + 300, (j.REGISTER_FAILURES, {}, 7), refresh=T0 - 100),
            ),
            Judgement("failing", failure="driver_registration"),
        ),
        (
            "StartState, registered at last: ticks again",
            run(
                agent(T0, (j.REGISTER_FAILURES, {}, 7), refresh=T0 - 400),
                agent(T0 + 15, (j.REGISTER_FAILURES, {}, 7), checks(1), refresh=T0 + 10),
            ),
            Judgement("idle"),
        ),
        # Initialized: FleetLock steady-state retried every tick, the slot still held.
        (
            "Initialized, steady-state refused (airlock failed_lock)",
            run(
                agent(
                    T0,
                    (j.LOCK_REQUESTS, {"api": "steady-state"}, 1),
                    (j.LOCK_ERRORS, {"api": "steady-state", "kind": "failed_lock"}, 1),
                ),
                agent(
                    T0 + 310,
                    (j.LOCK_REQUESTS, {"api": "steady-state"}, 2),
                    (j.LOCK_ERRORS, {"api": "steady-state", "kind": "failed_lock"}, 2),
                ),
            ),
            Judgement("failing", failure="reboot_lock_release"),
        ),
        (
            "Initialized, steady-state refused (another server: lock_held)",
            run(agent(T0, (j.LOCK_ERRORS, {"api": "steady-state", "kind": "lock_held"}, 3))),
            Judgement("failing", failure="reboot_lock_release"),
        ),
        (
            "ReportedSteady -> NoNewUpdate: steady-state released, checks run",
            run(
                agent(T0, (j.LOCK_ERRORS, {"api": "steady-state", "kind": "failed_lock"}, 3)),
                agent(
                    T0 + 310,
                    (j.LOCK_ERRORS, {"api": "steady-state", "kind": "failed_lock"}, 3),
                    (j.LOCK_REQUESTS, {"api": "steady-state"}, 4),
                    checks(1),
                ),
            ),
            Judgement("idle"),
        ),
        ("NoNewUpdate, checks succeed", run(agent(T0, checks(4)), agent(T0 + 310, checks(5))), Judgement("idle")),
        (
            "NoNewUpdate, a check fails",
            run(agent(T0, checks(4)), agent(T0 + 310, checks(5), (j.CHECK_ERRORS, {"kind": "generic_http_503"}, 1))),
            Judgement("failing", failure="update_check"),
        ),
        (
            "NoNewUpdate, a failed check then a good one",
            run(
                agent(T0, checks(5), (j.CHECK_ERRORS, {"kind": "generic_http_503"}, 1)),
                agent(T0 + 310, checks(6), (j.CHECK_ERRORS, {"kind": "generic_http_503"}, 1)),
            ),
            Judgement("idle"),
        ),
        # UpdateAvailable: rpm-ostree's Deploy transaction is the download and the staging.
        (
            "UpdateAvailable, deploying",
            run(agent(T0, checks(5), (j.DEPLOY_ATTEMPTS, {}, 1)), on=host(sysroot(BOOTED, method="Deploy"))),
            Judgement("downloading"),
        ),
        (
            "UpdateAvailable, deploys keep failing (cycles of 12, never abandoned for good)",
            run(
                agent(T0, (j.DEPLOY_ATTEMPTS, {}, 12), (j.DEPLOY_FAILURES, {}, 12)),
                agent(T0 + 310, (j.DEPLOY_ATTEMPTS, {}, 13), (j.DEPLOY_FAILURES, {}, 13)),
            ),
            Judgement("failing", failure="deploy"),
        ),
        # UpdateStaged: why it waits.
        (
            "UpdateStaged, immediate strategy about to finalize",
            run(
                agent(T0, (j.FINALIZATION_ATTEMPTS, {}, 1), (j.CAN_FINALIZE, {"response": "allow"}, 1)),
                on=host(sysroot(STAGED, BOOTED)),
            ),
            Judgement("staged", target=NEW),
        ),
        (
            "UpdateStaged, fleet_lock: every slot taken",
            run(
                agent(T0, (j.FINALIZATION_ATTEMPTS, {}, 1)),
                agent(
                    T0 + 310,
                    (j.FINALIZATION_ATTEMPTS, {}, 2),
                    (j.CAN_FINALIZE, {"response": "error"}, 1),
                    (j.LOCK_REQUESTS, {"api": "pre-reboot"}, 1),
                    (j.LOCK_ERRORS, {"api": "pre-reboot", "kind": "failed_lock"}, 1),
                ),
                on=host(sysroot(STAGED, BOOTED)),
            ),
            Judgement("staged", target=NEW, waiting="reboot_lock"),
        ),
        (
            "UpdateStaged, periodic strategy outside its window",
            run(
                agent(T0, (j.FINALIZATION_ATTEMPTS, {}, 3), (j.CAN_FINALIZE, {"response": "deny"}, 3)),
                on=host(sysroot(STAGED, BOOTED)),
            ),
            Judgement("staged", target=NEW, waiting="maintenance_window"),
        ),
        (
            "UpdateStaged, users logged in",
            run(
                agent(T0, (j.FINALIZATION_ATTEMPTS, {}, 1), (j.CAN_FINALIZE, {"response": "allow"}, 1)),
                agent(
                    T0 + 60,
                    (j.FINALIZATION_ATTEMPTS, {}, 2),
                    (j.CAN_FINALIZE, {"response": "allow"}, 2),
                    (j.BLOCKED, {"reason": "active_usersessions"}, 1),
                ),
                on=host(sysroot(STAGED, BOOTED)),
            ),
            Judgement("staged", target=NEW, waiting="logged_in_users"),
        ),
        (
            "UpdateStaged, a pre-reboot error that is not a full semaphore",
            run(
                agent(
                    T0,
                    (j.FINALIZATION_ATTEMPTS, {}, 1),
                    (j.LOCK_ERRORS, {"api": "pre-reboot", "kind": "unknown_group"}, 1),
                ),
                on=host(sysroot(STAGED, BOOTED)),
            ),
            Judgement("failing", failure="reboot_lock_acquire"),
        ),
        (
            "UpdateStaged, finalize-deployment fails",
            run(
                agent(T0, (j.FINALIZATION_ATTEMPTS, {}, 4), (j.FINALIZE_FAILURES, {}, 1)),
                on=host(sysroot(STAGED, BOOTED)),
            ),
            Judgement("failing", failure="finalize"),
        ),
        # UpdateFinalized: rebooting now.
        (
            "UpdateFinalized",
            run(
                agent(T0, (j.FINALIZATION_ATTEMPTS, {}, 4), (j.FINALIZATION_SUCCESSES, {}, 1)),
                on=host(sysroot(STAGED, BOOTED)),
            ),
            Judgement("rebooting", target=NEW),
        ),
        (
            "FinalizeDeployment transaction running",
            run(
                agent(T0, (j.FINALIZATION_ATTEMPTS, {}, 4)),
                on=host(sysroot(STAGED, BOOTED, method="FinalizeDeployment")),
            ),
            Judgement("rebooting", target=NEW),
        ),
        # EndState: updates disabled; the agent ticks every 3 h, which is not a stall.
        (
            "EndState, updates disabled",
            run(agent(T0, enabled=0, refresh=T0 - 9000), agent(T0 + 20000, enabled=0, refresh=T0 + 1800)),
            Judgement("updates_disabled"),
        ),
        # After the reboot.
        (
            "rebooted into the new version 20 minutes ago",
            run(
                agent(T0, checks(1)),
                on=host(sysroot(deployment("booted", NEW, "b" * 64), BOOTED), rebooted_at=T0 - 1200),
            ),
            Judgement("rebooted", target=NEW),
        ),
        (
            "Zincati restarted without a reboot: not `rebooted`",
            run(
                agent(T0, checks(9)),
                agent(T0 + 15, checks(1), start=T0 + 10),
                on=host(sysroot(BOOTED), rebooted_at=None),
            ),
            Judgement("idle"),
        ),
        (
            "booted on a dead-end release",
            run(agent(T0, checks(2), (j.DEADEND, {}, 1))),
            Judgement("dead_end"),
        ),
        # Agent liveness, by its own interval.
        (
            "steady_interval_secs = 3600: an hour between ticks is not a stall",
            run(agent(T0, refresh=T0 - 3000), agent(T0 + 600, refresh=T0 + 500), agent(T0 + 3000, refresh=T0 + 500)),
            Judgement("idle"),
        ),
        (
            "a tick loop that stopped, judged by the ticks seen before",
            run(agent(T0, refresh=T0), agent(T0 + 320, refresh=T0 + 310), agent(T0 + 2000, refresh=T0 + 310)),
            Judgement("agent_down"),
        ),
        (
            "the socket stops answering",
            run(agent(T0, checks(1)), None, None, None, None, None),
            Judgement("agent_down"),
        ),
        ("one missed read (Zincati restarting)", run(agent(T0, checks(1)), None), Judgement("idle")),
        ("never answered", run(None), Judgement("agent_down")),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_phase(case: str, result: Judgement, expected: Judgement) -> None:
    assert result == expected, case


def test_a_failure_of_the_old_process_does_not_follow_the_new_one() -> None:
    memory = observe(Memory(), agent(T0, (j.DEPLOY_FAILURES, {}, 12)), T0)
    assert judge(memory, host(), T0).failure == "deploy"
    memory = observe(memory, agent(T0 + 15, start=T0 + 10), T0 + 15)
    assert judge(memory, host(), T0 + 15) == Judgement("idle")


def test_the_last_successful_check_is_the_agents_tick_time() -> None:
    memory = observe(Memory(), agent(T0, checks(3), refresh=T0 - 5), T0)
    memory = observe(memory, agent(T0 + 310, checks(4), refresh=T0 + 300), T0 + 310)
    assert memory.last_check_success == T0 + 300
    failed = observe(memory, agent(T0 + 620, checks(5), (j.CHECK_ERRORS, {"kind": "x"}, 1), refresh=T0 + 610), T0 + 620)
    assert failed.last_check_success == T0 + 300


def test_the_interval_is_learnt_from_the_ticks() -> None:
    memory = Memory()
    for at, tick in ((T0, T0 - 50), (T0 + 15, T0 - 50), (T0 + 3600, T0 + 3550)):
        memory = observe(memory, agent(at, refresh=tick), at)
    assert memory.interval == 3600
    assert replace(memory).refresh == T0 + 3550
