"""`kind = "http"` against real HTTP servers on loopback and on a Unix socket, through the bridge:
the body passes through, and every failure has its status, reason and counted outcome."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from local_exporter.bridge import config
from tests.support.bridges import bridge_app, sample
from tests.support.processes import LOOPBACK, free_port

REQUESTS = "local_exporter_bridge_requests_total"
BODY = b"# TYPE node_up gauge\nnode_up 1\n"
OPENMETRICS = b"# TYPE node_up gauge\nnode_up 1\n# EOF\n"


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="text/plain")


async def _openmetrics(request: web.Request) -> web.Response:
    assert "application/openmetrics-text" in request.headers["Accept"]
    return web.Response(body=OPENMETRICS, headers={"Content-Type": "application/openmetrics-text; version=1.0.0"})


async def _broken(request: web.Request) -> web.Response:
    return web.Response(status=500, text="exporter exploded")


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(5)
    return web.Response(body=BODY)


async def _huge(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    for _ in range(100):
        await response.write(b"x 1\n" * 1000)
    return response


def _exporter() -> web.Application:
    app = web.Application()
    for path, handler in (("/metrics", _metrics), ("/om", _openmetrics), ("/broken", _broken), ("/slow", _slow)):
        app.router.add_get(path, handler)
    app.router.add_get("/huge", _huge)
    return app


@contextlib.asynccontextmanager
async def _serving(site_for) -> AsyncIterator[None]:  # type: ignore[no-untyped-def]
    runner = web.AppRunner(_exporter())
    await runner.setup()
    await site_for(runner).start()
    try:
        yield
    finally:
        await runner.cleanup()


@pytest.fixture
async def exporter() -> AsyncIterator[int]:
    port = free_port()
    async with _serving(lambda runner: web.TCPSite(runner, LOOPBACK, port)):
        yield port


async def _bridge(aiohttp_client, selectors: str):  # type: ignore[no-untyped-def]
    registry = CollectorRegistry()
    return await aiohttp_client(bridge_app(f"[bridge.selectors]\n{selectors}", registry)), registry


@pytest.mark.parametrize(
    ("path", "status", "outcome", "reason"),
    [
        ("/metrics", 200, "success", ""),
        ("/broken", 502, "failed", "HTTP 500 Internal Server Error"),
        ("/huge", 502, "too_large", "payload exceeds max_bytes (10000 bytes)"),
        ("/slow", 504, "timeout", "no complete answer within the 0.5 s deadline"),
    ],
)
async def test_http_source_statuses(
    aiohttp_client, exporter: int, path: str, status: int, outcome: str, reason: str
) -> None:
    client, registry = await _bridge(
        aiohttp_client,
        f'e = {{ kind = "http", url = "http://{LOOPBACK}:{exporter}{path}", timeout = 0.5, max_bytes = 10000 }}\n',
    )
    async with client.get("/bridge?selector=e") as response:
        assert response.status == status
        body = await response.read()
    if status == 200:
        assert body == BODY and response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    else:
        assert reason in body.decode()
    assert sample(registry, REQUESTS, selector="e", outcome=outcome) == 1


async def test_openmetrics_passes_through_with_its_content_type(aiohttp_client, exporter: int) -> None:
    client, _ = await _bridge(aiohttp_client, f'e = {{ kind = "http", url = "http://{LOOPBACK}:{exporter}/om" }}\n')
    async with client.get("/bridge?selector=e") as response:
        assert response.status == 200 and await response.read() == OPENMETRICS
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")


async def test_nothing_listening_is_503(aiohttp_client) -> None:
    client, registry = await _bridge(
        aiohttp_client, f'e = {{ kind = "http", url = "http://{LOOPBACK}:{free_port()}/metrics" }}\n'
    )
    async with client.get("/bridge?selector=e") as response:
        assert response.status == 503
        assert "Connection refused" in await response.text()
    assert sample(registry, REQUESTS, selector="e", outcome="unavailable") == 1


async def test_http_over_a_unix_socket(aiohttp_client, short_dir: Path) -> None:
    socket = short_dir / "exporter.sock"
    async with _serving(lambda runner: web.UnixSite(runner, str(socket))):
        client, _ = await _bridge(
            aiohttp_client, f'e = {{ kind = "http", url = "http://localhost/metrics", socket = "{socket}" }}\n'
        )
        async with client.get("/bridge?selector=e") as response:
            assert response.status == 200 and await response.read() == BODY
    async with client.get("/bridge?selector=e") as response:
        assert response.status == 503  # the socket is gone


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('url = "https://127.0.0.1/metrics"', "must be an http:// URL with a host"),
        ('url = "127.0.0.1:9100/metrics"', "must be an http:// URL with a host"),
        ('url = "http://127.0.0.1/m"\nsocket = "relative.sock"', "socket: must be an absolute path"),
        ("", "url: is required"),
    ],
)
def test_config_problems_name_the_key(line: str, problem: str) -> None:
    text = f'[bridge.selectors.e]\nkind = "http"\n{line}\n'
    with pytest.raises(config.ConfigError) as caught:
        config.parse(text, "c.toml")
    assert any("bridge.selectors.e" in p and problem in p for p in caught.value.problems), caught.value.problems
