"""What can go wrong on a scrape, and the one table that maps it to an HTTP status.

    SourceError                 a source could not produce a complete exposition
    ├── SourceUnavailable       nothing to talk to: ENOENT, refused, permission, DBus name not owned
    │                           or nobody accepting: a Unix socket's listen backlog is full
    ├── SourceFailed            the source answered with an error (e.g. a DBus error reply)
    ├── BadPayload              the source answered, but not with a complete text exposition
    ├── PayloadTooLarge         the source wrote more than the selector's max_bytes
    └── DeadlineExceeded        no complete answer in time (raised by the bridge, which owns the deadline)

Sources raise only these errors; the bridge turns them into a status, a reason, a counted
outcome and one log line.
"""

from __future__ import annotations

from typing import ClassVar

# outcome label value -> HTTP status. The single source of truth for the status table; the
# metrics module pre-creates one series per selector for every outcome listed here.
OUTCOME_STATUS: dict[str, int] = {
    "success": 200,
    "unavailable": 503,
    "failed": 502,
    "bad_payload": 502,
    "too_large": 502,
    "timeout": 504,
    # A file older than its selector's max_age: the daemon stopped rewriting it.
    "stale": 503,
    # The source failed, and the last good answer of a source that keeps one (a release feed)
    # was served instead: the failure is logged, and the answer's age is on /metrics.
    "last_good": 200,
    # The client went away before we answered; nobody reads the status.
    "cancelled": 499,
    # A bug in the bridge itself; never expected, but counted rather than hidden.
    "internal_error": 500,
}

# Requests refused before any selector is involved: reason label value -> HTTP status.
REJECTION_STATUS: dict[str, int] = {
    "bad_request": 400,
    "unknown_selector": 404,
    # Too many scrapes being answered at once (service.max_in_flight).
    "overloaded": 503,
    # The answers being written hold service.max_answer_bytes already (answers.py).
    "answer_memory": 503,
    # Too many reads of one selector's source at once (its max_concurrency).
    "selector_busy": 503,
    # Any endpoint, by the web config (webconfig/guard.py): no or wrong user and password, a
    # client certificate without an allowed SAN, over the rate limit.
    "unauthorized": 401,
    "forbidden": 403,
    "rate_limited": 429,
    # Any endpoint, by basic auth (webconfig/checks.py, limits.py): a password check could not
    # start soon enough (the queue was full, or the wait too long), so the request is answered at
    # once rather than past the scrape timeout; and an address that has just failed too often.
    "auth_busy": 503,
    "auth_throttled": 429,
    # Any endpoint, by the server (server.py): no complete request header in time (slowloris).
    "header_timeout": 408,
    # POST /-/reload without serve --web.enable-lifecycle (Prometheus' convention): anyone who
    # can reach the port could otherwise make the bridge re-read its files.
    "lifecycle_disabled": 403,
}


class SourceError(Exception):
    """A source could not produce a complete exposition; the message is a one-line reason."""

    outcome: ClassVar[str] = "failed"

    @property
    def status(self) -> int:
        return OUTCOME_STATUS[self.outcome]


class SourceUnavailable(SourceError):
    outcome = "unavailable"


class SourceStale(SourceError):
    outcome = "stale"


class SourceFailed(SourceError):
    outcome = "failed"


class BadPayload(SourceError):
    outcome = "bad_payload"


class PayloadTooLarge(SourceError):
    outcome = "too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"payload exceeds max_bytes ({limit} bytes)")
        self.limit = limit


class DeadlineExceeded(SourceError):
    outcome = "timeout"


def from_os_error(action: str, target: str, exc: OSError, unavailable: frozenset[int]) -> SourceError:
    """`connect /run/x.sock: No such file or directory`, as unavailable when errno says so."""
    message = f"{action} {target}: {exc.strerror or exc.__class__.__name__}"
    if exc.errno in unavailable:
        return SourceUnavailable(message)
    return SourceFailed(message)
