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

from tests.support.processes import LOOPBACK, free_port

#: How the server answers: "ok", "error" (HTTP 500), "slow" (past any test deadline),
#: "malformed" (not JSON), "huge" (1 MB of JSON).
MODES = ("ok", "error", "slow", "malformed", "huge")


@dataclass
class UpdateServer:
    documents: dict[str, Any]
    mode: str = "ok"
    port: int = 0
    #: Every request: its path with the query, and its headers.
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

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
        document = self.documents.get(request.path)
        if document is None:
            return web.Response(status=404, text="not found")
        return web.json_response(document)


@contextlib.asynccontextmanager
async def serving(documents: dict[str, Any]) -> AsyncIterator[UpdateServer]:
    server = UpdateServer(documents, port=free_port())
    app = web.Application()
    app.router.add_get("/{tail:.*}", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, LOOPBACK, server.port).start()
    try:
        yield server
    finally:
        await runner.cleanup()
