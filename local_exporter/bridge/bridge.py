"""`GET /bridge?selector=NAME`: one scrape, fanned out to the selector's source.

Everything that is the same for every kind lives here: the deadline (selector timeout and the
Prometheus scrape-timeout header), complete-or-error answers, the status table, the
Content-Type, compression, the selector's metrics and one log line per failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Sequence

from aiohttp import web

from local_exporter.bridge import labels, payload
from local_exporter.bridge.answers import AnswerBudget, HeldAnswer
from local_exporter.bridge.config import ServiceConfig
from local_exporter.bridge.deadlines import Deadlines
from local_exporter.bridge.errors import OUTCOME_STATUS, REJECTION_STATUS, DeadlineExceeded, SourceError
from local_exporter.bridge.limits import SCRAPE_TIMEOUT_HEADER, BadScrapeTimeout, scrape_deadline
from local_exporter.bridge.metrics import ExporterMetrics
from local_exporter.bridge.responses import exposition, text
from local_exporter.bridge.selectors import Read, Selector, Selectors
from local_exporter.bridge.sources.base import KeepsLastGood
from local_exporter.common.logs import fields

log = logging.getLogger("local_exporter.bridge")
# Echoed names are cut short: an unknown selector is whatever a client typed.
_ECHO_LIMIT = 64
_MEMO_LIMIT = 64


class Bridge:
    def __init__(self, selectors: Selectors, metrics: ExporterMetrics, service: ServiceConfig) -> None:
        self.selectors = selectors
        self.metrics = metrics
        self.timeout_offset = service.scrape_timeout_offset
        # Scrapes being answered, and their answers' bytes, every selector together (answers.py).
        self.budget = AnswerBudget(service.max_in_flight, service.max_answer_bytes, service.write_timeout)
        self.deadlines = Deadlines()

    def configure(self, service: ServiceConfig) -> None:
        """A reloaded `[service]`: the caps and the offset apply to the next scrape."""
        if service.scrape_timeout_offset != self.timeout_offset:
            # Every remembered deadline was computed with the old offset.
            for selector in self.selectors.by_name.values():
                selector.deadlines.clear()
        self.timeout_offset = service.scrape_timeout_offset
        self.budget.configure(service.max_in_flight, service.max_answer_bytes, service.write_timeout)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        # The usual scrape (one known selector, a scrape-timeout header value seen before) is
        # decided by dict lookups here: each Python call costs ~0.5 % of a scrape. `_target`
        # handles the rest: the first sight of a header value and every refusal.
        names = request.query.getall("selector", ())
        selector = self.selectors.by_name.get(names[0]) if len(names) == 1 else None
        deadline = None if selector is None else selector.deadlines.get(request.headers.get(SCRAPE_TIMEOUT_HEADER))
        if selector is None or deadline is None:
            target = self._target(request, names)
            if isinstance(target, web.Response):
                return target
            selector, deadline = target
        shared = selector.shared
        budget = self.budget
        # Inline comparisons: the usual scrape pays three, not a call (see `handle`'s first comment).
        if (
            budget.in_flight >= budget.max_in_flight
            or budget.held >= budget.max_bytes
            or (shared is None and selector.reads >= selector.config.max_concurrency)
        ):
            return self._refusal(selector)
        # The slot is the answer's from here: a HeldAnswer gives it back once written, and every
        # other way out of this scrape (a refusal, an error, a cancellation) at the `finally`.
        budget.in_flight += 1
        held: web.Response | None = None
        started = time.perf_counter()
        try:
            try:
                if shared is not None:
                    selector.metrics.coalesced += 1
                    body = await self._within(selector, shared, deadline, started)
                else:
                    answer = selector.source.fetch()
                    # A source that answers without waiting (a file) returns bytes: with nothing
                    # awaited, no deadline can pass and no client can go away, so none is registered
                    # (~4 k instructions a scrape, docs/benchmarks.md).
                    if isinstance(answer, bytes):
                        body = answer
                    else:
                        body = await self._within(selector, self._read(selector, answer), deadline, started)
                content_type = payload.content_type(body)
            except SourceError as exc:
                stand_in = _last_good(selector)
                if stand_in is None:
                    return self._failed(selector, exc.outcome, str(exc), started)
                duration = time.perf_counter() - started
                self._note_failure(selector, exc.outcome, str(exc), duration, last_good=True)
                selector.metrics.record("last_good", duration)
                held = self._held(request, selector, stand_in, payload.content_type(stand_in))
                return held
            except Exception as exc:
                log.debug("internal error", exc_info=True)
                return self._failed(selector, "internal_error", f"internal error: {exc!r}"[:200], started)
            held = self._held(request, selector, body, content_type)
            if isinstance(held, HeldAnswer):
                selector.metrics.record_success(len(body), started, time.perf_counter())
                if selector.failure is not None:
                    selector.failure = None
                    log.info("scrape recovered", extra=fields(selector=selector.config.name))
            return held
        finally:
            if not isinstance(held, HeldAnswer):
                budget.in_flight -= 1

    def _held(self, request: web.Request, selector: Selector, body: bytes, content_type: str) -> web.Response:
        """The answer, its bytes held in the budget until written; a 503 if they would overspend it."""
        size = len(body)
        if not self.budget.take(size):
            return self._over_budget(size)
        try:
            if selector.config.labels:
                body = labels.inject(body, selector.config.labels)
            return exposition(request, body, content_type, self.budget, size)
        except BaseException:
            self.budget.give_back(size)
            raise

    def _over_budget(self, size: int | None = None) -> web.Response:
        budget = self.budget
        more = "" if size is None else f"; {size} more would pass it"
        return self._reject(
            "answer_memory",
            f"answers being written hold {budget.held} bytes of service.max_answer_bytes ({budget.max_bytes})"
            f"{more}: try again later",
        )

    def _refusal(self, selector: Selector) -> web.Response:
        """The 503 for a scrape past a cap: the bridge's scrapes or answer bytes, or the selector's reads."""
        budget = self.budget
        if budget.in_flight >= budget.max_in_flight:
            return self._reject("overloaded", f"{budget.in_flight} scrapes already being answered: try again later")
        if budget.held >= budget.max_bytes:
            return self._over_budget()
        return self._reject(
            "selector_busy",
            f"selector {selector.config.name}: {selector.reads} reads of its source already running",
        )

    def _read(self, selector: Selector, pending: Awaitable[bytes]) -> Read:
        """Start a read of the selector's source; with coalescing, later scrapes join it."""
        read = Read(asyncio.ensure_future(pending))
        selector.reads += 1
        selector.running.add(read.task)

        def finished(task: asyncio.Future[bytes]) -> None:
            selector.reads -= 1
            selector.running.discard(task)
            if selector.shared is read:
                selector.shared = None
            if not task.cancelled():
                task.exception()  # retrieved: every waiter has its own copy, or none is left

        read.task.add_done_callback(finished)
        if selector.config.coalesce:
            selector.shared = read
        return read

    async def _within(self, selector: Selector, read: Read, deadline: float, started: float) -> bytes:
        """Await a read under this scrape's deadline, counted as in flight meanwhile. The read
        outlives a scrape that leaves while others still wait for it."""
        task = asyncio.current_task()
        assert task is not None
        metrics = selector.metrics
        metrics.in_flight += 1
        read.waiters += 1
        try:
            # Inside the try: whatever fails from here on, the counts above are given back.
            self.deadlines.watch(task, deadline)
            return await asyncio.shield(read.task)
        except asyncio.CancelledError:
            if self.deadlines.unwatch(task) and task.uncancel() == 0:
                raise DeadlineExceeded(f"no complete answer within the {deadline:g} s deadline") from None
            # The client went away: the source work is cancelled with us. Not a source failure.
            metrics.record("cancelled", time.perf_counter() - started)
            log.info("scrape cancelled: client went away", extra=fields(selector=selector.config.name))
            raise
        finally:
            self.deadlines.unwatch(task)
            metrics.in_flight -= 1
            read.waiters -= 1
            if read.waiters == 0 and not read.task.done():
                read.task.cancel()

    def _target(self, request: web.Request, names: Sequence[str]) -> tuple[Selector, float] | web.Response:
        """The selector and deadline a request asks for, or the 400/404 answer."""
        if len(names) != 1 or not names[0]:
            if not any(names):
                return self._reject("bad_request", "missing selector: use /bridge?selector=NAME")
            return self._reject("bad_request", f"selector given {len(names)} times: give exactly one")
        selector = self.selectors.by_name.get(names[0])
        if selector is None:
            return self._reject("unknown_selector", f"unknown selector {_echo(names[0])}")
        header = request.headers.get(SCRAPE_TIMEOUT_HEADER)
        deadline = selector.deadlines.get(header)
        if deadline is None:
            try:
                deadline = scrape_deadline(selector.config.timeout, header, self.timeout_offset)
            except BadScrapeTimeout as exc:
                return self._reject("bad_request", str(exc))
            if len(selector.deadlines) < _MEMO_LIMIT:
                selector.deadlines[header] = deadline
        return selector, deadline

    def _reject(self, reason: str, message: str) -> web.Response:
        self.metrics.rejected(reason)
        return text(REJECTION_STATUS[reason], message)

    def _failed(self, selector: Selector, outcome: str, reason: str, started: float) -> web.Response:
        duration = time.perf_counter() - started
        selector.metrics.record(outcome, duration)
        self._note_failure(selector, outcome, reason, duration, last_good=False)
        return text(OUTCOME_STATUS[outcome], f"selector {selector.config.name}: {outcome}: {reason}")

    @staticmethod
    def _note_failure(selector: Selector, outcome: str, reason: str, duration: float, *, last_good: bool) -> None:
        """One warning per new failure of a selector; the same failure again only at debug."""
        repeated = selector.failure == (outcome, reason)
        selector.failure = (outcome, reason)
        (log.debug if repeated else log.warning)(
            "scrape failed, serving the last good answer" if last_good else "scrape failed",
            extra=fields(
                selector=selector.config.name,
                outcome=outcome,
                status=OUTCOME_STATUS["last_good" if last_good else outcome],
                reason=reason,
                duration_seconds=round(duration, 6),
            ),
        )


def _last_good(selector: Selector) -> bytes | None:
    """What a source that keeps its last good answer offers in place of a failed read."""
    source = selector.source
    return source.last_good() if isinstance(source, KeepsLastGood) else None


def _echo(name: str) -> str:
    return repr(name if len(name) <= _ECHO_LIMIT else name[:_ECHO_LIMIT] + "...")
