"""Adapters write their families in Prometheus' text format (0.0.4) through this: families in
the order given, label values escaped, integers without a decimal point."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal


@dataclass
class Family:
    name: str
    type: Literal["gauge", "counter"]
    help: str
    samples: list[tuple[Mapping[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> Family:
        self.samples.append((labels, value))
        return self


def render(families: Iterable[Family]) -> bytes:
    """Families without samples are left out, as client libraries do."""
    lines = []
    for family in families:
        if not family.samples:
            continue
        lines += [f"# HELP {family.name} {_help(family.help)}", f"# TYPE {family.name} {family.type}"]
        for labels, value in family.samples:
            rendered = ",".join(f'{key}="{_label(text)}"' for key, text in sorted(labels.items()))
            lines.append(
                f"{family.name}{{{rendered}}} {_value(value)}" if rendered else f"{family.name} {_value(value)}"
            )
    return ("\n".join(lines) + "\n").encode() if lines else b""


def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _value(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))
