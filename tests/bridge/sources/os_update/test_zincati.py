"""Reading Zincati's exposition: names as written (four counters lack `_total`), labels
unescaped, anything else a one-line bad payload."""

from __future__ import annotations

from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from local_exporter.bridge.errors import BadPayload
from local_exporter.bridge.sources.os_update.zincati import parse

REFERENCE = resources.files("local_exporter.agents").joinpath("examples/zincati.prom").read_bytes()


def test_the_reference_exposition_reads_with_zincatis_own_names() -> None:
    reading = parse(REFERENCE, 1.0)
    assert reading.get("zincati_update_agent_finalization_attempts") == 3
    assert reading.total("zincati_strategy_fleet_lock_errors_total", api="pre-reboot") == 3
    assert reading.labels("zincati_identity_os_info") == [
        {"basearch": "x86_64", "os_version": "41.20250105.3.0", "platform": "aws", "stream": "stable"}
    ]


def test_label_values_are_unescaped() -> None:
    reading = parse(b'x{a="q\\"w\\\\e\\n",b=""} 1\n', 0)
    assert reading.get("x", a='q"w\\e\n', b="") == 1


@pytest.mark.parametrize("line", [b"x{a=1} 1\n", b"x 1 2 3\n", b"{} 1\n", b'x{a="1"\n', b"x one\n", b"\xff\n"])
def test_a_broken_line_is_a_bad_payload(line: bytes) -> None:
    with pytest.raises(BadPayload, match="Zincati's metrics"):
        parse(line, 0)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_read_or_are_a_bad_payload(data: bytes) -> None:
    reason = ""
    try:
        parse(data, 0)
    except BadPayload as exc:
        reason = str(exc)
    assert "\n" not in reason
