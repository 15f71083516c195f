"""The failure throttle behind basic auth (webconfig/rate_limit.py), on explicit times. The token
bucket is tested on a served bridge in test_guard.py."""

from __future__ import annotations

from local_exporter.bridge.webconfig.rate_limit import FailureThrottle


def test_an_address_is_refused_past_its_limit_until_its_window_is_over() -> None:
    throttle = FailureThrottle(limit=3, window=10.0, size=8)
    for now in (100.0, 101.0, 102.0):
        assert throttle.retry_after("a", now) is None
        throttle.failed("a", now)
    assert throttle.failures("a", 103.0) == 3
    assert throttle.retry_after("a", 103.0) == 7.0
    assert throttle.retry_after("b", 103.0) is None
    # The window started at the first failure: over at 110, and the address forgotten.
    assert throttle.retry_after("a", 110.0) is None and throttle.failures("a", 110.0) == 0
    assert len(throttle) == 0
    throttle.failed("a", 111.0)
    assert throttle.failures("a", 111.0) == 1 and throttle.retry_after("a", 111.0) is None


def test_a_failure_after_the_window_starts_a_new_one() -> None:
    throttle = FailureThrottle(limit=2, window=10.0, size=8)
    throttle.failed("a", 0.0)
    throttle.failed("a", 10.0)
    assert throttle.failures("a", 10.0) == 1 and throttle.retry_after("a", 10.0) is None


def test_a_right_password_forgets_the_failures() -> None:
    throttle = FailureThrottle(limit=2, window=10.0, size=8)
    throttle.failed("a", 0.0)
    throttle.failed("a", 1.0)
    assert throttle.retry_after("a", 2.0) == 8.0
    throttle.forget("a")
    assert throttle.retry_after("a", 2.0) is None and throttle.failures("a", 2.0) == 0


def test_the_table_is_bounded_and_forgets_the_least_recently_failed() -> None:
    throttle = FailureThrottle(limit=2, window=10.0, size=2)
    throttle.failed("a", 0.0)
    throttle.failed("b", 0.1)
    throttle.failed("a", 0.2)
    throttle.failed("c", 0.3)
    assert len(throttle) == 2
    assert throttle.failures("b", 0.4) == 0
    assert (throttle.failures("a", 0.4), throttle.failures("c", 0.4)) == (2, 1)
    for n in range(1000):
        throttle.failed(f"10.0.{n // 256}.{n % 256}", 1.0)
    assert len(throttle) == 2
