"""Simulated Flatcar hosts, live: each runs update_engine on a bus of its own (a private
dbus-daemon, the real interface) with locksmith's file beside, and its bridge's selector is
`kind = "os_update"`, `agent = "update_engine"`. A rollout through locksmith's etcd lock, one
slot, shows each phase the hosts pass through, read from their real bridges; the Prometheus
config scrapes them as their own job."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
import yaml

from local_exporter.sim.live import LiveOptions
from local_exporter.sim.scenario import FLATCAR, FlatcarFleetSpec, FleetSpec, ReleaseSpec, Scenario
from tests.support.fleet import State, bridge_state, live_fleet, reported_phase

OLD, NEW = "4152.2.0", "4230.2.1"
SPEED = 600.0


async def _state(session: aiohttp.ClientSession, port: int) -> State:
    return await bridge_state(session, port, "update_engine")


@pytest.mark.timeout(120)
async def test_a_rollout_through_the_etcd_lock_shows_every_phase(short_dir: Path) -> None:
    scenario = Scenario(
        "flatcar",
        "",
        duration=6 * 3600.0,
        fleet=FleetSpec(hosts=1, version="40.20240504.3.0"),
        releases=(ReleaseSpec(NEW, 60.0, rollout=0.0, os=FLATCAR),),
        # Long reboots: a host holds the only slot for half an hour, so the others wait for it.
        reboot=1800.0,
        download=600.0,
        flatcar=FlatcarFleetSpec(hosts=3, version=OLD, locks=(("default", 1),)),
    )
    options = LiveOptions(short_dir, speed=SPEED, bridge_port_base=0, airlock_port=0)
    seen: set[tuple[str, str, str]] = set()
    async with live_fleet(scenario, options) as live, aiohttp.ClientSession() as session:
        config = yaml.safe_load((short_dir / "prometheus" / "prometheus.yml").read_text())
        jobs = {job["job_name"]: job for job in config["scrape_configs"]}
        assert jobs["update_engine"]["params"] == {"selector": ["update_engine"]}
        first = await _state(session, live.flatcar_ports[0])
        assert first["os_update_info"] == {
            (("agent", "update_engine"), ("os", "flatcar"), ("os_version", OLD), ("stream", "stable")): 1.0
        }
        assert first["update_engine_release_info"]  # the agent's own families come along
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            states = [await _state(session, port) for port in live.flatcar_ports]
            seen.update(reported_phase(state) for state in states)
            versions = {dict(next(iter(state["os_update_info"])))["os_version"] for state in states}
            if versions == {NEW} and ("rebooted", NEW, "") in seen:
                break
            await asyncio.sleep(0.05)
    assert ("idle", "", "") in seen
    assert ("downloading", NEW, "") in seen  # 600 s of download, with update_engine's progress
    assert ("staged", NEW, "reboot_lock") in seen  # one slot: the others wait for it
    assert ("rebooted", NEW, "") in seen  # a real reboot into the new release
    assert versions == {NEW}
    assert not any(phase in ("failing", "agent_down", "updates_disabled") for phase, _, _ in seen), seen
