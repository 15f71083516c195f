"""A real HTTP server on loopback standing in for an update server (Cincinnati, Nebraska) in
the feed kinds' tests: it answers the JSON documents it is given by path, and can be told to
fail the way servers do (an error status, too slow, not JSON, too large, gone)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from tests.support.processes import LOOPBACK, free_port

#: How the server answers: "ok", "error" (HTTP 500), "slow" (past any test deadline),
#: "malformed" (not JSON), "huge" (1 MB of JSON).
MODES = ("ok", "error", "slow", "malformed", "huge")


@dataclass
class UpdateServer:
    documents: dict[str, Any]
    mode: str = "ok"
    url: str = ""
    #: Every request: its path with the query, and its headers.
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path_qs, dict(request.headers)))
        if self.mode == "error":
            return web.Response(status=500, text="database unavailable")
        if self.mode == "slow":
            await asyncio.sleep(30)
        if self.mode == "malformed":
            return web.Response(body=b'{"nodes": [', content_type="application/json")
        if self.mode == "huge":
            return web.Response(
                body=json.dumps({"nodes": ["x" * 1000] * 1000}).encode(), content_type="application/json"
            )
        # By path and query first (a page of a listing), else by path.
        document = self.documents.get(request.path_qs, self.documents.get(request.path))
        if document is None:
            return web.Response(status=404, text="not found")
        return web.json_response(document)


@contextlib.asynccontextmanager
async def serving_app(app: web.Application) -> AsyncIterator[str]:
    """`app` served on 127.0.0.1 and a free port: its base URL."""
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def serving(documents: dict[str, Any]) -> AsyncIterator[UpdateServer]:
    server = UpdateServer(documents)
    app = web.Application()
    app.router.add_get("/{tail:.*}", server.handle)
    async with serving_app(app) as url:
        server.url = url
        yield server


#: How a feed's first read fails, as the bridge answers it: (server mode, status, outcome,
#: reason), with `max_bytes = 100000` on the selector; "down": nothing listens at all.
FIRST_READ_FAILURES = [
    ("down", 503, "unavailable", "Connection refused"),
    ("error", 502, "failed", "HTTP 500 Internal Server Error"),
    ("slow", 504, "timeout", "no complete answer within the 1 s deadline"),
    ("malformed", 502, "bad_payload", "not JSON: Expecting value at line 1 column 12"),
    ("huge", 502, "too_large", "payload exceeds max_bytes (100000 bytes)"),
]


def failing(server: UpdateServer, mode: str) -> str:
    """The URL a feed selector reads to fail as `mode` says: `server` told to, or a free port."""
    server.mode = "ok" if mode == "down" else mode
    return f"http://{LOOPBACK}:{free_port()}" if mode == "down" else server.url


async def first_read_fails(
    client: TestClient, registry: CollectorRegistry, selector: str, failure: tuple[str, int, str, str]
) -> None:
    """A scrape of `selector` gets the failure's status and its one-line reason, counted."""
    _, status, outcome, reason = failure
    async with client.get(f"/bridge?selector={selector}") as response:
        assert response.status == status
        text = await response.text()
    assert text.startswith(f"selector {selector}: {outcome}: ") and reason in text and "\n" not in text.strip()
    assert (
        registry.get_sample_value("local_exporter_bridge_requests_total", {"selector": selector, "outcome": outcome})
        == 1
    )
