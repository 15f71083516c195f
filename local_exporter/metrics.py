"""The exporter's own metrics, on a private registry, every name declared once here.

The bundle (rules, dashboards) imports these names, so nothing can reference a metric the
bridge does not emit. Per-selector series are created at start so they exist at 0.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from local_exporter import __version__
from local_exporter.errors import OUTCOME_STATUS, REJECTION_STATUS

NAMESPACE = "local_exporter"
REQUESTS_TOTAL = f"{NAMESPACE}_bridge_requests_total"
REQUEST_DURATION_SECONDS = f"{NAMESPACE}_bridge_request_duration_seconds"
RESPONSE_BYTES_TOTAL = f"{NAMESPACE}_bridge_response_bytes_total"
LAST_PAYLOAD_BYTES = f"{NAMESPACE}_bridge_last_payload_bytes"
LAST_SUCCESS_TIMESTAMP_SECONDS = f"{NAMESPACE}_bridge_last_success_timestamp_seconds"
IN_FLIGHT_REQUESTS = f"{NAMESPACE}_bridge_in_flight_requests"
REJECTED_REQUESTS_TOTAL = f"{NAMESPACE}_bridge_rejected_requests_total"
SELECTOR_INFO = f"{NAMESPACE}_selector_info"
BUILD_INFO = f"{NAMESPACE}_build_info"

# Scrapes of host-local sources take sub-millisecond to seconds.
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass(frozen=True)
class SelectorMetrics:
    """One selector's children, bound once so the scrape path does no label lookups."""

    outcomes: dict[str, Counter]
    duration: Histogram
    response_bytes: Counter
    last_payload_bytes: Gauge
    last_success: Gauge
    in_flight: Gauge

    def record_success(self, size: int, duration: float) -> None:
        self.outcomes["success"].inc()
        self.duration.observe(duration)
        self.response_bytes.inc(size)
        self.last_payload_bytes.set(size)
        self.last_success.set(time.time())

    def record_failure(self, outcome: str, duration: float) -> None:
        self.outcomes[outcome].inc()
        self.duration.observe(duration)


class ExporterMetrics:
    def __init__(self, registry: CollectorRegistry, selectors: Iterable[tuple[str, str]]) -> None:
        self.registry = registry
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        r = registry
        self.requests = Counter(
            REQUESTS_TOTAL, "Scrapes of /bridge per selector, by outcome.", ["selector", "outcome"], registry=r
        )
        self.duration = Histogram(
            REQUEST_DURATION_SECONDS,
            "Time to answer a scrape of /bridge per selector, reading the source included.",
            ["selector"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.response_bytes = Counter(
            RESPONSE_BYTES_TOTAL,
            "Bytes of exposition served per selector, before compression.",
            ["selector"],
            registry=r,
        )
        self.last_payload_bytes = Gauge(
            LAST_PAYLOAD_BYTES, "Size of the last exposition served per selector.", ["selector"], registry=r
        )
        self.last_success = Gauge(
            LAST_SUCCESS_TIMESTAMP_SECONDS,
            "Unix time of the last successful scrape per selector.",
            ["selector"],
            registry=r,
        )
        self.in_flight = Gauge(IN_FLIGHT_REQUESTS, "Scrapes of /bridge being answered now.", ["selector"], registry=r)
        self.rejections = Counter(
            REJECTED_REQUESTS_TOTAL, "Requests to /bridge refused before reaching a source.", ["reason"], registry=r
        )
        self.selector_info = Gauge(
            SELECTOR_INFO, "Configured selectors and their source kind.", ["selector", "kind"], registry=r
        )
        build_info = Gauge(
            BUILD_INFO, "Version of local_exporter and of its Python.", ["version", "python_version"], registry=r
        )
        build_info.labels(version=__version__, python_version=platform.python_version()).set(1)
        for reason in REJECTION_STATUS:
            self.rejections.labels(reason=reason)
        self.selectors = {name: self._bind(name, kind) for name, kind in selectors}

    def rejected(self, reason: str) -> None:
        self.rejections.labels(reason=reason).inc()

    def _bind(self, name: str, kind: str) -> SelectorMetrics:
        self.selector_info.labels(selector=name, kind=kind).set(1)
        return SelectorMetrics(
            outcomes={o: self.requests.labels(selector=name, outcome=o) for o in OUTCOME_STATUS},
            duration=self.duration.labels(selector=name),
            response_bytes=self.response_bytes.labels(selector=name),
            last_payload_bytes=self.last_payload_bytes.labels(selector=name),
            last_success=self.last_success.labels(selector=name),
            in_flight=self.in_flight.labels(selector=name),
        )
