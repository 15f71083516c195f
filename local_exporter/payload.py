"""Cheap checks that a source's bytes are a complete exposition, and which format it is.

Parsing every exposition would cost ~9 ms per 50 KB on the scrape path, so the bridge checks
only what catches real failures for a few microseconds: empty or truncated output (no final
newline, which is how a half-written file or a broken-off stream looks), NUL bytes, invalid
UTF-8, and a first byte that no exposition starts with. The body itself is never changed.
"""

from __future__ import annotations

from local_exporter.errors import BadPayload

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
TEXT_0_0_4 = "text/plain; version=0.0.4; charset=utf-8"
_FIRST_BYTES = frozenset(b"#abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_:\n \t")


def content_type(body: bytes) -> str:
    """The format of `body`, or raise `BadPayload` if it cannot be a complete exposition."""
    if not body:
        raise BadPayload("exposition is empty")
    if body[0] not in _FIRST_BYTES:
        raise BadPayload(f"exposition starts with byte {body[:1]!r}, not a comment or metric name")
    if b"\x00" in body:
        raise BadPayload("exposition contains NUL bytes")
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadPayload(f"exposition is not UTF-8 text (byte {exc.start})") from None
    # OpenMetrics ends with `# EOF` and an optional newline; text 0.0.4 with a newline.
    # Only the tail is looked at: slicing the body would copy all of it.
    if body.endswith((b"\n# EOF", b"\n# EOF\n")) or body in (b"# EOF", b"# EOF\n"):
        return OPENMETRICS
    if not body.endswith(b"\n"):
        raise BadPayload("exposition does not end with a newline (truncated?)")
    return TEXT_0_0_4
