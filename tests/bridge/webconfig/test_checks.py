"""The password check queue (webconfig/checks.py) on its own real thread: one check at a time
whatever is cancelled, a bounded queue, a deadline to start, the lowest rank first, and no work
for a waiter that left. The jobs here block on an event, so a test decides when the thread is
free instead of guessing how long a check takes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from local_exporter.bridge.webconfig.checks import Busy, CheckQueue
from tests.support.bridges import until

# A job blocked longer than this fails its test rather than hang the thread at exit.
GATE_TIMEOUT = 30.0


@dataclass
class Log:
    """What the jobs did, written from the queue's thread and the loop."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    started: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    threads: set[int] = field(default_factory=set)
    running: int = 0
    most: int = 0


@dataclass
class Work:
    log: Log
    name: str
    ranked: int = 0
    gate: threading.Event | None = None
    answer: bool | BaseException | None = None
    error: Exception | None = None

    def rank(self) -> int:
        return self.ranked

    def settled(self) -> bool | BaseException | None:
        return self.answer

    def work(self) -> bool:
        with self.log.lock:
            self.log.started.append(self.name)
            self.log.threads.add(threading.get_ident())
            self.log.running += 1
            self.log.most = max(self.log.most, self.log.running)
        try:
            if self.gate is not None:
                assert self.gate.wait(GATE_TIMEOUT), f"{self.name}: the test never opened the gate"
            if self.error is not None:
                raise self.error
            return True
        finally:
            with self.log.lock:
                self.log.running -= 1

    def finished(self, result: bool) -> None:
        self.log.finished.append(self.name)

    def dropped(self) -> None:
        self.log.dropped.append(self.name)


@asynccontextmanager
async def holding(queue: CheckQueue, log: Log) -> AsyncIterator[asyncio.Task[bool]]:
    """The queue's thread busy with a job named "holder" until the block ends."""
    gate = threading.Event()
    holder = asyncio.create_task(queue.run(Work(log, "holder", gate=gate)))
    try:
        await until(lambda: "holder" in log.started)
        yield holder
    finally:
        gate.set()
        await asyncio.wait([holder])


async def test_a_cancelled_waiter_does_not_let_a_second_check_run_beside_its_own() -> None:
    log, queue = Log(), CheckQueue(4, GATE_TIMEOUT)
    async with holding(queue, log) as holder:
        # The client of the running check leaves: its task goes, its check does not.
        holder.cancel()
        await asyncio.wait([holder])
        second = asyncio.create_task(queue.run(Work(log, "second")))
        await until(lambda: queue.waiting == 1)
        assert log.started == ["holder"]
    assert await second is True
    assert log.started == ["holder", "second"]
    assert log.most == 1 and len(log.threads) == 1
    # The check whose client left still reports its result (its failure must count).
    assert log.finished == ["holder", "second"]


async def test_a_full_queue_refuses_at_once_and_makes_room_for_a_lower_rank() -> None:
    log, queue = Log(), CheckQueue(2, GATE_TIMEOUT)
    async with holding(queue, log) as holder:
        first = asyncio.create_task(queue.run(Work(log, "first", ranked=1)))
        last = asyncio.create_task(queue.run(Work(log, "last", ranked=1)))
        await until(lambda: queue.waiting == 2)
        with pytest.raises(Busy, match=r"^password checks busy: try again$"):
            await queue.run(Work(log, "same rank", ranked=1))
        fresh = asyncio.create_task(queue.run(Work(log, "fresh", ranked=0)))
        # The latest of the highest rank makes room.
        with pytest.raises(Busy, match=r"^password checks busy: try again$"):
            await last
        assert queue.waiting == 2
    assert (await holder, await fresh, await first) == (True, True, True)
    assert log.started == ["holder", "fresh", "first"]


async def test_a_check_that_cannot_start_in_time_is_busy_and_never_runs() -> None:
    log, queue = Log(), CheckQueue(4, 0.05)
    async with holding(queue, log):
        with pytest.raises(Busy, match=r"^password checks busy: not started within 0\.05 s, try again$"):
            await queue.run(Work(log, "late"))
        assert queue.waiting == 0
    assert log.started == ["holder"]


async def test_a_waiter_that_left_or_is_settled_by_its_turn_never_runs() -> None:
    log, queue = Log(), CheckQueue(4, GATE_TIMEOUT)
    async with holding(queue, log):
        gone = asyncio.create_task(queue.run(Work(log, "gone")))
        await until(lambda: queue.waiting == 1)
        gone.cancel()
        await asyncio.wait([gone])
        assert queue.waiting == 0 and log.dropped == ["gone"]
        refused = asyncio.create_task(queue.run(Work(log, "refused", answer=LookupError("its client left"))))
        known = asyncio.create_task(queue.run(Work(log, "known", answer=False)))
        await until(lambda: queue.waiting == 2)
    with pytest.raises(LookupError, match="its client left"):
        await refused
    assert await known is False
    assert log.started == ["holder"] and log.dropped == ["gone"]


async def test_a_check_that_raises_fails_its_waiter_and_the_next_one_runs() -> None:
    log, queue = Log(), CheckQueue(4, GATE_TIMEOUT)
    async with holding(queue, log):
        broken = asyncio.create_task(queue.run(Work(log, "broken", error=ValueError("bad hash"))))
        after = asyncio.create_task(queue.run(Work(log, "after")))
        await until(lambda: queue.waiting == 2)
    with pytest.raises(ValueError, match="bad hash"):
        await broken
    assert await after is True
    assert log.started == ["holder", "broken", "after"] and log.finished == ["holder", "after"]
