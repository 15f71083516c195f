"""Log lines: logfmt by default, JSON on request, fields attached by the caller."""

from __future__ import annotations

import io
import json
import logging

import pytest

from local_exporter.common import logs


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def emit(fmt: str, level: str = "warn") -> str:
    stream = io.StringIO()
    logs.setup(logs.LEVELS[level], fmt, stream)
    logging.getLogger("local_exporter.bridge").warning(
        "scrape failed", extra=logs.fields(selector="zincati", outcome="unavailable", reason='connect /x: "gone"')
    )
    logging.getLogger("local_exporter.bridge").info("an info line")
    return stream.getvalue()


def test_logfmt(restore_logging) -> None:
    line = emit("logfmt")
    assert line.count("\n") == 1
    assert ' level=warn logger=local_exporter.bridge msg="scrape failed" selector=zincati outcome=unavailable' in line
    assert line.rstrip().endswith('reason="connect /x: \\"gone\\""')
    assert line.startswith("ts=20")


def test_json(restore_logging) -> None:
    record = json.loads(emit("json"))
    assert record["level"] == "warn"
    assert record["msg"] == "scrape failed"
    assert record["selector"] == "zincati"
    assert record["reason"] == 'connect /x: "gone"'


@pytest.mark.parametrize(
    ("name", "count", "level"),
    [
        # Info by default, as Prometheus exporters; the original's -vv still means debug.
        (None, 0, logging.INFO),
        (None, 1, logging.INFO),
        (None, 2, logging.DEBUG),
        (None, 5, logging.DEBUG),
        # --log.level wins over -v.
        ("warn", 2, logging.WARNING),
        ("error", 0, logging.ERROR),
        ("debug", 0, logging.DEBUG),
    ],
)
def test_the_level_from_log_level_or_the_v_count(name: str | None, count: int, level: int) -> None:
    assert logs.level_of(name, count) == level


@pytest.mark.parametrize(("count", "level"), [(0, logging.WARNING), (1, logging.INFO), (2, logging.DEBUG)])
def test_a_quiet_command_counts_v_as_the_original(count: int, level: int) -> None:
    assert logs.level_of(None, count, "warn") == level


def test_info_lines_appear_at_info_only(restore_logging) -> None:
    assert "an info line" in emit("logfmt", level="info")
    assert "an info line" not in emit("logfmt", level="warn")
