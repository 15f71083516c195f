"""A simulated fleet served live for a test: started, advancing in the background, closed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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
