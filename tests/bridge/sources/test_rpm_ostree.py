"""`kind = "rpm_ostree"` against a private dbus-daemon serving the simulated rpm-ostree (the
real bus name, paths, property names and types: agents/rpm_ostree.py, from coreos/rpm-ostree's
org.projectatomic.rpmostree1.xml and rpmostreed-deployment-utils.cxx)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application
from dbus_next.signature import Variant
from prometheus_client import CollectorRegistry

from local_exporter.agents import rpm_ostree as api
from local_exporter.bridge import config
from local_exporter.bridge.sources import rpm_ostree as rpm_ostree_source
from local_exporter.sim.rpm_ostree import Deployment, HostState, serve_rpm_ostree, update_driver_file
from tests.support.bridges import Families, bridge_app, scrape_families, unavailable_until_served, until_read
from tests.support.dbus import DBusDaemon

AiohttpClient = Callable[[Application], Awaitable[TestClient]]
OLD = Deployment("40.20240504.3.0", "a" * 64, "stable", 1714800000, booted=True, digest="sha256:" + "1" * 64)
NEW = Deployment("40.20240519.3.0", "b" * 64, "stable", 1716100000, serial=0, digest="sha256:" + "2" * 64)
BOOTED = HostState(deployments=(OLD,))


def _selector(bus: DBusDaemon, directory: Path, extra: str = "") -> str:
    return (
        f'[bridge.selectors.os]\nkind = "rpm_ostree"\nbus_address = "{bus.address}"\n'
        f'update_driver_file = "{directory}/update-driver.gv"\n{extra}'
    )


async def _scrape(client: TestClient) -> tuple[int, Families]:
    return await scrape_families(client, "os")


async def test_the_deployments_and_the_transaction_are_served(
    aiohttp_client, dbus_bus: DBusDaemon, short_dir: Path
) -> None:
    (short_dir / "update-driver.gv").write_bytes(update_driver_file())
    service = await serve_rpm_ostree(dbus_bus.address, BOOTED)
    try:
        client = await aiohttp_client(bridge_app(_selector(dbus_bus, short_dir)))
        status, families = await _scrape(client)
        assert status == 200
        assert families["rpm_ostree_deployment_info"] == [
            (
                {
                    "role": "booted",
                    "osname": "fedora-coreos",
                    "version": "40.20240504.3.0",
                    "checksum": "a" * 64,
                    "stream": "stable",
                    "origin": "ostree-image-signed:docker://quay.io/fedora/fedora-coreos:stable",
                    "pinned": "false",
                },
                1.0,
            )
        ]
        assert families["rpm_ostree_deployment_timestamp_seconds"] == [
            ({"role": "booted", "osname": "fedora-coreos"}, 1714800000.0)
        ]
        assert families["rpm_ostree_transaction_active"] == [({}, 0.0)]
        assert "rpm_ostree_transaction_info" not in families
        assert families["rpm_ostree_update_driver_info"] == [({"name": "Zincati", "unit": "zincati.service"}, 1.0)]
        assert families["rpm_ostree_automatic_update_policy_info"] == [({"policy": "none"}, 1.0)]
        assert families["rpm_ostree_daemon_running"] == [({}, 1.0)]
    finally:
        await service.close()


async def test_changes_arrive_by_signal_without_a_call_per_scrape(
    aiohttp_client, dbus_bus: DBusDaemon, short_dir: Path
) -> None:
    service = await serve_rpm_ostree(dbus_bus.address, BOOTED)
    calls = 0
    handle = service.handle

    def counting(msg):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += msg.member == "GetAll"
        return handle(msg)

    service.bus._user_message_handlers[0] = counting  # the service's own handler, counted
    try:
        client = await aiohttp_client(bridge_app(_selector(dbus_bus, short_dir)))
        assert (await _scrape(client))[0] == 200
        # Zincati stages NEW: a Deploy transaction, then the staged deployment appears first.
        service.update(transaction=("Deploy", ":1.41", api.os_object_path("fedora-coreos")))

        async def transaction() -> list:
            return (await _scrape(client))[1].get("rpm_ostree_transaction_info", [])

        await until_read(lambda: transaction(), [({"method": "Deploy", "caller": ":1.41"}, 1.0)])
        staged = Deployment(NEW.version, NEW.checksum, "stable", NEW.timestamp, staged=True, digest=NEW.digest)
        service.update(deployments=(staged, OLD), transaction=api.IDLE_TRANSACTION)

        async def roles() -> list:
            return [(s[0]["role"], s[0]["version"]) for s in (await _scrape(client))[1]["rpm_ostree_deployment_info"]]

        await until_read(roles, [("staged", "40.20240519.3.0"), ("booted", "40.20240504.3.0")])
        assert (await _scrape(client))[1]["rpm_ostree_transaction_active"] == [({}, 0.0)]
        assert calls == 1  # one read at the first scrape, everything else by signal
    finally:
        await service.close()


async def test_not_on_the_bus_is_503_until_rpm_ostree_appears(
    aiohttp_client, dbus_bus: DBusDaemon, short_dir: Path
) -> None:
    registry = CollectorRegistry()
    client = await aiohttp_client(bridge_app(_selector(dbus_bus, short_dir), registry))
    reason = (
        "selector os: unavailable: rpm-ostree is not reachable on the bus: read org.projectatomic.rpmostree1: "
        "org.freedesktop.DBus.Error.ServiceUnknown"
    )
    await unavailable_until_served(client, registry, "os", reason, lambda: serve_rpm_ostree(dbus_bus.address, BOOTED))


async def test_a_daemon_that_exits_keeps_its_state_until_refresh_then_503(
    aiohttp_client, dbus_bus: DBusDaemon, short_dir: Path
) -> None:
    service = await serve_rpm_ostree(
        dbus_bus.address, HostState(deployments=(OLD,), transaction=("Deploy", ":1.9", "/"))
    )
    client = await aiohttp_client(bridge_app(_selector(dbus_bus, short_dir, "refresh = 0.5\n")))
    status, families = await _scrape(client)
    assert status == 200 and families["rpm_ostree_transaction_active"] == [({}, 1.0)]
    await service.close()  # what an idle exit looks like from the bus

    async def running() -> list:
        return (await _scrape(client))[1].get("rpm_ostree_daemon_running", [])

    await until_read(running, [({}, 0.0)])
    status, families = await _scrape(client)
    # The deployments are still true; no transaction runs without the daemon.
    assert families["rpm_ostree_deployment_info"][0][0]["role"] == "booted"
    assert families["rpm_ostree_transaction_active"] == [({}, 0.0)]

    async def status_code() -> int:
        return (await _scrape(client))[0]

    await until_read(status_code, 503)  # refresh passed: read again, and nobody answers


async def test_a_new_daemon_is_read_again(aiohttp_client, dbus_bus: DBusDaemon, short_dir: Path) -> None:
    service = await serve_rpm_ostree(dbus_bus.address, BOOTED)
    client = await aiohttp_client(bridge_app(_selector(dbus_bus, short_dir)))
    assert (await _scrape(client))[0] == 200
    await service.close()
    # The host rebooted into NEW while the old daemon was away (here: the state it comes back with).
    booted = Deployment(NEW.version, NEW.checksum, "stable", NEW.timestamp, booted=True, digest=NEW.digest)
    service = await serve_rpm_ostree(dbus_bus.address, HostState(deployments=(booted, OLD)))
    try:

        async def versions() -> list:
            return [(s[0]["role"], s[0]["version"]) for s in (await _scrape(client))[1]["rpm_ostree_deployment_info"]]

        await until_read(versions, [("booted", NEW.version), ("rollback", OLD.version)])
    finally:
        await service.close()


async def test_a_reply_of_the_wrong_shape_is_a_bad_payload(
    aiohttp_client, dbus_bus: DBusDaemon, short_dir: Path
) -> None:
    service = await serve_rpm_ostree(dbus_bus.address, BOOTED)
    original = HostState.sysroot

    def broken(state: HostState) -> dict[str, Variant]:
        properties = original(state)
        properties["Deployments"] = Variant("aa{sv}", [{"version": Variant("u", 40)}])
        return properties

    service._objects[api.SYSROOT_PATH] = (api.SYSROOT_INTERFACE, broken)
    try:
        client = await aiohttp_client(bridge_app(_selector(dbus_bus, short_dir)))
        status, body = await _scrape(client)
        assert status == 502
        assert body["reason"][0][0]["text"] == (
            "selector os: bad_payload: org.projectatomic.rpmostree1: deployment key 'version' is not of type s\n"
        )
    finally:
        await service.close()


def test_os_object_paths_are_escaped_as_rpm_ostree_does() -> None:
    # rust/src/daemon.rs: `-` and `/` become `_`, other bytes outside [A-Za-z0-9_] `_XX`.
    assert api.os_object_path("fedora-coreos") == "/org/projectatomic/rpmostree1/fedora_coreos"
    assert api.os_object_path("first!") == "/org/projectatomic/rpmostree1/first_21"
    assert api.os_object_path("a/b_c") == "/org/projectatomic/rpmostree1/a_b_c"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("refresh = -1", "bridge.selectors.os.refresh: must be"),
        ('update_driver_file = "run/x.gv"', "bridge.selectors.os.update_driver_file: must be an absolute path"),
        ('bus = "user"', "bridge.selectors.os.bus: must be one of"),
        ('destination = "org.x"', "bridge.selectors.os.destination: unknown key"),
    ],
)
def test_config_problems_name_the_key(line: str, problem: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.parse(f'[bridge.selectors.os]\nkind = "rpm_ostree"\n{line}\n', "test.toml")
    assert any(p.startswith(f"test.toml:3: {problem}") for p in caught.value.problems), caught.value.problems


def test_docs_metrics_md_describes_every_family() -> None:
    state = rpm_ostree_source.sysroot_state(
        HostState(deployments=(NEW, OLD), transaction=("Deploy", ":1.2", "/")).sysroot(), running=True
    )
    names = {family.name for family in rpm_ostree_source.families(state, {"driver-name": "Zincati"})}
    documented = (Path(__file__).resolve().parents[3] / "docs" / "metrics.md").read_text()
    assert names and {name for name in names if f"`{name}`" not in documented} == set()
