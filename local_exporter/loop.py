"""The event loop every long-running command runs on: uvloop where it is installed.

The benchmarks measure the bridge on uvloop (docs/benchmarks.md); without it the standard loop
works the same, only slower.
"""

from __future__ import annotations

import asyncio


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
