"""A simulated fleet served live for a test: started, advancing in the background, closed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from local_exporter.sim.fleet import Fleet
from local_exporter.sim.live import LiveFleet, LiveOptions
from local_exporter.sim.scenario import Scenario


@asynccontextmanager
async def live_fleet(scenario: Scenario, options: LiveOptions) -> AsyncIterator[LiveFleet]:
    live = LiveFleet(scenario, options)
    await live.start()
    stop = asyncio.Event()
    running = asyncio.create_task(live.run(stop))
    try:
        yield live
    finally:
        stop.set()
        await running
        await live.close()


#: A bridge's answer: family -> (sorted label pairs) -> value.
State = dict[str, dict[tuple[tuple[str, str], ...], float]]


async def bridge_state(session: aiohttp.ClientSession, port: int, selector: str) -> State:
    async with session.get(f"http://127.0.0.1:{port}/bridge?selector={selector}") as response:
        assert response.status == 200, await response.text()
        text = await response.text()
    return {
        family.name: {tuple(sorted(s.labels.items())): s.value for s in family.samples}
        for family in text_string_to_metric_families(text)
    }


def reported_phase(state: State) -> tuple[str, str, str]:
    """The phase an os_update selector served, its target version and its waiting reason."""
    (labels,) = state["os_update_phase"]
    target = next(iter(state.get("os_update_target_info", {})), ())
    waiting = next(iter(state.get("os_update_waiting_info", {})), ())
    return dict(labels)["phase"], dict(target).get("version", ""), dict(waiting).get("reason", "")


def first_on(fleet: Fleet, release: str, until: float, step: float) -> dict[str, float]:
    """Advance `fleet` to `until`, `step` by `step`: when each host was first seen taking
    `release` (offered it, or booted into it)."""
    seen: dict[str, float] = {}
    t = 0.0
    while t <= until:
        fleet.advance(t)
        for host in fleet.hosts:
            if host.agent.release == release or host.agent.identity.os_version == release:
                seen.setdefault(host.name, t)
        t += step
    return seen
