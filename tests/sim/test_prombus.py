"""Simulated hosts exported over a private dbus-daemon, scraped through the real bridge."""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from aiohttp.web import Application
from dbus_next.message import Message

from local_exporter.sim.dbus_service import NameNotOwned
from local_exporter.sim.prombus import (
    INTERFACE,
    MEMBER,
    METHOD,
    PATH,
    UNAVAILABLE_ERROR,
    PrombusExport,
    bus_name,
    export_prombus,
)
from tests.support.bridges import bridge_app
from tests.support.dbus import (
    PROMBUS_INTERFACE,
    PROMBUS_METHOD,
    PROMBUS_NAME,
    PROMBUS_PATH,
    DBusDaemon,
    bus_client,
    connections_from,
    name_owned,
)

AiohttpClient = Callable[[Application], Awaitable[TestClient]]
HOSTS = ("host-0001", "host-0002")


class Render:
    """A render whose output a test changes between scrapes."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def __call__(self) -> bytes:
        return self.body


def payload(host: str, value: int = 1) -> bytes:
    return f'# HELP up Whether the host is up.\n# TYPE up gauge\nup{{host="{host}"}} {value}\n'.encode()


def bridge_toml(address: str) -> str:
    """One dbus selector per host, all on the session bus given in `[bridge]`."""
    selectors = "".join(
        f"""
[bridge.selectors.{host}]
kind = "dbus"
bus = "session"
destination = "{bus_name(host)}"
path = "{PATH}"
method = "{METHOD}"
timeout = 5
"""
        for host in HOSTS
    )
    return f'[bridge]\ndbus_session_bus_address = "{address}"\n{selectors}'


async def scrape(client: TestClient, host: str) -> ClientResponse:
    response = await client.get("/bridge", params={"selector": host})
    await response.read()
    return response


@pytest.fixture
async def exports(dbus_bus: DBusDaemon) -> AsyncIterator[list[PrombusExport]]:
    """Exports a test made on `dbus_bus`; each closed after the test, before the bus stops."""
    made: list[PrombusExport] = []
    yield made
    for export in made:
        await export.close()


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, dbus_bus: DBusDaemon) -> TestClient:
    return await aiohttp_client(bridge_app(bridge_toml(dbus_bus.address)))


def assert_no_asyncio_errors(caplog: pytest.LogCaptureFixture) -> None:
    gc.collect()  # asyncio logs a future's unretrieved exception when the future is collected
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.ERROR] == []


def test_constants_are_prombus_own() -> None:
    assert (PATH, INTERFACE, METHOD) == (PROMBUS_PATH, PROMBUS_INTERFACE, PROMBUS_METHOD)
    assert METHOD == "com.github.lucab.Prombus.Observable.PromMetrics" and MEMBER == "PromMetrics"


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("host-0001", "com.github.lucab.Prombus.host_0001"),
        ("Host_7", "com.github.lucab.Prombus.Host_7"),
        ("0001", "com.github.lucab.Prombus._0001"),
        ("9-lives", "com.github.lucab.Prombus._9_lives"),
        ("node.example.com", "com.github.lucab.Prombus.node_example_com"),
        ("héte:1/2", "com.github.lucab.Prombus.h_te_1_2"),
    ],
)
def test_bus_name_is_one_valid_element(host: str, name: str) -> None:
    assert bus_name(host) == name


@pytest.mark.parametrize(("host", "error"), [("", "must not be empty"), ("h" * 231, "too long")])
def test_bus_name_rejects_what_cannot_be_a_name(host: str, error: str) -> None:
    assert len(bus_name("h" * 230)) == 255  # the longest name DBus allows
    with pytest.raises(ValueError, match=error):
        bus_name(host)


async def test_each_host_is_scraped_byte_for_byte_and_fresh(
    client: TestClient, dbus_bus: DBusDaemon, exports: list[PrombusExport], caplog: pytest.LogCaptureFixture
) -> None:
    renders = {host: Render(payload(host)) for host in HOSTS}
    for host in HOSTS:
        exports.append(await export_prombus(dbus_bus.address, bus_name(host), renders[host]))
    for host in HOSTS:
        response = await scrape(client, host)
        assert response.status == 200, await response.text()
        assert await response.read() == payload(host)
    renders["host-0002"].body = payload("host-0002", 0)
    assert await (await scrape(client, "host-0002")).read() == payload("host-0002", 0)
    assert await (await scrape(client, "host-0001")).read() == payload("host-0001")
    assert_no_asyncio_errors(caplog)


async def test_closed_host_is_unavailable_until_exported_again(
    client: TestClient, dbus_bus: DBusDaemon, exports: list[PrombusExport]
) -> None:
    host, other = HOSTS
    name = bus_name(host)
    exports.append(await export_prombus(dbus_bus.address, name, Render(payload(host))))
    exports.append(await export_prombus(dbus_bus.address, bus_name(other), Render(payload(other))))
    assert (await scrape(client, host)).status == 200

    await exports[0].close()
    assert not await name_owned(dbus_bus.address, name)
    response = await scrape(client, host)
    assert response.status == 503
    assert "unavailable" in await response.text()
    assert (await scrape(client, other)).status == 200  # the other host is untouched

    exports.append(await export_prombus(dbus_bus.address, name, Render(payload(host, 2))))
    response = await scrape(client, host)
    assert response.status == 200
    assert await response.read() == payload(host, 2)


async def test_empty_render_is_an_error_reply_the_bridge_calls_failed(
    client: TestClient, dbus_bus: DBusDaemon, exports: list[PrombusExport]
) -> None:
    host = HOSTS[0]
    render = Render(b"")
    exports.append(await export_prombus(dbus_bus.address, bus_name(host), render))
    response = await scrape(client, host)
    assert response.status == 502
    text = await response.text()
    assert f"selector {host}: failed:" in text and UNAVAILABLE_ERROR in text, text
    render.body = payload(host)
    assert (await scrape(client, host)).status == 200


async def test_a_name_already_owned_cannot_be_exported_twice(
    dbus_bus: DBusDaemon, exports: list[PrombusExport]
) -> None:
    exports.append(await export_prombus(dbus_bus.address, PROMBUS_NAME, Render(b"up 1\n")))
    fds = open_fds()
    with pytest.raises(NameNotOwned, match=f"cannot own DBus name {PROMBUS_NAME}"):
        await export_prombus(dbus_bus.address, PROMBUS_NAME, Render(b"up 2\n"))
    assert open_fds() == fds  # the failed export's connection is closed
    assert await connections_from(dbus_bus.address, os.getpid()) == 1


async def test_unreachable_bus_fails_without_leaking(short_dir: Path) -> None:
    fds = open_fds()
    with pytest.raises(FileNotFoundError):
        await export_prombus(f"unix:path={short_dir}/no-bus", PROMBUS_NAME, Render(b"up 1\n"))
    assert open_fds() == fds


async def test_one_connection_per_host_and_close_disconnects(
    dbus_bus: DBusDaemon, exports: list[PrombusExport]
) -> None:
    for host in HOSTS:
        exports.append(await export_prombus(dbus_bus.address, bus_name(host), Render(payload(host))))
    assert exports[0].unique_name != exports[1].unique_name
    assert await connections_from(dbus_bus.address, os.getpid()) == 2
    for export in exports:
        await export.close()
        await export.close()  # closing again does nothing
    assert await connections_from(dbus_bus.address, os.getpid()) == 0


async def test_other_calls_get_dbus_next_defaults(dbus_bus: DBusDaemon, exports: list[PrombusExport]) -> None:
    name = bus_name(HOSTS[0])
    exports.append(await export_prombus(dbus_bus.address, name, Render(b"up 1\n")))
    async with bus_client(dbus_bus.address) as bus:
        for path, member, signature, body in [
            ("/elsewhere", MEMBER, "", []),
            (PATH, "Other", "", []),
            (PATH, MEMBER, "s", ["argument"]),
        ]:
            call = Message(
                destination=name, path=path, interface=INTERFACE, member=member, signature=signature, body=body
            )
            reply = await bus.call(call)
            assert reply is not None and reply.error_name == "org.freedesktop.DBus.Error.UnknownMethod"
        reply = await bus.call(Message(destination=name, path=PATH, interface=INTERFACE, member=MEMBER))
        assert reply is not None and reply.signature == "ay" and reply.body == [b"up 1\n"]


def open_fds() -> int:
    gc.collect()
    return len(os.listdir("/proc/self/fd"))
