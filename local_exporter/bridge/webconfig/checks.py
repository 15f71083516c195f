"""Password checks one at a time on a thread of their own, behind a short queue with a deadline.

bcrypt is slow on purpose, so checks run off the event loop, and one at a time, so a flood of
guesses takes one core rather than all. The thread is this queue's own, and the turn passes to
the next waiter only when the thread's check has returned (its concurrent future's callback),
never when the task awaiting it goes away: with `asyncio.to_thread` under an `asyncio.Lock`, a
cancelled waiter released the lock while its check still ran, and a flood ran 11 threads on
1.6-1.9 of 2 cores.

Guesses arrive far faster than checks finish (200 a second measured, against ~15 checks a second
at cost 10), so the queue is bounded in length and in time (limits.py): a check that cannot start
soon ends at once with `Busy`, and nobody waits past a scrape timeout for a verdict.

The next check to start is the waiter ranked lowest (for passwords: how often its address has
just failed), the earliest among equals, and a full queue makes room for a newcomer ranked below
its highest: a client that has not failed is not kept out by a flood from addresses that have. A
waiter whose task is cancelled (aiohttp cancels the handler of a client that disconnects) leaves
the queue at once, and each job is asked right before it would start whether it is still wanted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Protocol


class Busy(Exception):
    """The check could not start: the queue was full, or it waited too long. A one-line reason."""


class Job(Protocol):
    def rank(self) -> int:
        """Lower starts first. Asked whenever a waiter is chosen, so it may change while waiting."""

    def settled(self) -> bool | BaseException | None:
        """Right before the work would start: its answer if known by now (the same password was
        just checked), an exception to end it with instead (its client left, its address is
        throttled), or None to start it."""

    def work(self) -> bool:
        """The check itself, on the queue's thread."""

    def finished(self, result: bool) -> None:
        """On the loop, once `work` returned: called whether or not anyone still waits for it."""

    def dropped(self) -> None:
        """Its waiter was cancelled before the work started: the work never runs."""


@dataclass(eq=False)
class _Waiter:
    job: Job
    arrival: int
    answer: asyncio.Future[bool]
    expiry: asyncio.TimerHandle | None = None

    def order(self) -> tuple[int, int]:
        return self.job.rank(), self.arrival


class CheckQueue:
    def __init__(self, capacity: int, max_wait: float) -> None:
        self.capacity = capacity
        self.max_wait = max_wait
        # One worker, made at the first check; nothing else runs on it.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="password-check")
        self._waiting: list[_Waiter] = []
        # From a job's submission until its thread's result is back on the loop.
        self._running = False
        self._arrivals = itertools.count()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def run(self, job: Job) -> bool:
        """The job's answer. Raises `Busy`, or what the job's `settled` or `work` gave."""
        waiter = _Waiter(job, next(self._arrivals), asyncio.get_running_loop().create_future())
        if self._running:
            self._enqueue(waiter)
        else:
            self._start(waiter)
        return await waiter.answer

    def _enqueue(self, waiter: _Waiter) -> None:
        if len(self._waiting) >= self.capacity:
            last = max(self._waiting, key=_Waiter.order)
            if waiter.job.rank() >= last.job.rank():
                raise Busy("password checks busy: try again")
            self._remove(last)
            last.answer.set_exception(Busy("password checks busy: try again"))
        waiter.expiry = asyncio.get_running_loop().call_later(self.max_wait, self._expire, waiter)
        waiter.answer.add_done_callback(partial(self._left, waiter))
        self._waiting.append(waiter)

    def _left(self, waiter: _Waiter, answer: asyncio.Future[bool]) -> None:
        # Any ending calls this; only a cancelled waiter still in the queue is a client that left.
        if answer.cancelled() and waiter in self._waiting:
            self._remove(waiter)
            waiter.job.dropped()

    def _expire(self, waiter: _Waiter) -> None:
        if waiter in self._waiting:
            self._remove(waiter)
            waiter.answer.set_exception(
                Busy(f"password checks busy: not started within {self.max_wait:g} s, try again")
            )

    def _remove(self, waiter: _Waiter) -> None:
        self._waiting.remove(waiter)
        if waiter.expiry is not None:
            waiter.expiry.cancel()

    def _start(self, waiter: _Waiter) -> None:
        settled = waiter.job.settled()
        if isinstance(settled, BaseException):
            waiter.answer.set_exception(settled)
        elif settled is not None:
            waiter.answer.set_result(settled)
        else:
            self._running = True
            future = self._executor.submit(waiter.job.work)
            future.add_done_callback(partial(self._returned, asyncio.get_running_loop(), waiter))

    def _returned(self, loop: asyncio.AbstractEventLoop, waiter: _Waiter, future: Future[bool]) -> None:
        # On the queue's thread: the rest happens on the loop.
        with contextlib.suppress(RuntimeError):  # the loop closed first (exit): nobody waits
            loop.call_soon_threadsafe(self._finished, waiter, future)

    def _finished(self, waiter: _Waiter, future: Future[bool]) -> None:
        self._running = False
        try:
            error = future.exception()
            if error is None:
                waiter.job.finished(future.result())
            # Already done (cancelled): its client left while the check ran, and nobody reads it.
            if not waiter.answer.done():
                if error is None:
                    waiter.answer.set_result(future.result())
                else:
                    waiter.answer.set_exception(error)
        finally:
            self._next()

    def _next(self) -> None:
        while self._waiting and not self._running:
            waiter = min(self._waiting, key=_Waiter.order)
            self._remove(waiter)
            self._start(waiter)
