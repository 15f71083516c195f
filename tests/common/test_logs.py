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


def emit(fmt: str, verbosity: int = 0) -> str:
    stream = io.StringIO()
    logs.setup(verbosity, fmt, stream)
    logging.getLogger("local_exporter.bridge").warning(
        "scrape failed", extra=logs.fields(selector="zincati", outcome="unavailable", reason='connect /x: "gone"')
    )
    logging.getLogger("local_exporter.bridge").info("not shown at the default verbosity")
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
    ("count", "level"), [(0, logging.WARNING), (1, logging.INFO), (2, logging.DEBUG), (5, logging.DEBUG)]
)
def test_verbosity_as_the_original(count: int, level: int) -> None:
    assert logs.verbosity_level(count) == level


def test_info_lines_appear_with_one_v(restore_logging) -> None:
    assert "not shown at the default verbosity" in emit("logfmt", verbosity=1)
