"""Scrape deadlines for every in-flight scrape, kept by one timer.

`asyncio.timeout` arms and cancels a loop timer per scrape: 9-11 µs on uvloop, the largest
single cost the bridge adds to a featureless relay (docs/benchmarks.md). Here a scrape only
registers its task and deadline in a dict (well under a microsecond) and one timer, set for the
earliest deadline, cancels overdue scrapes. Scrapes of one job share a deadline length and
arrive in order, so a new deadline is almost never earlier than the armed one and the timer is
re-armed about once per deadline length, not per scrape.
"""

from __future__ import annotations

import asyncio


class Deadlines:
    def __init__(self) -> None:
        self._due: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        # uvloop returns a plain Handle, which has no when(), for a timer due within a
        # millisecond (it runs it at once): the due time is kept here instead.
        self._timer: asyncio.Handle | None = None
        self._timer_due = 0.0

    def watch(self, task: asyncio.Task[object], seconds: float) -> None:
        """Cancel `task` if it is still watched `seconds` from now."""
        loop = asyncio.get_running_loop()
        due = loop.time() + seconds
        self._due[task] = due
        if self._timer is None or due < self._timer_due:
            self._arm(loop, due)

    def unwatch(self, task: asyncio.Task[object]) -> bool:
        """Stop watching `task`; True if its deadline had passed and it was cancelled for it."""
        self._due.pop(task, None)
        if self._expired and task in self._expired:
            self._expired.discard(task)
            return True
        return False

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(due, self._fire)
        self._timer_due = due

    def _fire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        for task, due in list(self._due.items()):
            if due <= now:
                del self._due[task]
                self._expired.add(task)
                task.cancel()
        if self._due:
            self._arm(loop, min(self._due.values()))
