"""Simulated Fedora CoreOS hosts that report their own update phase: each runs rpm-ostree on a
bus of its own (a private dbus-daemon, the real interface) beside its Zincati, and its bridge's
agent selector is `kind = "os_update"`. A FleetLock rollout through one reboot slot shows each
phase the hosts pass through, read from their real bridges."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from local_exporter.sim.live import LiveOptions
from local_exporter.sim.scenario import FleetSpec, ReleaseSpec, Scenario
from tests.support.fleet import State, bridge_state, live_fleet, reported_phase

OLD, NEW = "40.20240504.3.0", "40.20240519.3.0"
HOSTS = 3
SPEED = 300.0  # a refresh about every wall second
RELEASE_AT = 1500.0


async def _state(session: aiohttp.ClientSession, port: int) -> State:
    return await bridge_state(session, port, "zincati")


@pytest.mark.timeout(120)
async def test_a_fleet_lock_rollout_through_one_slot_shows_every_phase(short_dir: Path) -> None:
    scenario = Scenario(
        "rpm-ostree",
        "",
        duration=4 * 3600.0,
        fleet=FleetSpec(hosts=HOSTS, version=OLD, strategy="fleet_lock", groups=(("default", 1),)),
        releases=(ReleaseSpec(NEW, RELEASE_AT, rollout=0.0),),
        reboot=60.0,
        download=120.0,
    )
    options = LiveOptions(short_dir, speed=SPEED, bridge_port_base=0, airlock_port=0, rpm_ostree=True)
    seen: dict[str, set[tuple[str, str, str]]] = {}
    async with live_fleet(scenario, options) as live, aiohttp.ClientSession() as session:
        first = await _state(session, live.bridge_ports[0])
        # The agent's own families come along, and rpm-ostree answers on the host's own bus.
        assert first["zincati_identity_os_info"]
        assert first["os_update_source_up"] == {(("source", "agent"),): 1.0, (("source", "rpm_ostree"),): 1.0}
        assert first["os_update_info"] == {
            (("agent", "zincati"), ("os", "fedora-coreos"), ("os_version", OLD), ("stream", "stable")): 1.0
        }
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = [await _state(session, port) for port in live.bridge_ports]
            for index, state in enumerate(states):
                seen.setdefault(scenario.fleet.host_name(index), set()).add(reported_phase(state))
            versions = {dict(next(iter(state["os_update_info"])))["os_version"] for state in states}
            if versions == {NEW} and ("rebooted", NEW, "") in set().union(*seen.values()):
                break
            await asyncio.sleep(0.05)
    everyone = set().union(*seen.values())
    assert ("idle", "", "") in everyone  # before the release
    assert ("downloading", "", "") in everyone  # rpm-ostree's Deploy transaction, 120 s of download
    assert ("staged", NEW, "reboot_lock") in everyone  # one slot: the others wait for it
    assert ("rebooted", NEW, "") in everyone  # a real reboot into the new deployment
    assert not any(phase in ("failing", "agent_down", "updates_disabled", "dead_end") for phase, _, _ in everyone), seen
