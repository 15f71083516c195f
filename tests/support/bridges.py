"""Build a bridge app from TOML text, as `serve` would, for aiohttp's test client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from local_exporter.bridge import config
from local_exporter.bridge.app import make_app
from local_exporter.bridge.selectors import Selectors

# A selector table of each kind, for opening sources that are never read.
_UNREAD = {
    "file": 'path = "/nonexistent/x.prom"',
    "uds": 'path = "/nonexistent/x.sock"',
    "dbus": 'destination = "org.example.X", path = "/org/example/X", method = "org.example.X.Get"',
    "http": 'url = "http://127.0.0.1:1/metrics"',
}


def open_selectors(*selectors: tuple[str, str]) -> Selectors:
    """Live selectors of these (name, kind), as an app holds them, their sources never read."""
    text = "[bridge.selectors]\n" + "".join(
        f'{name} = {{ kind = "{kind}", {_UNREAD[kind]} }}\n' for name, kind in selectors
    )
    live = Selectors()
    live.open(config.parse(text).selectors)
    return live


def bridge_app(toml_text: str, registry: CollectorRegistry | None = None) -> web.Application:
    return make_app(config.parse(toml_text, "test.toml"), registry)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    assert value is not None, f"no sample {name}{labels}"
    return value


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait, on the running loop, for `condition` (a bridge's metric or state) to hold."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
