"""Deadlines and caps: every default and bound in one place.

The deadline of a scrape is the smaller of the selector's `timeout` and the Prometheus
scrape timeout (header) minus an offset, so the bridge answers before Prometheus gives up.
"""

from __future__ import annotations

import math

from multidict import istr

# Per-selector defaults (config keys `timeout`, `max_bytes`).
DEFAULT_TIMEOUT_SECONDS = 5.0
MAX_TIMEOUT_SECONDS = 300.0
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
MAX_MAX_BYTES = 1024 * 1024 * 1024

# Scrapes waiting on sources at once, all selectors together (config key
# `service.max_in_flight`): past it a scrape is refused with 503 rather than queued, so a flood
# or a hung source cannot pile up sockets and memory.
DEFAULT_MAX_IN_FLIGHT = 256
MAX_MAX_IN_FLIGHT = 100_000
# Concurrent reads of one selector's source (config key `max_concurrency`). With `coalesce`
# (the default) concurrent scrapes share one read, so this only binds when coalescing is off.
DEFAULT_MAX_CONCURRENCY = 4
MAX_MAX_CONCURRENCY = 1_000

# A connection must send a complete request header this soon after connecting (config key
# `service.header_timeout`), or it gets a 408 and is closed: no slowloris client can hold a
# socket longer. With TLS, the handshake before it has as long again.
DEFAULT_HEADER_TIMEOUT_SECONDS = 10.0
# An idle keep-alive connection, or one trickling a later request's header, is closed after
# this (config key `service.idle_timeout`): longer than common scrape intervals, so Prometheus
# keeps its connection from one scrape to the next.
DEFAULT_IDLE_TIMEOUT_SECONDS = 180.0
MAX_CONNECTION_TIMEOUT_SECONDS = 3600.0
# A request line (the URL with its query) or one header field longer than this is a 400, and so
# is a request with more header fields than MAX_REQUEST_HEADERS (aiohttp's own defaults).
MAX_REQUEST_LINE_BYTES = 8190
MAX_REQUEST_HEADERS = 128

# Taken off Prometheus' scrape timeout so our answer, even a 504, arrives in time
# (blackbox_exporter's convention; config key `service.scrape_timeout_offset`).
DEFAULT_SCRAPE_TIMEOUT_OFFSET = 0.5
# An istr, as aiohttp's own header names: looked up without case-folding the name each time.
SCRAPE_TIMEOUT_HEADER = istr("X-Prometheus-Scrape-Timeout-Seconds")


class BadScrapeTimeout(ValueError):
    """The scrape-timeout header is not a positive number of seconds."""


def scrape_deadline(selector_timeout: float, header: str | None, offset: float) -> float:
    """Seconds this scrape may take.

    With no header, the selector's own timeout. When the header leaves no room for the offset
    (a scrape timeout of 0.5 s or less), half the header: an answer must still come first.
    """
    if header is None:
        return selector_timeout
    try:
        scrape_timeout = float(header)
    except ValueError:
        raise BadScrapeTimeout(f"{SCRAPE_TIMEOUT_HEADER} is not a number: {header[:40]!r}") from None
    if not math.isfinite(scrape_timeout) or scrape_timeout <= 0:
        raise BadScrapeTimeout(f"{SCRAPE_TIMEOUT_HEADER} must be a positive number, got {header[:40]!r}")
    budget = scrape_timeout - offset
    if budget <= 0:
        budget = scrape_timeout / 2
    return min(selector_timeout, budget)
