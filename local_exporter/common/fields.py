"""Strict, error-collecting reading of parsed TOML tables.

Each `Table` wraps one raw table and its dotted location. Values are taken key by key with
their expected type; every problem (wrong type, out of range, missing, unknown key) is added
to a shared `Problems` list with its location and line, and reading goes on, so one load
reports everything that is wrong with a file.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from local_exporter.common.toml_lines import KeyLines

T = TypeVar("T")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def dotted(location: tuple[str, ...]) -> str:
    """`("bridge", "selectors", "a.b")` -> `bridge.selectors."a.b"`, as TOML would write it.

    Quoted parts are escaped (a JSON string is a valid TOML basic string), so a key holding a
    newline or a quote still renders as one unambiguous line.
    """
    return ".".join(part if _BARE_KEY.match(part) else json.dumps(part, ensure_ascii=False) for part in location)


class ProblemsError(Exception):
    """A file cannot be used; `problems` holds one rendered line per problem, in file order.
    Each kind of file has its own subclass (ConfigError, WebConfigError, ScenarioError)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Problem:
    location: tuple[str, ...]
    message: str
    line: int | None

    def render(self, filename: str) -> str:
        where = f"{filename}:{self.line}" if self.line else filename
        # A problem with the whole file (invalid TOML) has no key to name.
        if not self.location:
            return f"{where}: {self.message}"
        return f"{where}: {dotted(self.location)}: {self.message}"


@dataclass
class Problems:
    """Everything wrong with one config file, in file order."""

    key_lines: KeyLines = field(default_factory=KeyLines)
    items: list[Problem] = field(default_factory=list)

    def add(self, location: tuple[str, ...], message: str, line: int | None = None) -> None:
        if line is None:
            line = self.key_lines.line_of(location)
        self.items.append(Problem(location, message, line))

    def sorted(self) -> list[Problem]:
        return sorted(self.items, key=lambda p: (p.line or 0, p.location))

    def __bool__(self) -> bool:
        return bool(self.items)


_TYPE_NAMES = {str: "a string", bool: "a boolean", int: "an integer", float: "a number", dict: "a table"}


class Table:
    """One TOML table being read; `finish()` reports keys nobody asked for."""

    def __init__(self, raw: dict[str, Any], location: tuple[str, ...], problems: Problems) -> None:
        self.raw = raw
        self.location = location
        self.problems = problems
        self._taken: set[str] = set()

    def at(self, key: str) -> tuple[str, ...]:
        return (*self.location, key)

    def problem(self, key: str, message: str) -> None:
        self.problems.add(self.at(key), message)

    def _take(self, key: str, kinds: tuple[type, ...], required: bool, expected: str | None = None) -> Any:
        self._taken.add(key)
        if key not in self.raw:
            if required:
                self.problems.add(self.at(key), "is required")
            return None
        value = self.raw[key]
        # bool is an int subclass in Python, but `port = true` is a type error in a config.
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            expected = expected or " or ".join(_TYPE_NAMES.get(kind, kind.__name__) for kind in kinds)
            self.problem(key, f"must be {expected}, got {_describe(value)}")
            return None
        return value

    def string(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self._take(key, (str,), required)
        return default if value is None else value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._take(key, (bool,), False)
        return default if value is None else value

    def integer(self, key: str, default: int, *, low: int, high: int) -> int:
        value = self._take(key, (int,), False)
        if value is None:
            return default
        if not low <= value <= high:
            self.problem(key, f"must be between {low} and {high}, got {value}")
            return default
        return int(value)

    def number(self, key: str, default: float, *, low: float, high: float, zero_ok: bool = False) -> float:
        """A duration above `low` (or equal to it with `zero_ok`): TOML integers and floats both accepted."""
        value = self._take(key, (int, float), False, "a number")
        if value is None:
            return default
        above_low = low <= value if zero_ok else low < value
        if not math.isfinite(value) or not above_low or value > high:
            lowest = f"at least {low:g}" if zero_ok else f"greater than {low:g}"
            self.problem(key, f"must be {lowest} and at most {high:g}, got {value!r}")
            return default
        return float(value)

    def finite(self, key: str, default: float) -> float:
        """Any finite number, TOML integers and floats alike (the caller checks its range)."""
        value = self._take(key, (int, float), False, "a number")
        if value is None:
            return default
        if not math.isfinite(value):
            self.problem(key, f"must be a finite number, got {value!r}")
            return default
        return float(value)

    def strings(self, key: str, what: str = "strings") -> list[str] | None:
        """An array of strings (`what` names them in problems); None when absent or wrong."""
        value = self._take(key, (list,), False, f"an array of {what}")
        if value is None:
            return None
        if not all(isinstance(item, str) for item in value):
            self.problem(key, f"must be an array of {what}: strings only")
            return None
        return list(value)

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str | None:
        value = self.string(key, required=default is None)
        if value is None:
            return default
        if value not in choices:
            self.problem(key, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
            return default
        return value

    def absolute_path(self, key: str) -> PurePosixPath | None:
        value = self.string(key, required=True)
        if value is None:
            return None
        if not value:
            self.problem(key, "must not be empty")
            return None
        path = PurePosixPath(value)
        if not path.is_absolute():
            self.problem(key, f"must be an absolute path, got {value!r}")
            return None
        return path

    def table(self, key: str) -> Table:
        value = self._take(key, (dict,), False)
        return Table(value or {}, self.at(key), self.problems)

    def subtables(self) -> Iterator[tuple[str, Any]]:
        """Every (key, raw value) of this table, marking all keys as taken."""
        self._taken.update(self.raw)
        yield from self.raw.items()

    def refuse(self, keys: tuple[str, ...], why: str) -> None:
        """Report each of `keys` the table has: it does not apply here (`why` says where it does)."""
        for key in list(self.raw):  # the table's keys, not lookups of others
            if key in keys:
                self._taken.add(key)
                self.problem(key, why)

    def finish(self) -> None:
        for key in self.raw:
            if key not in self._taken:
                self.problem(key, "unknown key")


def _describe(value: object) -> str:
    """A TOML value as TOML names it: `integer 1`, `float 1.5`, `date 2024-01-31`."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"float {value!r}"
    if isinstance(value, datetime.datetime):
        return f"date-time {value.isoformat()}"
    if isinstance(value, datetime.date):
        return f"date {value.isoformat()}"
    if isinstance(value, datetime.time):
        return f"time {value.isoformat()}"
    return f"{type(value).__name__} {value!r}"


def read_text(path: Path, what: str) -> str:
    """A file's UTF-8 text, or `ValueError` with a one-line reason naming the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: {what} is not UTF-8 text (byte {exc.start})") from None


def file_text(path: Path, what: str, error: type[ProblemsError]) -> str:
    """`read_text`, failing as `error` (a config file's own kind) with the one-line reason."""
    try:
        return read_text(path, what)
    except ValueError as exc:
        raise error([str(exc)]) from None


def toml_tables(text: str, problems: Problems) -> dict[str, Any] | None:
    """`text` read as TOML, or None after adding tomllib's complaint, with its line, to `problems`."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _TOML_LINE.search(str(exc))
        problems.add((), f"invalid TOML: {exc}", line=int(line.group(1)) if line else None)
        return None
