"""The event loop every long-running command runs on: uvloop where it is installed.

The benchmarks measure the bridge on uvloop (docs/benchmarks.md); without it the standard loop
works the same, only slower.
"""

from __future__ import annotations

import asyncio
import signal


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def stop_on_signals() -> asyncio.Event:
    """An event that SIGINT or SIGTERM sets, for a command's main coroutine to wait on. The
    handlers go with the loop when it closes."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop
