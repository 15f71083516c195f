"""The shared command-line value types (common/arguments.py): ports, refused with a reason that
argparse prints after the flag's name (tests/test_cli.py checks the commands' own messages)."""

from __future__ import annotations

import argparse

import pytest

from local_exporter.common import arguments


@pytest.mark.parametrize(("text", "value"), [("1", 1), ("9598", 9598), ("65535", 65535)])
def test_ports(text: str, value: int) -> None:
    assert arguments.port(text) == value == arguments.port_or_any(text)


def test_zero_is_any_free_port_only_where_allowed() -> None:
    assert arguments.port_or_any("0") == 0
    with pytest.raises(argparse.ArgumentTypeError, match="0 is not a port from 1 to 65535"):
        arguments.port("0")


@pytest.mark.parametrize(
    ("text", "reason"), [("65536", "from 0 to 65535"), ("-1", "from 0 to 65535"), ("9598/tcp", "not a port number")]
)
def test_what_is_not_a_port(text: str, reason: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=reason):
        arguments.port_or_any(text)
