"""A simulated Nebraska's /metrics (agents/nebraska.py): what the real one would count of the
simulated Flatcar hosts. Each host's latest version per channel, and every error event its
update_engine sent (a failed install; a failed check's event goes to the same failing server
and is not counted). Stale combinations keep their last value, as Nebraska's gauges do."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from local_exporter.agents import nebraska as api
from local_exporter.sim.fleet import Fleet


class NebraskaMetrics:
    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.registry = CollectorRegistry()
        # prometheus_client names a gauge as given: the real names, no suffix added.
        self._instances = Gauge(
            api.INSTANCES_PER_CHANNEL,
            "Number of applications from specific channel running on instances",
            ["application", "version", "channel"],
            registry=self.registry,
        )
        self._failed = Gauge(
            api.FAILED_UPDATES, "Number of failed updates of an application", ["application"], registry=self.registry
        )

    def refresh(self) -> None:
        counts: dict[tuple[str, str], int] = {}
        failed = 0
        for host in self.fleet.flatcar:
            key = (host.agent.version, host.agent.config.group)
            counts[key] = counts.get(key, 0) + 1
            failed += host.agent.install_failures
        # A combination no host has any more keeps its last value: set, never removed.
        for (version, channel), count in counts.items():
            self._instances.labels(api.FLATCAR_APPLICATION, version, channel).set(count)
        self._failed.labels(api.FLATCAR_APPLICATION).set(failed)

    def app(self) -> web.Application:
        async def metrics(_: web.Request) -> web.Response:
            self.refresh()
            return web.Response(body=generate_latest(self.registry), content_type="text/plain", charset="utf-8")

        application = web.Application()
        application.router.add_get("/metrics", metrics)
        return application
