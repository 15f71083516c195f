"""What kube-state-metrics (FLUO's node annotations) and Kured would show of the simulated
Flatcar hosts, were they Kubernetes nodes (agents/kubernetes.py): FLUO's agent mirrors each
host's update_engine status and sets `reboot-needed` at NEED_REBOOT and `reboot-in-progress`
while the host reboots; Kured reports the sentinel the postinstall touches (FINALIZING on, gone
at the reboot). One endpoint; Prometheus scrapes it as both jobs. Derived from update_engine's
state alone: the simulated hosts reboot through locksmith, not through these coordinators."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from local_exporter.agents import kubernetes as api
from local_exporter.agents import update_engine as ue
from local_exporter.sim.fleet import Fleet

_LABELS = [api.annotation_label(key) for key in api.FLUO_ANNOTATIONS]


class KubernetesMetrics:
    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def render(self) -> bytes:
        registry = CollectorRegistry()
        annotations = Gauge(
            api.NODE_ANNOTATIONS,
            "Kubernetes annotations converted to Prometheus labels.",
            ["node", *_LABELS],
            registry=registry,
        )
        kured = Gauge(
            api.KURED_REBOOT_REQUIRED, "OS requires reboot due to software updates.", ["node"], registry=registry
        )
        for host in self.fleet.flatcar:
            operation = host.agent.status.operation
            needed = operation == ue.NEED_REBOOT or host.rebooting
            values = {
                api.REBOOT_NEEDED: str(needed).lower(),
                api.REBOOT_IN_PROGRESS: str(host.rebooting).lower(),
                api.REBOOT_OK: str(host.rebooting).lower(),
                api.STATUS: operation,
            }
            annotations.labels(host.name, *(values[key] for key in api.FLUO_ANNOTATIONS)).set(1)
            sentinel = operation in (ue.FINALIZING, ue.NEED_REBOOT) and not host.rebooting
            kured.labels(host.name).set(1 if sentinel else 0)
        return generate_latest(registry)

    def app(self) -> web.Application:
        async def metrics(_: web.Request) -> web.Response:
            return web.Response(body=self.render(), content_type="text/plain", charset="utf-8")

        application = web.Application()
        application.router.add_get("/metrics", metrics)
        return application
