"""The one duration parser: Prometheus' syntax (scenarios, the bundle, the CLI) and Go's (the
web config; its cases are in tests/bridge/webconfig/test_config.py)."""

from __future__ import annotations

import pytest

from local_exporter.common import durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("0s", 0.0),
        ("90s", 90.0),
        ("15m", 900.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1w", 604800.0),
        ("1h30m", 5400.0),
        ("1d2h3m4s", 93784.0),
        ("1500ms", 1.5),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert durations.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "-5m", "1.5h", "30m1h", "1h 30m", "1hh", "m", "1H", "5 s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        durations.parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (90, "1m30s"), (5400, "1h30m"), (86400, "1d"), (1.5, "1.5s")])
def test_show(seconds: float, text: str) -> None:
    assert durations.show(seconds) == text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("1s", 1.0), ("1.5s", 1.5), ("1m30s", 90.0), ("30s1m", 90.0), ("250ms", 0.25), ("10µs", 1e-5)],
)
def test_go_durations_take_fractions_and_any_order(text: str, seconds: float) -> None:
    assert durations.parse_duration(text, durations.GO) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "1d", "1w", "-1s", "1 s", "1S"])
def test_go_durations_reject(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration like 1s, 500ms or 1m30s"):
        durations.parse_duration(text, durations.GO)
