"""Line numbers for TOML keys, which `tomllib` does not report.

`tomllib` gives us values but no positions, and config errors must name the line. This module
scans the text once and maps dotted key paths to the line where they are written. It understands
what config files actually use: `[table]` headers, `key = value` lines (bare, quoted and dotted
keys) and one-line inline tables. Anything it cannot place falls back to the nearest enclosing
key it did place, so every error still gets a line.

It also finds selector tables defined twice, which `tomllib` rejects with a bare "Cannot
overwrite a value": knowing both lines lets the loader report the duplicate together with every
other problem in the file instead of stopping at the first.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field

_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r"\"(?:[^\"\\]|\\.)*\"|'[^']*'"
_KEY_PART = rf"(?:{_BARE}|{_QUOTED})"
_DOTTED = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER = re.compile(rf"^\s*\[\s*({_DOTTED})\s*\]\s*(?:#.*)?$")
_ARRAY_HEADER = re.compile(rf"^\s*\[\[\s*({_DOTTED})\s*\]\]")
_ASSIGN = re.compile(rf"^\s*({_DOTTED})\s*=\s*(.*)$")
_PART = re.compile(rf"\s*({_KEY_PART})\s*(?:\.|$)")


def split_key(dotted: str) -> tuple[str, ...]:
    """`a."b.c".d` -> ("a", "b.c", "d"), with escapes in "basic" quoted keys decoded."""
    parts = []
    for match in _PART.finditer(dotted):
        part = match.group(1)
        if part[0] == '"' and "\\" in part:
            part = _decode_basic(part)
        elif part[0] in "\"'":
            part = part[1:-1]
        parts.append(part)
    return tuple(parts)


def _decode_basic(quoted: str) -> str:
    # Let tomllib apply TOML's own escape rules; an invalid escape is tomllib's error to report.
    try:
        return str(tomllib.loads(f"k = {quoted}")["k"])
    except tomllib.TOMLDecodeError:
        return quoted[1:-1]


def _lines(text: str) -> list[str]:
    # Only "\n" ends a TOML line (CRLF leaves a "\r" the patterns accept as trailing space);
    # str.splitlines() would also split at U+2028, form feeds and the like, shifting every
    # line number after one of them away from tomllib's.
    return text.split("\n")


@dataclass
class KeyLines:
    """Dotted key path -> first line (1-based) where it is written."""

    lines: dict[tuple[str, ...], int] = field(default_factory=dict)
    # Selector tables that appear more than once: (name, first line, duplicate span).
    duplicates: list[tuple[str, int, range]] = field(default_factory=list)

    def place(self, path: tuple[str, ...], line: int) -> None:
        """`path` is written on `line`; so are the tables a dotted key or header creates on the way."""
        for end in range(1, len(path) + 1):
            self.lines.setdefault(path[:end], line)

    def line_of(self, path: tuple[str, ...]) -> int | None:
        """Line of `path`, or of its nearest ancestor that has one."""
        for end in range(len(path), 0, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


def scan(text: str, selectors_table: tuple[str, ...]) -> KeyLines:
    """Map every key path in `text` to its line; note duplicated children of `selectors_table`."""
    found = KeyLines()
    table: tuple[str, ...] = ()
    # Selector name -> (first line, span of lines that define it).
    spans: dict[str, tuple[int, range]] = {}
    lines = _lines(text)
    current_selector: tuple[str, int] | None = None

    def close_selector(end: int) -> None:
        nonlocal current_selector
        if current_selector is None:
            return
        name, start = current_selector
        _record(spans, found, name, range(start, end))
        current_selector = None

    for number, line in enumerate(lines, start=1):
        header = _HEADER.match(line) or _ARRAY_HEADER.match(line)
        if header:
            close_selector(number)
            table = split_key(header.group(1))
            found.place(table, number)
            if len(table) == len(selectors_table) + 1 and table[:-1] == selectors_table:
                current_selector = (table[-1], number)
            continue
        assign = _ASSIGN.match(line)
        if not assign:
            continue
        key = table + split_key(assign.group(1))
        found.place(key, number)
        if key[:-1] == selectors_table and table == selectors_table:
            _record(spans, found, key[-1], range(number, number + 1))
        value = assign.group(2)
        if value.lstrip().startswith("{"):
            for inner in re.finditer(rf"[{{,]\s*({_DOTTED})\s*=", value):
                found.place(key + split_key(inner.group(1)), number)
    close_selector(len(lines) + 1)
    return found


def _record(spans: dict[str, tuple[int, range]], found: KeyLines, name: str, span: range) -> None:
    if name in spans:
        found.duplicates.append((name, spans[name][0], span))
    else:
        spans[name] = (span.start, span)


def blank_lines(text: str, spans: list[range]) -> str:
    """`text` with the given 1-based line spans emptied, keeping every other line number."""
    drop = {n for span in spans for n in span}
    return "\n".join("" if number in drop else line for number, line in enumerate(_lines(text), start=1))


class ArrayIndex(str):
    """A location part naming an array element: rendered `faults[2]`, not `faults."[2]"`."""

    __slots__ = ()


def array_index(number: int) -> ArrayIndex:
    return ArrayIndex(f"[{number}]")


def scan_with_arrays(text: str) -> KeyLines:
    """Map every key path to its line; array entries are `(name, ArrayIndex("[n]"))`.

    `scan` is the config's (it knows about selectors); this one, for scenario files, knows
    arrays of tables, and skips the inside of multi-line strings, where a line may look like a key.
    """
    found = KeyLines()
    table: tuple[str, ...] = ()
    arrays: dict[tuple[str, ...], int] = {}
    closing: str | None = None
    for number, line in enumerate(text.split("\n"), start=1):
        if closing is not None:
            if closing in line:
                closing = None
            continue
        array = _ARRAY_HEADER.match(line)
        header = array or _HEADER.match(line)
        if header:
            path = _in_arrays(split_key(header.group(1)), arrays)
            if array:
                arrays[path] = arrays.get(path, -1) + 1
                path = (*path, array_index(arrays[path]))
            table = path
            found.place(table, number)
            continue
        assign = _ASSIGN.match(line)
        if not assign:
            continue
        key = table + split_key(assign.group(1))
        found.place(key, number)
        value = assign.group(2).lstrip()
        if value[:3] in ('"""', "'''") and value[:3] not in value[3:]:
            closing = value[:3]
        elif value.startswith("{"):
            for inner in re.finditer(rf"[{{,]\s*({_DOTTED})\s*=", value):
                found.place(key + split_key(inner.group(1)), number)
    return found


def _in_arrays(path: tuple[str, ...], arrays: dict[tuple[str, ...], int]) -> tuple[str, ...]:
    """`faults.x` after two `[[faults]]` headers is `faults[1].x`: TOML's rule for sub-tables."""
    resolved: tuple[str, ...] = ()
    for part in path:
        if resolved in arrays and resolved:
            resolved = (*resolved, array_index(arrays[resolved]))
        resolved = (*resolved, part)
    return resolved
