"""The connection cap, and the open-file limit it stays under.

Every connection holds a file descriptor. Under the soft limit a process gets by default (1024)
about a thousand connections that send half a header took every descriptor: the accept loop
then fails with EMFILE, and `/-/healthy` was refused for the header timeout at a time, with no
log line and no metric. So:

- at start the soft RLIMIT_NOFILE is raised to the hard limit, as Go programs do (Go 1.19+), and
  the cap is kept below it with room for the sources' own sockets and files;
- at the cap, a new connection displaces the oldest connection still waiting for its first
  request header: an attacker's half-open connections make room for a health check or a scrape
  (which sends its header at once), while connections serving requests, and idle keep-alive
  ones (Prometheus' between scrapes), are never displaced. Only when every connection is past
  its first header is the new one closed;
- both are counted (`local_exporter_bridge_connections_dropped_total{reason}`), the open ones
  shown (`local_exporter_bridge_connections_open`), and a warning is logged at most once a
  minute while it goes on.
"""

from __future__ import annotations

import logging
import math
import resource
import time
from typing import Protocol

from local_exporter.bridge import limits
from local_exporter.common.logs import fields

log = logging.getLogger("local_exporter.server")
# How often, at most, the cap's warning is logged while connections are dropped.
LOG_INTERVAL_SECONDS = 60.0
DROP_REASONS = ("displaced", "refused")


class Displaceable(Protocol):
    def displace(self) -> None:
        """Close this connection at once: a newer one needs its place."""


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; the soft limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (OSError, ValueError):  # a sandbox may refuse; the cap then follows the old limit
            log.debug("cannot raise the open-file limit", extra=fields(soft=soft, hard=hard))
    return soft if soft != resource.RLIM_INFINITY else limits.MAX_MAX_CONNECTIONS


def connection_cap(configured: int, open_files: int) -> int:
    """The cap in force: the configured one, or what the open-file limit leaves room for."""
    return max(1, min(configured, open_files - limits.RESERVED_DESCRIPTORS))


class Connections:
    """The open connections, in the order they came, and those still waiting for a header."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        # Insertion-ordered: the first is the oldest connection without a complete header.
        self._waiting: dict[Displaceable, None] = {}
        self._logged_at = -math.inf
        self._logged = dict.fromkeys(DROP_REASONS, 0)

    def admit(self, connection: Displaceable) -> bool:
        """Whether `connection` may stay open; at the cap it displaces the oldest waiting one."""
        if self.open >= self.limit:
            oldest = next(iter(self._waiting), None)
            if oldest is None:
                self._dropped("refused")
                return False
            del self._waiting[oldest]
            oldest.displace()
            self._dropped("displaced")
        self.open += 1
        self._waiting[connection] = None
        return True

    def header_received(self, connection: Displaceable) -> None:
        self._waiting.pop(connection, None)

    def closed(self, connection: Displaceable) -> None:
        """An admitted connection is gone (its own close, or displaced)."""
        self.open -= 1
        self._waiting.pop(connection, None)

    def _dropped(self, reason: str) -> None:
        self.dropped[reason] += 1
        now = time.monotonic()
        if now - self._logged_at < LOG_INTERVAL_SECONDS:
            return
        since = {f"{key}_since_last": self.dropped[key] - self._logged[key] for key in DROP_REASONS}
        log.warning(
            "connection cap reached: connections dropped",
            extra=fields(cap=self.limit, open=self.open, **since, hint="raise service.max_connections or LimitNOFILE"),
        )
        self._logged_at, self._logged = now, dict(self.dropped)
