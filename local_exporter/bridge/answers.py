"""What a scrape holds from the moment it arrives until its answer is written: a slot of
`service.max_in_flight`, and the answer's bytes in one budget for the whole bridge.

Measured before this existed: 300 clients that asked for a 5 MB selector and never read held
3.1 GB of RSS (each unsent answer is copied into its connection's write buffer), and 1,000
concurrent scrapes of a slow 5 MB source peaked at 4.67 GB. So:

- a scrape counts against `max_in_flight` from its arrival until its answer is written, whatever
  its source (a file answers without waiting, a coalesced scrape joins another's read);
- an answer's bytes count against `service.max_answer_bytes` until it is written; a scrape that
  arrives while the budget is spent, or whose answer would overspend it, gets a 503 at once;
- writing an answer has a deadline (`service.write_timeout`): a client that does not read is
  dropped and its bytes given back;
- large buffers go back to the system when freed (glibc's mmap threshold fixed at 128 KiB, and
  the heap trimmed when the budget empties after a burst), so RSS returns near its idle level.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import weakref
from collections.abc import Callable
from typing import Any

from aiohttp import web

# mallopt(M_MMAP_THRESHOLD): a fixed threshold also turns off glibc's dynamic one, which after
# one 5 MB answer is freed would serve the next ones from a heap that never shrinks.
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 128 * 1024
# A burst that held at least this much is trimmed from the heap once the budget is empty again.
_TRIM_AFTER_BYTES = 16 * 1024 * 1024


def _libc() -> Any:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _libc()


def return_freed_memory() -> None:
    """Make glibc hand large freed buffers back to the system (no-op elsewhere)."""
    if _LIBC is not None:
        _LIBC.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)


class AnswerBudget:
    """Scrapes being answered and the bytes of their answers, for the whole bridge."""

    def __init__(self, max_in_flight: int, max_bytes: int, write_timeout: float) -> None:
        self.max_in_flight = max_in_flight
        self.max_bytes = max_bytes
        self.write_timeout = write_timeout
        self.in_flight = 0
        self.held = 0
        self.peak_since_trim = 0
        self.write_timeouts = 0

    def configure(self, max_in_flight: int, max_bytes: int, write_timeout: float) -> None:
        self.max_in_flight, self.max_bytes, self.write_timeout = max_in_flight, max_bytes, write_timeout

    def take(self, size: int) -> bool:
        """Hold `size` more bytes, unless that overspends the budget. One answer larger than the
        whole budget is still served when nothing else is held, so no selector is shut out."""
        if self.held + size > self.max_bytes and self.held > 0:
            return False
        self.held += size
        if self.held > self.peak_since_trim:
            self.peak_since_trim = self.held
        return True

    def give_back(self, size: int) -> None:
        self.held -= size
        if self.held == 0 and self.peak_since_trim >= _TRIM_AFTER_BYTES:
            self.peak_since_trim = 0
            if _LIBC is not None:
                _LIBC.malloc_trim(0)


class HeldAnswer(web.Response):
    """A 200 whose in-flight slot and bytes are given back once it is written, or has failed,
    or was never sent; its writing is bounded by the budget's write timeout."""

    def __init__(self, budget: AnswerBudget, size: int, **options: Any) -> None:
        super().__init__(**options)
        self._budget = budget
        # Called exactly once: after the write, or when the response is dropped unsent.
        self._release: Callable[[], Any] = weakref.finalize(self, _release, budget, size)

    async def write_eof(self, data: bytes = b"") -> None:
        try:
            async with asyncio.timeout(self._budget.write_timeout):
                await super().write_eof(data)
        except TimeoutError:
            self._budget.write_timeouts += 1
            request = self._req
            if request is not None and request.transport is not None:
                request.transport.abort()  # its unsent bytes are freed with it
            raise ConnectionResetError(f"the client read nothing for {self._budget.write_timeout:g} s") from None
        finally:
            self._release()


def _release(budget: AnswerBudget, size: int) -> None:
    budget.in_flight -= 1
    budget.give_back(size)
