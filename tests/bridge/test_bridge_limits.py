"""Coalescing and the in-flight caps, against real Unix-socket servers: concurrent scrapes of one
selector share one source read (no caching), and past a cap a scrape gets a 503 with its reason."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from tests.support.bridges import bridge_app, sample, until
from tests.support.unix_servers import Behaviour, close_without_writing, never_write, unix_server

REQUESTS = "local_exporter_bridge_requests_total"
COALESCED = "local_exporter_bridge_coalesced_requests_total"
REJECTED = "local_exporter_bridge_rejected_requests_total"
BODY = b"# TYPE up gauge\nup 1\n"


def late(delay: float, payload: bytes = BODY) -> Behaviour:
    """Zincati's protocol, answering after `delay` seconds."""

    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(delay)
        writer.write(payload)
        await writer.drain()

    return behave


async def _client(
    aiohttp_client, directory: Path, selector: str, service: str = ""
) -> tuple[TestClient, CollectorRegistry]:
    registry = CollectorRegistry()
    toml = (
        f'{service}\n[bridge.selectors]\ns = {{ kind = "uds", path = "{directory}/s.sock", timeout = 5{selector} }}\n'
    )
    return await aiohttp_client(bridge_app(toml, registry)), registry


async def _scrape(client: TestClient) -> tuple[int, bytes]:
    async with client.get("/bridge?selector=s") as response:
        return response.status, await response.read()


async def test_concurrent_scrapes_share_one_read(aiohttp_client, short_dir: Path) -> None:
    client, registry = await _client(aiohttp_client, short_dir, "")
    async with unix_server(short_dir / "s.sock", late(0.3)) as server:
        answers = await asyncio.gather(*(_scrape(client) for _ in range(16)))
        assert answers == [(200, BODY)] * 16
        assert server.accepted == 1
        assert sample(registry, COALESCED, selector="s") == 15
        assert sample(registry, REQUESTS, selector="s", outcome="success") == 16
        # No caching: a scrape after the read has finished reads again.
        assert await _scrape(client) == (200, BODY)
        assert server.accepted == 2


async def test_a_shared_failure_fails_every_scrape_that_shared_it(aiohttp_client, short_dir: Path) -> None:
    client, registry = await _client(aiohttp_client, short_dir, "")
    async with unix_server(short_dir / "s.sock", close_without_writing) as server:
        answers = await asyncio.gather(*(_scrape(client) for _ in range(4)))
    assert [status for status, _ in answers] == [502] * 4
    assert all(b"closed without writing any bytes" in body for _, body in answers), answers[0]
    assert server.accepted == 1 and sample(registry, REQUESTS, selector="s", outcome="bad_payload") == 4


async def test_the_read_outlives_a_scrape_that_leaves_while_others_wait(aiohttp_client, short_dir: Path) -> None:
    client, registry = await _client(aiohttp_client, short_dir, "")
    async with unix_server(short_dir / "s.sock", late(0.5)) as server:
        leaving = asyncio.ensure_future(_scrape(client))
        await until(lambda: sample(registry, "local_exporter_bridge_in_flight_requests", selector="s") == 1)
        staying = asyncio.ensure_future(_scrape(client))
        await until(lambda: sample(registry, COALESCED, selector="s") == 1)
        leaving.cancel()
        assert await staying == (200, BODY)
        assert server.accepted == 1
    await until(lambda: sample(registry, REQUESTS, selector="s", outcome="cancelled") == 1)


async def test_the_last_scrape_leaving_cancels_the_read(aiohttp_client, short_dir: Path) -> None:
    client, registry = await _client(aiohttp_client, short_dir, "")
    async with unix_server(short_dir / "s.sock", never_write) as server:
        scrapes = [asyncio.ensure_future(_scrape(client)) for _ in range(3)]
        await until(lambda: sample(registry, "local_exporter_bridge_in_flight_requests", selector="s") == 3)
        for scrape in scrapes:
            scrape.cancel()
        await asyncio.wait_for(server.client_closed.wait(), 2)
        assert server.accepted == 1
    await until(lambda: sample(registry, "local_exporter_bridge_in_flight_requests", selector="s") == 0)


async def test_without_coalescing_the_selector_cap_refuses_with_503(aiohttp_client, short_dir: Path) -> None:
    client, registry = await _client(aiohttp_client, short_dir, ", coalesce = false, max_concurrency = 4")
    async with unix_server(short_dir / "s.sock", late(0.3)) as server:
        answers = await asyncio.gather(*(_scrape(client) for _ in range(8)))
        assert sorted(status for status, _ in answers) == [200] * 4 + [503] * 4
        assert server.accepted == 4
    refused = [body for status, body in answers if status == 503]
    assert refused[0] == b"selector s: 4 reads of its source already running\n"
    assert sample(registry, REJECTED, reason="selector_busy") == 4
    assert sample(registry, COALESCED, selector="s") == 0


async def test_past_the_global_cap_a_scrape_is_refused_with_503(aiohttp_client, short_dir: Path) -> None:
    client, registry = await _client(
        aiohttp_client, short_dir, ", coalesce = false", service="[service]\nmax_in_flight = 2\n"
    )
    async with unix_server(short_dir / "s.sock", late(0.3)):
        answers = await asyncio.gather(*(_scrape(client) for _ in range(3)))
    assert sorted(status for status, _ in answers) == [200, 200, 503]
    assert b"2 scrapes already being answered: try again later" in next(b for s, b in answers if s == 503)
    assert sample(registry, REJECTED, reason="overloaded") == 1
