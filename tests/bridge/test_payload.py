"""Format detection and the cheap completeness checks on source output."""

from __future__ import annotations

import pytest

from local_exporter.bridge.errors import BadPayload
from local_exporter.bridge.payload import OPENMETRICS, TEXT_0_0_4, content_type


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"a 1\n", TEXT_0_0_4),
        (b"# HELP a x\n# TYPE a gauge\na 1\n", TEXT_0_0_4),
        (b"# TYPE a gauge\na 1\n# EOF\n", OPENMETRICS),
        (b"# TYPE a gauge\na 1\n# EOF", OPENMETRICS),
        (b"# EOF\n", OPENMETRICS),
        (b"# EOF", OPENMETRICS),
        ('a{l="ü"} 1\n'.encode(), TEXT_0_0_4),
        # `# EOF` must be a line of its own to mean OpenMetrics.
        (b'a{l="x # EOF"} 1\n', TEXT_0_0_4),
        # Lines ending in "F" take the slower look at the tail and are still text.
        (b"# HELP a Temperature in F\n", TEXT_0_0_4),
        (b'a{l="x"} 1\nb{l="# EOF\n', TEXT_0_0_4),
        (b"\n", TEXT_0_0_4),
        # Grammar is Prometheus' parser's to judge (with line numbers); the bridge checks framing.
        (b"a 1\n\x00\n", TEXT_0_0_4),
        (b'a{l="\xc3\x28"} 1\n', TEXT_0_0_4),
    ],
)
def test_content_type(body: bytes, expected: str) -> None:
    assert content_type(body) == expected


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty"),
        (b"a 1", "does not end with a newline"),
        (b'a{x="# EOF', "does not end with a newline"),
        (b"\x1f\x8b\x08\x00", "starts with byte"),
        (b"{}\n", "starts with byte"),
        # A zero-filled tail, as a crash mid-write leaves in a preallocated file.
        (b"a 1\nb 2\x00\x00\x00", "does not end with a newline"),
    ],
)
def test_incomplete_or_foreign_output_is_rejected(body: bytes, reason: str) -> None:
    with pytest.raises(BadPayload, match=reason.replace("(", r"\(").replace(")", r"\)")):
        content_type(body)
