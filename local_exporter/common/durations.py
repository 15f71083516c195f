"""Durations as people write them in configs: the one parser, in two syntaxes.

Prometheus' syntax (`1h30m`, `90s`, `1500ms`: integers, units largest first, each at most once)
is what scenarios, the bundle's windows and the CLI take. Go's (`1m30s`, `1.5s`, `250ms`,
`10µs`: fractions, units in any order) is what exporter-toolkit's web config takes, since Go's
`time.ParseDuration` reads it there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Syntax:
    #: Unit -> seconds, largest first (the order `ordered` enforces).
    units: dict[str, float]
    fractions: bool
    #: Each unit at most once, largest first.
    ordered: bool
    examples: str


PROMETHEUS = Syntax(
    units={"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001},
    fractions=False,
    ordered=True,
    examples='"90s", "15m" or "1h30m"',
)
GO = Syntax(
    units={"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9},
    fractions=True,
    ordered=False,
    examples="1s, 500ms or 1m30s",
)

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([a-zµ]+)")


def parse_duration(text: str, syntax: Syntax = PROMETHEUS) -> float:
    """`"1h30m"` -> 5400.0: a duration in seconds; ValueError if `text` is not one in `syntax`."""
    if text == "0":
        return 0.0
    order = list(syntax.units)
    position, seconds, last = 0, 0.0, -1
    for match in _PART.finditer(text):
        number, unit = match.groups()
        if match.start() != position or unit not in syntax.units or not (syntax.fractions or number.isdigit()):
            break
        if syntax.ordered:
            if order.index(unit) <= last:
                break
            last = order.index(unit)
        seconds += float(number) * syntax.units[unit]
        position = match.end()
    if not text or position != len(text):
        raise ValueError(f"not a duration like {syntax.examples}: {text!r}")
    return seconds


def show(seconds: float) -> str:
    """5400 -> "1h30m": seconds as a Prometheus-style duration (fractions as "1.5s")."""
    if seconds != int(seconds):
        return f"{seconds:g}s"
    rest, parts = int(seconds), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or "0s"
