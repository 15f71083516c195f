"""The exporter's own metrics, on a private registry, every name declared once here.

The bundle (rules, dashboards) imports these names, so nothing can reference a metric the
bridge does not emit. Per-selector series exist from start, at 0.

The scrape path only updates plain numbers in a `SelectorStats` (everything runs on one event
loop, so no locks are needed); a collector turns them into metric families when `/metrics` is
read. prometheus-client's own Counter/Histogram take a lock per update and walk the buckets in
Python: measured at ~9.5 µs per scrape, a tenth of the bridge's whole per-scrape cost.
"""

from __future__ import annotations

import platform
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from local_exporter import __version__
from local_exporter.bridge.answers import AnswerBudget
from local_exporter.bridge.connections import Connections
from local_exporter.bridge.errors import OUTCOME_STATUS, REJECTION_STATUS

NAMESPACE = "local_exporter"
REQUESTS_TOTAL = f"{NAMESPACE}_bridge_requests_total"
REQUEST_DURATION_SECONDS = f"{NAMESPACE}_bridge_request_duration_seconds"
RESPONSE_BYTES_TOTAL = f"{NAMESPACE}_bridge_response_bytes_total"
LAST_PAYLOAD_BYTES = f"{NAMESPACE}_bridge_last_payload_bytes"
LAST_SUCCESS_TIMESTAMP_SECONDS = f"{NAMESPACE}_bridge_last_success_timestamp_seconds"
IN_FLIGHT_REQUESTS = f"{NAMESPACE}_bridge_in_flight_requests"
COALESCED_REQUESTS_TOTAL = f"{NAMESPACE}_bridge_coalesced_requests_total"
REJECTED_REQUESTS_TOTAL = f"{NAMESPACE}_bridge_rejected_requests_total"
SELECTOR_INFO = f"{NAMESPACE}_selector_info"
BUILD_INFO = f"{NAMESPACE}_build_info"
FILE_MTIME_SECONDS = f"{NAMESPACE}_bridge_file_mtime_seconds"
#: What sources report for /metrics (Source.gauges), by the name after `local_exporter_bridge_`.
ANSWER_AGE_SECONDS = f"{NAMESPACE}_bridge_answer_age_seconds"
SOURCE_GAUGES = {
    FILE_MTIME_SECONDS.removeprefix(f"{NAMESPACE}_bridge_"): "Modification time of a file selector's file (Unix time).",
    ANSWER_AGE_SECONDS.removeprefix(f"{NAMESPACE}_bridge_"): (
        "Age of the answer a caching selector (a release feed) serves: seconds since its source last answered."
    ),
}
RELOAD_SUCCESSFUL = f"{NAMESPACE}_config_last_reload_successful"
RELOAD_SUCCESS_TIMESTAMP = f"{NAMESPACE}_config_last_reload_success_timestamp_seconds"
TLS_HANDSHAKE_FAILURES_TOTAL = f"{NAMESPACE}_tls_handshake_failures_total"
WEB_CONFIG_RELOAD_SUCCESSFUL = f"{NAMESPACE}_web_config_last_reload_successful"
WEB_CONFIG_RELOAD_SUCCESS_TIMESTAMP = f"{NAMESPACE}_web_config_last_reload_success_timestamp_seconds"
WEB_PASSWORD_CHECKS_TOTAL = f"{NAMESPACE}_web_password_checks_total"
WEB_PASSWORD_CHECKS_WAITING = f"{NAMESPACE}_web_password_checks_waiting"
# Basic auth's checks by outcome (webconfig/basic_auth.py): `match` and `mismatch` ran bcrypt;
# `abandoned` waited for a client that left, and never ran.
PASSWORD_CHECK_OUTCOMES = ("match", "mismatch", "abandoned")
CONNECTIONS_OPEN = f"{NAMESPACE}_bridge_connections_open"
ANSWER_BYTES_HELD = f"{NAMESPACE}_bridge_answer_bytes_held"
WRITE_TIMEOUTS_TOTAL = f"{NAMESPACE}_bridge_write_timeouts_total"
CONNECTIONS_DROPPED_TOTAL = f"{NAMESPACE}_bridge_connections_dropped_total"

# Scrapes of host-local sources take sub-millisecond to seconds.
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# `le` values as Prometheus writes them ("1.0", "0.0005"); repr of a float gives exactly that here.
_BUCKET_LABELS = [repr(float(b)) for b in DURATION_BUCKETS] + ["+Inf"]


@dataclass
class SelectorStats:
    """One selector's numbers, updated on the scrape path and read by the collector."""

    kind: str
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOME_STATUS, 0))
    # Observations per bucket (not cumulative); the last one is +Inf.
    buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    duration_sum: float = 0.0
    response_bytes: int = 0
    last_payload_bytes: int = 0
    # perf_counter() at the last success: turned into Unix time when /metrics is read, which
    # saves a clock call per scrape. A step of the wall clock moves it along with the clock.
    last_success_clock: float = 0.0
    in_flight: int = 0
    # Scrapes answered by joining a read another scrape of the selector had started.
    coalesced: int = 0

    def record_success(self, size: int, started: float, finished: float) -> None:
        """A success between two perf_counter() readings. Spelled out: it runs on every scrape."""
        duration = finished - started
        self.outcomes["success"] += 1
        self.buckets[bisect_left(DURATION_BUCKETS, duration)] += 1
        self.duration_sum += duration
        self.response_bytes += size
        self.last_payload_bytes = size
        self.last_success_clock = finished

    def record(self, outcome: str, duration: float) -> None:
        self.outcomes[outcome] += 1
        # bisect_left: a duration equal to a bound belongs to that bucket (le = "less or equal").
        self.buckets[bisect_left(DURATION_BUCKETS, duration)] += 1
        self.duration_sum += duration


class PasswordQueue(Protocol):
    @property
    def waiting(self) -> int:
        """Password checks waiting to start now (webconfig/checks.py)."""


class SelectorReadings(Protocol):
    def readings(self) -> Iterable[tuple[str, SelectorStats, Mapping[str, float]]]:
        """Each live selector's name, numbers and its source's gauges (selectors.py)."""


class ExporterMetrics:
    """Every selector's stats and the rejections, exposed on `registry`."""

    def __init__(self, registry: CollectorRegistry, selectors: SelectorReadings) -> None:
        self.registry = registry
        self.selectors = selectors
        self.rejections = dict.fromkeys(REJECTION_STATUS, 0)
        # The last config reload (reload.py): its outcome, and when one last succeeded (start
        # counts as one).
        self.reload_successful = True
        self.reload_success_time = time.time()
        # The same for the web config (webconfig/guard.py); None: no web config, no series.
        self.web_config_successful: bool | None = None
        self.web_config_success_time = self.reload_success_time
        self.tls_handshake_failures = 0
        # Basic auth's password checks (webconfig/basic_auth.py counts them; the guard sets the
        # queue); series with a web config only.
        self.password_checks = dict.fromkeys(PASSWORD_CHECK_OUTCOMES, 0)
        self.password_queue: PasswordQueue | None = None
        # The server's connection cap (server.py sets it when it listens); None: no series.
        self.connections: Connections | None = None
        # Scrapes being answered and their bytes (the bridge sets it: app.py).
        self.budget: AnswerBudget | None = None
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        registry.register(self)

    def rejected(self, reason: str) -> None:
        self.rejections[reason] += 1

    def config_loaded(self, successful: bool) -> None:
        """The outcome of a config reload (start counts as a success)."""
        self.reload_successful = successful
        if successful:
            self.reload_success_time = time.time()

    def describe(self) -> list[Metric]:
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        return self._families()

    @staticmethod
    def _source_families(readings: list[tuple[str, SelectorStats, Mapping[str, float]]]) -> list[Metric]:
        families = {
            key: GaugeMetricFamily(f"{NAMESPACE}_bridge_{key}", text, labels=["selector"])
            for key, text in SOURCE_GAUGES.items()
        }
        for name, _, gauges in readings:
            for key, value in gauges.items():
                families[key].add_metric([name], value)
        return [family for family in families.values() if family.samples]

    def _families(self) -> Iterator[Metric]:
        readings = sorted(self.selectors.readings(), key=lambda reading: reading[0])
        requests = CounterMetricFamily(
            REQUESTS_TOTAL, "Scrapes of /bridge per selector, by outcome.", labels=["selector", "outcome"]
        )
        duration = HistogramMetricFamily(
            REQUEST_DURATION_SECONDS,
            "Time to answer a scrape of /bridge per selector, reading the source included.",
            labels=["selector"],
        )
        response_bytes = CounterMetricFamily(
            RESPONSE_BYTES_TOTAL, "Bytes of exposition served per selector, before compression.", labels=["selector"]
        )
        last_payload = GaugeMetricFamily(
            LAST_PAYLOAD_BYTES, "Size of the last exposition served per selector.", labels=["selector"]
        )
        last_success = GaugeMetricFamily(
            LAST_SUCCESS_TIMESTAMP_SECONDS, "Unix time of the last successful scrape per selector.", labels=["selector"]
        )
        in_flight = GaugeMetricFamily(IN_FLIGHT_REQUESTS, "Scrapes of /bridge being answered now.", labels=["selector"])
        coalesced = CounterMetricFamily(
            COALESCED_REQUESTS_TOTAL,
            "Scrapes of /bridge that shared a source read another scrape of the selector had started.",
            labels=["selector"],
        )
        info = GaugeMetricFamily(
            SELECTOR_INFO, "Configured selectors and their source kind.", labels=["selector", "kind"]
        )
        unix_minus_clock = time.time() - time.perf_counter()
        for name, s, _ in readings:
            for outcome, count in s.outcomes.items():
                requests.add_metric([name, outcome], count)
            cumulative, total = [], 0
            for label, count in zip(_BUCKET_LABELS, s.buckets, strict=True):
                total += count
                cumulative.append((label, total))
            duration.add_metric([name], cumulative, s.duration_sum)
            response_bytes.add_metric([name], s.response_bytes)
            last_payload.add_metric([name], s.last_payload_bytes)
            last_success.add_metric([name], s.last_success_clock + unix_minus_clock if s.outcomes["success"] else 0.0)
            in_flight.add_metric([name], s.in_flight)
            coalesced.add_metric([name], s.coalesced)
            info.add_metric([name, s.kind], 1)
        rejected = CounterMetricFamily(
            REJECTED_REQUESTS_TOTAL,
            "Requests refused before reaching a source: bad or unknown selectors and caps on /bridge; "
            "authentication, rate limit and header timeout on any endpoint.",
            labels=["reason"],
        )
        for reason, count in self.rejections.items():
            rejected.add_metric([reason], count)
        build = GaugeMetricFamily(
            BUILD_INFO, "Version of local_exporter and of its Python.", labels=["version", "python_version"]
        )
        build.add_metric([__version__, platform.python_version()], 1)
        yield from (
            requests,
            duration,
            response_bytes,
            last_payload,
            last_success,
            in_flight,
            coalesced,
            rejected,
            info,
            build,
            *self._source_families(readings),
            GaugeMetricFamily(
                RELOAD_SUCCESSFUL,
                "Whether the last config reload succeeded (1) or was refused (0).",
                value=self.reload_successful,
            ),
            GaugeMetricFamily(
                RELOAD_SUCCESS_TIMESTAMP,
                "Unix time of the last successful config load.",
                value=self.reload_success_time,
            ),
            *self._web_config_families(),
            *self._connection_families(),
            *self._budget_families(),
        )

    def _budget_families(self) -> list[Metric]:
        budget = self.budget
        if budget is None:
            return []
        return [
            GaugeMetricFamily(
                ANSWER_BYTES_HELD,
                "Bytes of answers read and not yet written (at most service.max_answer_bytes).",
                value=budget.held,
            ),
            CounterMetricFamily(
                WRITE_TIMEOUTS_TOTAL,
                "Answers whose client read nothing within service.write_timeout: the connection was dropped.",
                value=budget.write_timeouts,
            ),
        ]

    def _connection_families(self) -> list[Metric]:
        connections = self.connections
        if connections is None:
            return []
        dropped = CounterMetricFamily(
            CONNECTIONS_DROPPED_TOTAL,
            "Connections closed at the connection cap: displaced (the oldest still waiting for its first "
            "request header, to make room) or refused (every connection was past its header).",
            labels=["reason"],
        )
        for reason, count in connections.dropped.items():
            dropped.add_metric([reason], count)
        return [
            GaugeMetricFamily(
                CONNECTIONS_OPEN,
                "Client connections open now (at most service.max_connections, within the open-file limit).",
                value=connections.open,
            ),
            dropped,
        ]

    def _web_config_families(self) -> list[Metric]:
        if self.web_config_successful is None:
            return []
        return [
            GaugeMetricFamily(
                WEB_CONFIG_RELOAD_SUCCESSFUL,
                "Whether the last load of the web config succeeded (1) or was refused (0).",
                value=self.web_config_successful,
            ),
            GaugeMetricFamily(
                WEB_CONFIG_RELOAD_SUCCESS_TIMESTAMP,
                "Unix time of the last successful web config load.",
                value=self.web_config_success_time,
            ),
            CounterMetricFamily(
                TLS_HANDSHAKE_FAILURES_TOTAL,
                "TLS handshakes that failed (an untrusted client certificate, no common version or cipher, ...).",
                value=self.tls_handshake_failures,
            ),
            *self._password_families(),
        ]

    def _password_families(self) -> list[Metric]:
        checks = CounterMetricFamily(
            WEB_PASSWORD_CHECKS_TOTAL,
            "Basic auth password checks: match and mismatch ran bcrypt; abandoned waited for a client "
            "that left and never ran.",
            labels=["outcome"],
        )
        for outcome, count in self.password_checks.items():
            checks.add_metric([outcome], count)
        waiting = GaugeMetricFamily(
            WEB_PASSWORD_CHECKS_WAITING,
            "Basic auth password checks waiting for the password thread now.",
            value=self.password_queue.waiting if self.password_queue is not None else 0,
        )
        return [checks, waiting]
