"""One read of Zincati's metrics socket, as values the judge can ask for by name and labels."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from local_exporter.bridge.errors import BadPayload

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Reading:
    """The agent's samples at one read: (sample name, sorted labels) -> value."""

    at: float
    values: Mapping[tuple[str, Labels], float]

    def get(self, name: str, **labels: str) -> float | None:
        return self.values.get((name, tuple(sorted(labels.items()))))

    def total(self, name: str, **match: str) -> float:
        """The sum of `name`'s series whose labels include `match` (0 for a family not there yet:
        Zincati's families appear at their first move)."""
        wanted = set(match.items())
        return sum(value for labels, value in self._by_name.get(name, ()) if wanted <= set(labels))

    def labels(self, name: str) -> list[dict[str, str]]:
        return [dict(labels) for labels, _ in self._by_name.get(name, ())]

    @cached_property
    def _by_name(self) -> dict[str, list[tuple[Labels, float]]]:
        # The judge sums families by name dozens of times per read.
        index: dict[str, list[tuple[Labels, float]]] = {}
        for (sample, labels), value in self.values.items():
            index.setdefault(sample, []).append((labels, value))
        return index


def parse(text: bytes, at: float) -> Reading:
    """Zincati's exposition (text format 0.0.4), names kept as written: four of its counters
    lack `_total`, which prometheus-client's parser would add."""
    try:
        lines = text.decode().splitlines()
    except UnicodeDecodeError as exc:
        raise BadPayload(f"Zincati's metrics are not UTF-8: {exc}") from None
    values: dict[tuple[str, Labels], float] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        try:
            if match is None:
                raise ValueError("not a sample line")
            labels = _labels(match.group(2) or "")
            values[(match.group(1), labels)] = float(match.group(3))
        except ValueError as exc:
            raise BadPayload(f"Zincati's metrics, line {number}: {exc}: {line[:80]!r}") from None
    return Reading(at, values)


def _labels(text: str) -> Labels:
    pairs, position = [], 0
    for match in _LABEL.finditer(text):
        if match.start() != position:
            break
        value = re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), match.group(2))
        pairs.append((match.group(1), value))
        position = match.end()
    if position != len(text.strip()) and text.strip():
        raise ValueError("malformed labels")
    return tuple(sorted(pairs))


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
