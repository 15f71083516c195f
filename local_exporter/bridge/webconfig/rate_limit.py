"""Rates the web config's guard enforces.

`TokenBucket`, behind `rate_limit`: `burst` requests at once, one more per `interval`. One
bucket for the whole server, as the exporter-toolkit's: it protects the host's sources and CPU,
not fairness between clients. It starts full.

`FailureThrottle`, behind basic auth (not a key of the file, as in the toolkit there is none):
failed password checks per client address, so that one address cannot spend the password
thread on guesses.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from local_exporter.bridge.webconfig.config import RateLimit


class TokenBucket:
    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self.tokens = float(limit.burst)
        self.updated = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(float(self.limit.burst), self.tokens + (now - self.updated) / self.limit.interval)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class FailureThrottle:
    """`limit` failures from an address within `window` seconds of its first, and the address is
    refused until those seconds are over.

    A window starting at the first failure, rather than a sliding one, keeps two numbers per
    address. At most `size` addresses are remembered, the least recently failed forgotten first,
    so a flood from many addresses cannot grow memory (an address forgotten that way may try
    again early; every check still waits in the bounded queue). Times are time.monotonic().
    """

    def __init__(self, limit: int, window: float, size: int) -> None:
        self.limit = limit
        self.window = window
        self.size = size
        # address -> (when its window started, failures in it); the most recently failed last.
        self._addresses: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._addresses)

    def failures(self, address: str, now: float) -> int:
        """The address's failures in its current window (0 once the window is over)."""
        entry = self._addresses.get(address)
        if entry is None or now - entry[0] >= self.window:
            return 0
        return entry[1]

    def retry_after(self, address: str, now: float) -> float | None:
        """Seconds until the address may be checked again; None if it may be now."""
        entry = self._addresses.get(address)
        if entry is None:
            return None
        started, failures = entry
        if now - started >= self.window:
            del self._addresses[address]
            return None
        return started + self.window - now if failures >= self.limit else None

    def failed(self, address: str, now: float) -> None:
        started, failures = self._addresses.pop(address, (now, 0))
        if now - started >= self.window:
            started, failures = now, 0
        self._addresses[address] = (started, failures + 1)
        if len(self._addresses) > self.size:
            self._addresses.popitem(last=False)

    def forget(self, address: str) -> None:
        """The address gave a right password: its failures no longer count."""
        self._addresses.pop(address, None)
