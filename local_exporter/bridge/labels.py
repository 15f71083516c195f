"""Label injection: a selector's `labels` added to every sample that does not carry them already.

A deliberate choice against relabelling in Prometheus for facts only the host knows (which
socket, which rack the host's own config names): the exposition arrives carrying them, whatever
scrapes it. A label the source already sets wins (add-if-absent), so the bridge never rewrites
what a daemon says. Only sample lines change: comments, `# HELP`/`# TYPE`, OpenMetrics' `# EOF`
and exemplars (after ` # ` on a sample line) are left as they are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: Names Prometheus accepts for labels; `__` names are reserved for Prometheus itself.
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# A label name at the start of a label pair, inside a label set.
_PAIR_NAME = re.compile(rb'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"')


def escape(value: str) -> str:
    """A label value as the text formats write it."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def inject(body: bytes, labels: Sequence[tuple[str, str]]) -> bytes:
    """`body` with `labels` added to each sample line that lacks them."""
    if not labels:
        return body
    rendered = [(name.encode(), f'{name}="{escape(value)}"'.encode()) for name, value in labels]
    lines = body.split(b"\n")
    return b"\n".join(_line(line, rendered) if line and not line.startswith(b"#") else line for line in lines)


def _line(line: bytes, rendered: list[tuple[bytes, bytes]]) -> bytes:
    brace = line.find(b"{")
    space = line.find(b" ")
    if brace < 0 or (0 <= space < brace):
        # No label set: `name value ...` becomes `name{added} value ...`.
        cut = space if space >= 0 else len(line)
        return line[:cut] + b"{" + b",".join(pair for _, pair in rendered) + b"}" + line[cut:]
    end, present = _label_set(line, brace)
    if end < 0:
        return line  # not a sample line the formats allow: Prometheus will say so
    missing = [pair for name, pair in rendered if name not in present]
    if not missing:
        return line
    inside = line[brace + 1 : end].rstrip()
    separator = b"," if inside and not inside.endswith(b",") else b""
    return line[: brace + 1] + inside + separator + b",".join(missing) + line[end:]


def _label_set(line: bytes, brace: int) -> tuple[int, set[bytes]]:
    """The index of the `}` closing the label set opened at `brace`, and the names in it; -1 if
    it does not close. Values may hold `}`, `,` and escaped quotes."""
    names: set[bytes] = set()
    i = brace + 1
    while True:
        pair = _PAIR_NAME.match(line, i)
        if pair is None:
            close = line.find(b"}", i)
            return (close, names) if close >= 0 and not line[i:close].strip(b" ,") else (-1, names)
        names.add(pair.group(1))
        i = pair.end()
        while i < len(line) and line[i] != ord('"'):
            i += 2 if line[i] == ord("\\") else 1
        if i >= len(line):
            return -1, names
        i += 1
        while i < len(line) and line[i] in b" ,":
            i += 1
