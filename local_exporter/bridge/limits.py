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

# Scrapes being answered at once, from arrival until the answer is written, all selectors
# together (config key `service.max_in_flight`): past it a scrape is refused with 503 rather than
# queued, so a flood, a hung source or clients that do not read cannot pile up sockets and memory.
DEFAULT_MAX_IN_FLIGHT = 256
MAX_MAX_IN_FLIGHT = 100_000
# Bytes of answers held at once, every scrape together (config key `service.max_answer_bytes`):
# an answer is held from its read until it is written, copied into its connection's buffer while
# the client is slow to read. 64 MiB leaves the shipped unit's MemoryMax (256M) room for the
# process itself (~40 MB), the sources' read buffers and a reload.
DEFAULT_MAX_ANSWER_BYTES = 64 * 1024 * 1024
MAX_MAX_ANSWER_BYTES = 64 * 1024 * 1024 * 1024
# Writing one answer may take this long (config key `service.write_timeout`); a client that
# reads nothing meanwhile is dropped. Prometheus reads at once, and gives up at its own scrape
# timeout (at most a minute in practice) anyway.
DEFAULT_WRITE_TIMEOUT_SECONDS = 30.0

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
# Connections open at once (config key `service.max_connections`), kept below the open-file
# limit less RESERVED_DESCRIPTORS (connections.py): a few KB each, so the default fits the
# shipped unit's MemoryMax with room; its LimitNOFILE is twice it.
DEFAULT_MAX_CONNECTIONS = 4096
MAX_MAX_CONNECTIONS = 1_000_000
# Descriptors kept for what is not a client connection: the sources' sockets and files, the
# buses, the listening socket, logs, the event loop's own.
RESERVED_DESCRIPTORS = 64
# Connections the kernel completes before the bridge accepts them (config key
# `service.listen_backlog`; Linux caps it at net.core.somaxconn, 4096 by default): asyncio's
# default of 100 dropped a health check during a 3,000-connection burst.
DEFAULT_LISTEN_BACKLOG = 4096
MAX_LISTEN_BACKLOG = 65535

# A request line (the URL with its query) or one header field longer than this is a 400, and so
# is a request with more header fields than MAX_REQUEST_HEADERS (aiohttp's own defaults).
MAX_REQUEST_LINE_BYTES = 8190
MAX_REQUEST_HEADERS = 128

# Taken off Prometheus' scrape timeout so our answer, even a 504, arrives in time
# (blackbox_exporter's convention; config key `service.scrape_timeout_offset`).
DEFAULT_SCRAPE_TIMEOUT_OFFSET = 0.5
# An istr, as aiohttp's own header names: looked up without case-folding the name each time.
SCRAPE_TIMEOUT_HEADER = istr("X-Prometheus-Scrape-Timeout-Seconds")

# Basic auth's password checks (webconfig/basic_auth.py, checks.py; not keys of the web config,
# whose format is the toolkit's). A bcrypt check costs ~65 ms at cost 10 on purpose and checks run
# one at a time, so a flood of guesses (200 a second measured) far outruns them: these bound what
# a flood costs and how long a real client waits behind one.
# Checks waiting to start. At cost 10 all 16 start within ~1 s, inside the wait below, so the
# queue holds no more than can be served in time; it is room for an HA pair of Prometheus
# servers logging in every job at once after a restart or a password change. Past it: 503 at
# once, rather than a wait that would end in a 503 anyway.
PASSWORD_CHECKS_WAITING = 16
# The longest a check may wait to start before its request gets 503. Prometheus' default scrape
# timeout is 10 s, and after the check (~65 ms) the scrape still has its source to read (within
# DEFAULT_TIMEOUT_SECONDS, 5 s): 2 s of waiting leaves room for both, and for the offset.
PASSWORD_CHECK_MAX_WAIT_SECONDS = 2.0
# Failed checks an address may cause within 10 s of its first: then 429, with no check, until
# those 10 s are over. A person mistyping gets 5 tries; a guesser 0.5 guesses a second instead
# of the whole thread's ~15. A Prometheus with a wrong password sends the same one every scrape:
# a cached failure, not a check, so it is never throttled and keeps getting its 401.
PASSWORD_FAILURES_PER_ADDRESS = 5
PASSWORD_FAILURE_WINDOW_SECONDS = 10.0
# Addresses whose failures are remembered, the least recently failed forgotten first: ~200
# bytes each, so a flood from many addresses holds under 1 MB.
PASSWORD_FAILURE_ADDRESSES = 4096
# Verdicts cached by a 32-byte digest of (user, hash, password), in two caches. Right passwords:
# only a right password adds one, so no flood of guesses can evict what Prometheus sends every
# scrape. Wrong ones, fewer: a misconfigured Prometheus costs one check instead of one a scrape,
# and a flood of distinct guesses only churns these.
PASSWORD_SUCCESSES_CACHED = 1024
PASSWORD_FAILURES_CACHED = 256


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
