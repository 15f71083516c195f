"""`kind = "os_update"` with `agent = "update_engine"`: a Flatcar host through a real bridge,
update_engine served on a private dbus-daemon (the real interface: agents/update_engine.py),
its files and locksmith's on disk. The same normalised families as on Fedora CoreOS."""

from __future__ import annotations

import time
from pathlib import Path

from aiohttp.test_utils import TestClient

from local_exporter.agents import locksmith
from local_exporter.agents import os_update as names
from local_exporter.agents import update_engine as api
from local_exporter.agents.update_engine import Status
from local_exporter.sim.update_engine import serve_update_engine
from tests.support.bridges import Families, bridge_app, scrape_families, until_read
from tests.support.dbus import DBusDaemon

BOOTED, TARGET = "4152.2.0", "4230.2.1"
WHERE = {"os": "flatcar", "os_version": BOOTED, "stream": "beta"}


def _selector(directory: Path, bus: DBusDaemon, coordinator: str | None = None) -> str:
    (directory / "release").write_text(f"FLATCAR_RELEASE_VERSION={BOOTED}\nFLATCAR_RELEASE_BOARD=amd64-usr\n")
    (directory / "update.conf").write_text("GROUP=beta\n")
    if coordinator is not None:
        (directory / "coordinator.conf").write_text(coordinator)
    (directory / "boot_id").write_text("boot-1\n")
    (directory / "stat").write_text(f"cpu  1 2 3\nbtime {int(time.time() - 600)}\n")
    return (
        f'[bridge.selectors.os]\nkind = "os_update"\nagent = "update_engine"\ninterval = 0.1\n'
        f'bus_address = "{bus.address}"\nupdate_conf = "{directory}/update.conf"\n'
        f'default_update_conf = "{directory}/none.conf"\nrelease_file = "{directory}/release"\n'
        f'coordinator_file = "{directory}/coordinator.conf"\nno_update_file = "{directory}/noupdate"\n'
        f'boot_id_file = "{directory}/boot_id"\nstat_file = "{directory}/stat"\nboot_record = "{directory}/boot.json"\n'
    )


async def _families(client: TestClient) -> Families:
    status, families = await scrape_families(client, "os")
    assert status == 200, families
    return families


async def _phase(client: TestClient) -> list:
    return (await _families(client))[names.PHASE]


async def test_a_staged_update_waiting_for_the_etcd_lock(aiohttp_client, dbus_bus: DBusDaemon, short_dir: Path) -> None:
    installed = Status(1_765_000_000, 0.0, api.NEED_REBOOT, TARGET, 480_000_000)
    service = await serve_update_engine(dbus_bus.address, installed)
    coordinator = locksmith.render(locksmith.ETCD_LOCK, locksmith.REBOOT_PLANNED)
    try:
        client = await aiohttp_client(bridge_app(_selector(short_dir, dbus_bus, coordinator)))
        await until_read(lambda: _phase(client), [({"phase": "staged", **WHERE}, 1.0)])
        found = await _families(client)
        assert found[names.INFO] == [({"agent": "update_engine", **WHERE}, 1.0)]
        assert found[names.WAITING] == [({"reason": "reboot_lock", **WHERE}, 1.0)]
        assert found[names.TARGET] == [({"version": TARGET, "os": "flatcar"}, 1.0)]
        assert found[names.SOURCE_UP] == [({"source": "agent"}, 1.0)]
        # The agent's own families come along (agent_metrics), those of kind update_engine.
        assert found["update_engine_coordinator_info"] == [
            ({"name": "locksmithd", "strategy": "etcd-lock", "state": "reboot-planned"}, 1.0)
        ]
        # locksmith got the slot and asked for the reboot.
        (short_dir / "coordinator.conf").write_text(locksmith.render(locksmith.ETCD_LOCK, locksmith.REBOOTING))
        await until_read(lambda: _phase(client), [({"phase": "rebooting", **WHERE}, 1.0)])
    finally:
        await service.close()


async def test_a_failed_check_seen_by_signal_and_a_download(
    aiohttp_client, dbus_bus: DBusDaemon, short_dir: Path
) -> None:
    service = await serve_update_engine(dbus_bus.address, Status(last_checked_time=int(time.time() - 60)))
    try:
        client = await aiohttp_client(bridge_app(_selector(short_dir, dbus_bus)))
        await until_read(lambda: _phase(client), [({"phase": "idle", **WHERE}, 1.0)])
        # Faster than the bridge reads: only the signal tells that the check failed.
        service.update(operation=api.CHECKING)
        service.update(operation=api.REPORTING_ERROR)
        service.update(operation=api.IDLE)
        await until_read(lambda: _phase(client), [({"phase": "failing", **WHERE}, 1.0)])
        assert (await _families(client))[names.FAILURE] == [({"kind": "update_check", "os": "flatcar"}, 1.0)]
        # The next check finds an update and downloads it: the check succeeded.
        service.update(operation=api.CHECKING)
        service.update(
            operation=api.UPDATE_AVAILABLE, last_checked_time=int(time.time()), new_version=TARGET, new_size=9
        )
        service.update(operation=api.DOWNLOADING, progress=0.5)
        await until_read(lambda: _phase(client), [({"phase": "downloading", **WHERE}, 1.0)])
        found = await _families(client)
        assert found[names.PROGRESS] == [({}, 0.5)]
        assert found[names.TARGET] == [({"version": TARGET, "os": "flatcar"}, 1.0)]
        assert found[names.LAST_CHECK][0][1] > time.time() - 10
    finally:
        await service.close()


async def test_not_on_the_bus_is_agent_down_unless_updates_are_off(
    aiohttp_client, dbus_bus: DBusDaemon, short_dir: Path
) -> None:
    client = await aiohttp_client(bridge_app(_selector(short_dir, dbus_bus)))
    await until_read(lambda: _phase(client), [({"phase": "agent_down", **WHERE}, 1.0)])
    assert (await _families(client))[names.SOURCE_UP] == [({"source": "agent"}, 0.0)]
    # update-engine.service: ConditionPathExists=!/usr/.noupdate: it is not meant to run.
    (short_dir / "noupdate").write_text("")
    await until_read(lambda: _phase(client), [({"phase": "updates_disabled", **WHERE}, 1.0)])
