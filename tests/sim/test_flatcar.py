"""The simulated Flatcar host goes through update_engine's and locksmith's states as their
sources do (flatcar/update_engine 7382641: update_attempter.cc, update_check_scheduler.cc;
flatcar/locksmith 5b2275e: locksmithctl/daemon.go)."""

from __future__ import annotations

import random
from dataclasses import replace

from local_exporter.agents import locksmith
from local_exporter.agents import update_engine as api
from local_exporter.agents.update_engine import Status
from local_exporter.sim.flatcar import LOCK_RETRY_MAX, FlatcarAgent, FlatcarConfig, FlatcarWorld

NEXT = "4230.2.1"


def _run(
    agent: FlatcarAgent, world: FlatcarWorld, until: str, now: float = 0.0, steps: int = 100
) -> tuple[float, list[float]]:
    """Step until the status is `until` (or a reboot is asked for); the time and the delays."""
    rng = random.Random(1)
    delays = []
    for _ in range(steps):
        delay = agent.step(now, world, rng)
        delays.append(delay)
        now += delay
        if agent.status.operation == until or agent.reboot_requested:
            return now, delays
    raise AssertionError(f"never {until}: {agent.status}")


def test_the_first_check_comes_7_minutes_after_start_give_or_take_5() -> None:
    delays = [FlatcarAgent("4152.2.0").start(0.0, random.Random(seed)) for seed in range(200)]
    assert min(delays) >= 120 and max(delays) <= 720 and max(delays) - min(delays) > 400


def test_no_update_sets_the_check_time_and_the_next_check_is_45_minutes_away_give_or_take_5() -> None:
    agent = FlatcarAgent("4152.2.0")
    agent.start(0.0, random.Random(1))
    rng = random.Random(2)
    agent.step(1000.0, FlatcarWorld(offer=None), rng)
    delay = agent.step(1002.0, FlatcarWorld(offer=None), rng)
    assert [s.operation for s in agent.take_changes()] == [api.IDLE, api.CHECKING, api.IDLE]
    assert agent.status.last_checked_time == 1002 and agent.status.new_version == api.VERSION_ZERO
    assert 2400 <= delay <= 3000


def test_an_update_is_downloaded_finalized_and_waits_for_the_etcd_lock() -> None:
    agent = FlatcarAgent("4152.2.0")
    agent.start(0.0, random.Random(1))
    world = FlatcarWorld(offer=NEXT, download_seconds=100.0, lock_granted=False)
    now, _ = _run(agent, world, api.NEED_REBOOT)
    operations = [s.operation for s in agent.take_changes()]
    # VERIFYING is never set; progress goes back to 0 when the download ends.
    assert operations[:4] == [api.IDLE, api.CHECKING, api.UPDATE_AVAILABLE, api.DOWNLOADING]
    assert operations[-2:] == [api.FINALIZING, api.NEED_REBOOT] and api.VERIFYING not in operations
    assert operations.count(api.DOWNLOADING) > 5  # progress signalled as it goes
    assert agent.status.progress == 0.0 and agent.status.new_version == NEXT
    assert agent.coordinator == locksmith.REBOOT_PLANNED and not agent.holds_lock
    # locksmith retries the lock 10 s, 20 s, ... apart, at most 5 minutes.
    retries = [agent.step(now, world, random.Random(3)) for _ in range(8)]
    assert retries[:3] == [20.0, 40.0, 80.0] and max(retries) == LOCK_RETRY_MAX
    assert agent.coordinator == locksmith.REBOOT_PLANNED and agent.take_changes() == []
    agent.step(now, replace(world, lock_granted=True), random.Random(3))
    assert agent.holds_lock and agent.reboot_requested and agent.coordinator == locksmith.REBOOTING
    agent.boot(now + 60, random.Random(4))
    assert agent.version == NEXT and agent.status.operation == api.IDLE
    assert agent.status.last_checked_time == 0 and agent.coordinator == locksmith.RUNNING


def test_logged_in_users_hold_the_reboot_5_minutes() -> None:
    agent = FlatcarAgent("4152.2.0", FlatcarConfig(strategy=locksmith.REBOOT))
    agent.start(0.0, random.Random(1))
    world = FlatcarWorld(offer=NEXT, download_seconds=10.0, users=2)
    _, delays = _run(agent, world, "never")
    assert delays[-2:] == [300.0, 0.0] and agent.coordinator == locksmith.REBOOTING


def test_a_failed_check_passes_through_the_error_event_and_backs_off_only_after_500_or_503() -> None:
    def failed(error: int, interval: float) -> tuple[list[str], float, FlatcarAgent]:
        agent = FlatcarAgent("4152.2.0")
        agent.start(0.0, random.Random(1))
        agent.status = Status(last_checked_time=500)
        agent._interval = interval
        world = FlatcarWorld(offer=NEXT, check_error=error)
        rng = random.Random(5)
        agent.step(1000.0, world, rng)
        agent.step(1002.0, world, rng)
        delay = agent.step(1003.0, world, rng)
        return [s.operation for s in agent.take_changes()], delay, agent

    operations, delay, agent = failed(503, api.CHECK_INTERVAL)
    assert operations[1:] == [api.CHECKING, api.REPORTING_ERROR, api.IDLE]
    assert agent.status.last_checked_time == 500  # a failed check leaves it
    assert 2700 <= delay <= 8100  # 90 min, half of it either way
    assert failed(503, api.MAX_BACKOFF)[1] >= api.MAX_BACKOFF / 2  # at most 4 h, fuzzed
    assert 2400 <= failed(0, 2 * api.CHECK_INTERVAL)[1] <= 3000  # no response: 45 ± 5 min


def test_a_failed_install_is_an_error_event_and_the_update_is_offered_again() -> None:
    agent = FlatcarAgent("4152.2.0")
    agent.start(0.0, random.Random(1))
    world = FlatcarWorld(offer=NEXT, download_seconds=10.0, install_ok=False)
    _run(agent, world, api.REPORTING_ERROR)
    agent.step(0.0, world, random.Random(1))
    assert agent.status.operation == api.IDLE and agent.status.new_version == api.VERSION_ZERO
    _run(agent, replace(world, install_ok=True), api.NEED_REBOOT)
