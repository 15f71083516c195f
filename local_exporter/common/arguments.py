"""Command-line value types the commands share: argparse turns their ValueError-free refusals
into `argument --flag: reason`, so a bad value names the flag, never a file it was copied to."""

from __future__ import annotations

import argparse


def port(text: str) -> int:
    """A TCP port to listen on, 1-65535."""
    return _port(text, low=1)


def port_or_any(text: str) -> int:
    """A TCP port, or 0 for any free one."""
    return _port(text, low=0)


def _port(text: str, *, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not low <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port from {low} to 65535")
    return value
