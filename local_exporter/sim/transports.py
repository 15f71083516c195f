"""How simulated hosts serve their metrics: each transport is a source kind of the bridge."""

from __future__ import annotations

from typing import Literal, get_args

Transport = Literal["uds", "file", "dbus"]
TRANSPORTS: tuple[Transport, ...] = get_args(Transport)
