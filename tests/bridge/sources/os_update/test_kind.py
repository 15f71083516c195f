"""`kind = "os_update"` through the real bridge: Zincati's socket served by the simulated agent,
rpm-ostree on a private dbus-daemon, and real files for the boot id, /proc/stat and the boot
record. What a scrape shows is what Prometheus gets."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from local_exporter.agents import os_update as names
from local_exporter.bridge import config
from local_exporter.bridge.sources.os_update import families
from local_exporter.sim.promsock import start_promsock
from local_exporter.sim.rpm_ostree import Deployment, HostState, serve_rpm_ostree
from local_exporter.sim.zincati import Environment, State, ZincatiAgent, ZincatiConfig, ZincatiIdentity
from tests.support.bridges import bridge_app
from tests.support.dbus import DBusDaemon

ROOT = Path(__file__).resolve().parents[4]
OLD = Deployment("42.20250512.3.0", "a" * 64, "stable", 1747000000, booted=True, digest="sha256:" + "1" * 64)
NEW = Deployment("42.20250526.3.0", "b" * 64, "stable", 1748200000, digest="sha256:" + "2" * 64)


def _files(directory: Path, boot_id: str = "boot-2", booted_at: float | None = None) -> None:
    (directory / "boot_id").write_text(boot_id + "\n")
    (directory / "stat").write_text(f"cpu  1 2 3\nbtime {int(booted_at or time.time() - 600)}\nprocesses 9\n")


def _selector(directory: Path, bus: DBusDaemon | None, extra: str = "") -> str:
    rpm_ostree = f'bus_address = "{bus.address}"\n' if bus is not None else "rpm_ostree = false\n"
    return (
        f'[bridge.selectors.os]\nkind = "os_update"\nagent_socket = "{directory}/z.sock"\ninterval = 0.1\n'
        f'boot_id_file = "{directory}/boot_id"\nstat_file = "{directory}/stat"\nboot_record = "{directory}/boot.json"\n'
        f'update_driver_file = "{directory}/driver.gv"\n{rpm_ostree}{extra}'
    )


async def _families(client: TestClient) -> dict[str, list[tuple[dict[str, str], float]]]:
    async with client.get("/bridge?selector=os") as response:
        assert response.status == 200, await response.text()
        text = await response.text()
    return {f.name: [(dict(s.labels), s.value) for s in f.samples] for f in text_string_to_metric_families(text)}


async def _until(client: TestClient, family: str, expected: list, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        found = await _families(client)
        if found.get(family) == expected:
            return found
        assert time.monotonic() < deadline, f"{family}: {found.get(family)!r}, not {expected!r}"
        await asyncio.sleep(0.05)


def _phase(phase: str, version: str = "", stream: str = "stable") -> list[tuple[dict[str, str], float]]:
    """The phase family as served: one series, with the OS, the booted version and stream."""
    return [({"os": "fedora-coreos", "os_version": version, "phase": phase, "stream": stream if version else ""}, 1.0)]


def _fleet_lock_host() -> ZincatiAgent:
    agent = ZincatiAgent(ZincatiIdentity(OLD.version), ZincatiConfig(strategy="fleet_lock"))
    agent.start(time.time() - 3000)
    return agent


async def test_a_staged_update_waiting_for_a_reboot_slot(aiohttp_client, dbus_bus: DBusDaemon, short_dir: Path) -> None:
    _files(short_dir)
    agent = _fleet_lock_host()
    now = time.time() - 2000
    while agent.state is not State.UPDATE_STAGED:  # initialize, steady-state, check, stage
        now += agent.tick(now, Environment(offer=NEW.version)) or 1
    server = await start_promsock(short_dir / "z.sock", agent.render)
    service = await serve_rpm_ostree(
        dbus_bus.address,
        HostState(deployments=(Deployment(NEW.version, NEW.checksum, "stable", NEW.timestamp, staged=True), OLD)),
    )
    try:
        client = await aiohttp_client(bridge_app(_selector(short_dir, dbus_bus)))
        found = await _until(client, names.PHASE, _phase("staged", OLD.version))
        assert found[names.TARGET] == [({"version": NEW.version, "os": "fedora-coreos"}, 1.0)]
        assert found[names.INFO] == [
            ({"os": "fedora-coreos", "os_version": OLD.version, "stream": "stable", "agent": "zincati"}, 1.0)
        ]
        assert found[names.SOURCE_UP] == [({"source": "agent"}, 1.0), ({"source": "rpm_ostree"}, 1.0)]
        # The agent's own families come along (agent_metrics), as Zincati wrote them.
        assert found["zincati_update_agent_updates_enabled"] == [({}, 1.0)]
        # The reboot semaphore is full: the next ticks fail pre-reboot with airlock's failed_lock.
        agent.tick(time.time(), Environment(pre_reboot_error="failed_lock"))
        found = await _until(
            client,
            names.WAITING,
            [({"os": "fedora-coreos", "os_version": OLD.version, "reason": "reboot_lock", "stream": "stable"}, 1.0)],
        )
        assert found[names.PHASE] == _phase("staged", OLD.version)
    finally:
        await service.close()
        server.close()


async def test_agent_metrics_can_be_left_out(aiohttp_client, short_dir: Path) -> None:
    _files(short_dir)
    agent = _fleet_lock_host()
    agent.tick(time.time())
    server = await start_promsock(short_dir / "z.sock", agent.render)
    try:
        with_agent = await aiohttp_client(bridge_app(_selector(short_dir, None)))
        found = await _until(with_agent, names.PHASE, _phase("idle", OLD.version))
        assert found["zincati_update_agent_updates_enabled"] == [({}, 1.0)]
        without = await aiohttp_client(bridge_app(_selector(short_dir, None, "agent_metrics = false\n")))
        found = await _until(without, names.PHASE, _phase("idle", OLD.version))
        assert not any(name.startswith("zincati_") for name in found)
    finally:
        server.close()


async def test_an_agent_that_does_not_answer_is_agent_down(aiohttp_client, short_dir: Path) -> None:
    _files(short_dir)
    client = await aiohttp_client(bridge_app(_selector(short_dir, None, "")))
    found = await _families(client)
    assert found[names.PHASE] == _phase("agent_down")
    assert found[names.SOURCE_UP] == [({"source": "agent"}, 0.0)]


async def test_a_reboot_into_a_new_deployment_is_rebooted_an_ordinary_one_is_not(
    aiohttp_client, dbus_bus: DBusDaemon, short_dir: Path
) -> None:
    booted_at = time.time() - 300
    _files(short_dir, boot_id="boot-2", booted_at=booted_at)
    # The previous boot ran OLD; this one runs NEW.
    (short_dir / "boot.json").write_text(
        json.dumps({"boot_id": "boot-1", "checksum": OLD.checksum, "rebooted_at": None})
    )
    agent = ZincatiAgent(ZincatiIdentity(NEW.version), ZincatiConfig())
    agent.start(booted_at + 20)
    agent.tick(booted_at + 20)
    server = await start_promsock(short_dir / "z.sock", agent.render)
    new_booted = Deployment(NEW.version, NEW.checksum, "stable", NEW.timestamp, booted=True)
    rollback = Deployment(OLD.version, OLD.checksum, "stable", OLD.timestamp)
    service = await serve_rpm_ostree(dbus_bus.address, HostState(deployments=(new_booted, rollback)))
    try:
        client = await aiohttp_client(bridge_app(_selector(short_dir, dbus_bus)))
        found = await _until(client, names.PHASE, _phase("rebooted", NEW.version))
        assert found[names.PHASE_START] == [({"phase": "rebooted"}, float(int(booted_at)))]
        record = json.loads((short_dir / "boot.json").read_text())
        assert record == {"boot_id": "boot-2", "checksum": NEW.checksum, "rebooted_at": float(int(booted_at))}
    finally:
        await service.close()
    # A second bridge in the same boot (a restart) keeps what the first one found.
    service = await serve_rpm_ostree(dbus_bus.address, HostState(deployments=(new_booted, rollback)))
    try:
        client = await aiohttp_client(bridge_app(_selector(short_dir, dbus_bus)))
        await _until(client, names.PHASE, _phase("rebooted", NEW.version))
        # The next boot keeps NEW: an ordinary reboot.
        _files(short_dir, boot_id="boot-3", booted_at=time.time() - 60)
        client = await aiohttp_client(bridge_app(_selector(short_dir, dbus_bus)))
        await _until(client, names.PHASE, _phase("idle", NEW.version))
    finally:
        await service.close()
        server.close()


def test_docs_metrics_md_describes_every_family() -> None:
    from local_exporter.bridge.sources.os_update import Snapshot
    from local_exporter.bridge.sources.os_update.judge import Judgement, Memory

    snapshot = Snapshot(
        Judgement("staged", "v", "reboot_lock", ""), 0, Memory(refresh=1.0), None, True, True, 1.0, None
    )
    rendered = {family.name for family in families(snapshot)}
    assert rendered == {
        value
        for key, value in vars(names).items()
        if key.isupper() and isinstance(value, str) and value.startswith("os_update")
    }
    documented = (ROOT / "docs" / "metrics.md").read_text()
    assert {name for name in rendered if f"`{name}`" not in documented} == set()


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('agent = "rpm-ostree"', "bridge.selectors.os.agent: must be one of"),
        (
            'agent = "update_engine"\nagent_socket = "/z.sock"',
            'bridge.selectors.os.agent_socket: applies to agent = "zincati" only',
        ),
        (
            'coordinator_file = "/c.conf"',
            'bridge.selectors.os.coordinator_file: applies to agent = "update_engine" only',
        ),
        ('agent_socket = "z.sock"', "bridge.selectors.os.agent_socket: must be an absolute path"),
        ("interval = 0", "bridge.selectors.os.interval: must be"),
        ('boot_record = "boot.json"', "bridge.selectors.os.boot_record: must be an absolute path"),
        ("rpm_ostree = 1", "bridge.selectors.os.rpm_ostree: must be a boolean"),
    ],
)
def test_config_problems_name_the_key(line: str, problem: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.parse(f'[bridge.selectors.os]\nkind = "os_update"\n{line}\n', "test.toml")
    line_number = 3 + line.count("\n")
    assert any(p.startswith(f"test.toml:{line_number}: {problem}") for p in caught.value.problems), (
        caught.value.problems
    )
