"""Structured logs: logfmt by default (as Go exporters write), JSON on request.

Callers attach fields with `log.warning("scrape failed", extra=fields(selector=..., ...))`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

FORMATS = ("logfmt", "json")
#: The LogRecord attribute that carries a line's fields (what `fields` passes as `extra`).
FIELDS = "le_fields"
_LEVELS = {"WARNING": "warn", "CRITICAL": "error"}


def fields(**values: Any) -> dict[str, dict[str, Any]]:
    return {FIELDS: values}


def _record_fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
        "level": _LEVELS.get(record.levelname, record.levelname.lower()),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    out.update(getattr(record, FIELDS, {}))
    if record.exc_info and record.exc_info[1] is not None:
        out["error"] = repr(record.exc_info[1])
    return out


def _logfmt_value(value: Any) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\\\n\t') and text.isprintable():
        return text
    return json.dumps(text)


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in _record_fields(record).items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_record_fields(record), default=str)


#: `--log.level`'s values, as Prometheus and its exporters spell them.
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
#: Info, as Prometheus exporters: a successful start says where it listens. Commands whose
#: own output is their interface (the demo, the simulator) default to warnings.
DEFAULT_LEVEL = "info"


def level_of(name: str | None, verbosity: int = 0, default: str = DEFAULT_LEVEL) -> int:
    """The log level: `--log.level` where given; else the original's `-v` count (`-v` info,
    `-vv` debug) where it says more than `default`; else `default`."""
    if name is not None:
        return LEVELS[name]
    return min(LEVELS[default], [LEVELS[default], logging.INFO, logging.DEBUG][min(verbosity, 2)])


def setup(level: int, fmt: str, stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log is one line per scrape: only when debugging.
    logging.getLogger("aiohttp.access").setLevel(logging.DEBUG if level <= logging.DEBUG else logging.WARNING)
