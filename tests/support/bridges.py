"""Build a bridge app from TOML text, as `serve` would, for aiohttp's test client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

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


#: A scrape's families by name: each sample's labels and value.
Families = dict[str, list[tuple[dict[str, str], float]]]


async def scrape_families(client: TestClient, selector: str) -> tuple[int, Families]:
    """Scrape `selector`: the status and the families, or, when not 200, the reason under
    `reason` (one sample whose `text` label is the body)."""
    async with client.get(f"/bridge?selector={selector}") as response:
        text = await response.text()
        if response.status != 200:
            return response.status, {"reason": [({"text": text}, 0)]}
    return 200, {f.name: [(dict(s.labels), s.value) for s in f.samples] for f in text_string_to_metric_families(text)}


async def until_read(read: Callable[[], Awaitable[Any]], expected: Any, timeout: float = 5.0) -> None:
    """Read with `read()` (a scrape, say) until it returns `expected`."""
    last = None
    deadline = time.monotonic() + timeout
    while True:
        last = await read()
        if last == expected:
            return
        assert time.monotonic() < deadline, f"still {last!r}, not {expected!r}"
        await asyncio.sleep(0.05)


async def unavailable_until_served(
    client: TestClient, registry: CollectorRegistry, selector: str, reason: str, serve: Callable[[], Awaitable[Any]]
) -> None:
    """`selector` answers 503 starting with `reason` (counted as unavailable) until `serve()`
    starts its service, then 200; the service is closed after."""
    status, body = await scrape_families(client, selector)
    assert status == 503
    assert body["reason"][0][0]["text"].startswith(reason), body
    assert sample(registry, "local_exporter_bridge_requests_total", selector=selector, outcome="unavailable") == 1
    service = await serve()
    try:
        assert (await scrape_families(client, selector))[0] == 200
    finally:
        await service.close()
