"""Cheap checks that a source's bytes are a complete exposition, and which format it is.

The bridge checks framing, not grammar, and only at the ends of the body, so its cost does not
grow with the exposition: empty output, truncated output (no final newline, or no `# EOF` in
OpenMetrics: how a half-written file, a zero-filled tail or a broken-off stream looks), and a
first byte no exposition starts with (gzip, binary, JSON). Grammar (names, UTF-8, NUL bytes,
values) is left to Prometheus' parser, which reports each error with its line on the target
page: scanning every byte here cost ~20 µs per 50 KB scrape (docs/benchmarks.md) and parsing
~9 ms. The body itself is never changed.
"""

from __future__ import annotations

from local_exporter.bridge.errors import BadPayload

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
TEXT_0_0_4 = "text/plain; version=0.0.4; charset=utf-8"
_FIRST_BYTES = frozenset(b"#abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_:\n \t")


_NEWLINE = ord("\n")
_F = ord("F")


def content_type(body: bytes) -> str:
    """The format of `body`, or raise `BadPayload` if it cannot be a complete exposition."""
    if not body:
        raise BadPayload("exposition is empty")
    if body[0] not in _FIRST_BYTES:
        raise BadPayload(f"exposition starts with byte {body[:1]!r}, not a comment or metric name")
    # OpenMetrics ends with `# EOF` and an optional newline; text 0.0.4 with a newline. Only the
    # last bytes are looked at (slicing the body would copy all of it), and the common text
    # case is told by its last two bytes alone.
    last = body[-1]
    if last == _NEWLINE and (len(body) == 1 or body[-2] != _F):
        return TEXT_0_0_4
    if body.endswith((b"\n# EOF", b"\n# EOF\n")) or body in (b"# EOF", b"# EOF\n"):
        return OPENMETRICS
    if last != _NEWLINE:
        raise BadPayload("exposition does not end with a newline (truncated?)")
    return TEXT_0_0_4
