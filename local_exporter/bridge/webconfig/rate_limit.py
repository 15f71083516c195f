"""The token bucket behind `rate_limit`: `burst` requests at once, one more per `interval`.

One bucket for the whole server, as the exporter-toolkit's: it protects the host's sources
and CPU, not fairness between clients. It starts full.
"""

from __future__ import annotations

import time

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
