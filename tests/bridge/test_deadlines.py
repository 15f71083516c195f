"""One timer for every in-flight scrape: overdue tasks are cancelled, in deadline order."""

from __future__ import annotations

import asyncio
import time

import pytest

from local_exporter.bridge.deadlines import Deadlines


async def sleeper(deadlines: Deadlines, seconds: float, sleep: float) -> tuple[str, float]:
    task = asyncio.current_task()
    assert task is not None
    started = time.monotonic()
    deadlines.watch(task, seconds)
    try:
        await asyncio.sleep(sleep)
    except asyncio.CancelledError:
        assert deadlines.unwatch(task), "cancelled for its deadline"
        task.uncancel()
        return "expired", time.monotonic() - started
    assert not deadlines.unwatch(task)
    return "finished", time.monotonic() - started


async def test_each_task_expires_at_its_own_deadline_whatever_the_order() -> None:
    deadlines = Deadlines()
    results = await asyncio.gather(
        sleeper(deadlines, 0.3, 5),  # armed first, due last
        sleeper(deadlines, 0.1, 5),  # due earlier: re-arms the timer
        sleeper(deadlines, 0.2, 5),  # found again when the timer re-arms after firing
        sleeper(deadlines, 5, 0.05),  # finishes in time
    )
    assert [r[0] for r in results] == ["expired", "expired", "expired", "finished"]
    for (_, elapsed), due in zip(results[:3], (0.3, 0.1, 0.2), strict=True):
        assert due <= elapsed < due + 0.15
    deadlines.close()


async def test_unwatched_task_is_never_cancelled() -> None:
    deadlines = Deadlines()
    task = asyncio.current_task()
    assert task is not None
    deadlines.watch(task, 0.05)
    assert not deadlines.unwatch(task)
    await asyncio.sleep(0.15)  # the timer fires and finds nothing to cancel
    assert task.cancelling() == 0
    deadlines.close()


async def test_a_cancellation_from_elsewhere_is_not_taken_for_a_deadline() -> None:
    deadlines = Deadlines()

    async def victim() -> bool:
        task = asyncio.current_task()
        assert task is not None
        deadlines.watch(task, 5)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return deadlines.unwatch(task)
        return True

    task = asyncio.ensure_future(victim())
    await asyncio.sleep(0.01)
    task.cancel()  # e.g. the client went away
    assert await task is False
    deadlines.close()


def test_deadlines_a_fraction_of_a_millisecond_apart_on_uvloop() -> None:
    # uvloop answers call_at for less than a millisecond ahead with a Handle that has no when():
    # found by bench/soak.py, where it turned healthy scrapes into internal errors.
    uvloop = pytest.importorskip("uvloop")

    async def main() -> list[bool]:
        deadlines = Deadlines()
        tasks = [asyncio.ensure_future(asyncio.sleep(1)) for _ in range(40)]
        for i, task in enumerate(tasks[:20]):
            deadlines.watch(task, 0.01 + i * 0.0001)
        await asyncio.sleep(0.0105)  # the first have fired; the timer is re-armed for the next
        for task in tasks[20:]:
            deadlines.watch(task, 0.001)
        await asyncio.gather(*tasks, return_exceptions=True)
        expired = [deadlines.unwatch(task) for task in tasks]
        deadlines.close()
        return expired

    assert uvloop.run(main()) == [True] * 40
