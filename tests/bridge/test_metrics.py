"""The own-metrics collector: plain numbers on the scrape path, correct families on /metrics."""

from __future__ import annotations

import platform
import time

from prometheus_client import CollectorRegistry

from local_exporter import __version__
from local_exporter.bridge import metrics
from tests.support.bridges import open_selectors, sample


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    registry = CollectorRegistry()
    live = open_selectors(("s", "uds"))
    metrics.ExporterMetrics(registry, live)
    stats = live.by_name["s"].metrics
    for duration in (0.0005, 0.003, 0.003, 100.0):  # 0.0005 is a bucket bound: it counts in it
        stats.record("success", duration)
    bucket = f"{metrics.REQUEST_DURATION_SECONDS}_bucket"
    assert sample(registry, bucket, selector="s", le="0.0005") == 1
    assert sample(registry, bucket, selector="s", le="0.0025") == 1
    assert sample(registry, bucket, selector="s", le="0.005") == 3
    assert sample(registry, bucket, selector="s", le="30.0") == 3
    assert sample(registry, bucket, selector="s", le="+Inf") == 4
    assert sample(registry, f"{metrics.REQUEST_DURATION_SECONDS}_count", selector="s") == 4
    assert sample(registry, f"{metrics.REQUEST_DURATION_SECONDS}_sum", selector="s") == 100.0065


def test_success_and_failure_accounting() -> None:
    registry = CollectorRegistry()
    live = open_selectors(("a", "file"), ("b", "dbus"))
    own = metrics.ExporterMetrics(registry, live)
    now = time.perf_counter()
    live.by_name["a"].metrics.record_success(100, now - 0.02, now - 0.01)
    live.by_name["a"].metrics.record_success(50, now - 0.01, now)
    live.by_name["a"].metrics.record("timeout", 1.0)
    own.rejected("unknown_selector")
    assert sample(registry, metrics.REQUESTS_TOTAL, selector="a", outcome="success") == 2
    assert sample(registry, metrics.REQUESTS_TOTAL, selector="a", outcome="timeout") == 1
    assert sample(registry, metrics.REQUESTS_TOTAL, selector="b", outcome="success") == 0
    assert sample(registry, metrics.RESPONSE_BYTES_TOTAL, selector="a") == 150
    assert sample(registry, metrics.LAST_PAYLOAD_BYTES, selector="a") == 50
    # The clock reading of the last success, as Unix time.
    assert abs(sample(registry, metrics.LAST_SUCCESS_TIMESTAMP_SECONDS, selector="a") - time.time()) < 5
    assert sample(registry, metrics.LAST_SUCCESS_TIMESTAMP_SECONDS, selector="b") == 0
    assert sample(registry, metrics.REJECTED_REQUESTS_TOTAL, reason="unknown_selector") == 1
    assert sample(registry, metrics.REJECTED_REQUESTS_TOTAL, reason="bad_request") == 0
    assert sample(registry, metrics.BUILD_INFO, version=__version__, python_version=platform.python_version()) == 1
