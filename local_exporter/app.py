"""make_app(config, registry) -> the aiohttp application; every AppKey is declared here."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.hdrs import ACCEPT
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from local_exporter import landing
from local_exporter.bridge import Bridge, Selector
from local_exporter.config import Config
from local_exporter.metrics import ExporterMetrics
from local_exporter.responses import exposition, text
from local_exporter.sources import SharedResources, SourceLimits

CONFIG = web.AppKey("config", Config)
METRICS = web.AppKey("metrics", ExporterMetrics)
BRIDGE = web.AppKey("bridge", Bridge)
READY = web.AppKey("ready", list)


def make_app(config: Config, registry: CollectorRegistry | None = None) -> web.Application:
    """The bridge app; pass a registry to inspect its metrics (each app gets its own otherwise)."""
    app = web.Application()
    app[CONFIG] = config
    app[METRICS] = ExporterMetrics(registry or CollectorRegistry(), ((s.name, s.kind) for s in config.selectors))
    app[READY] = [False]
    # Selectors are added when the sources open (cleanup_ctx); until then none is known.
    app[BRIDGE] = Bridge({}, app[METRICS], config.service.scrape_timeout_offset, config.service.max_in_flight)
    app.cleanup_ctx.append(_sources)
    app.router.add_get("/", _landing)
    app.router.add_get("/bridge", app[BRIDGE].handle)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/-/healthy", _healthy)
    app.router.add_get("/-/ready", _ready)
    return app


async def _sources(app: web.Application) -> AsyncIterator[None]:
    """Open every selector's source at start and close them all at stop."""
    config, metrics = app[CONFIG], app[METRICS]
    shared = SharedResources()
    bridge = app[BRIDGE]
    bridge.selectors = {
        s.name: Selector(s, s.source.open(SourceLimits(max_bytes=s.max_bytes), shared), metrics.selectors[s.name])
        for s in config.selectors
    }
    app[READY][0] = True
    try:
        yield
    finally:
        app[READY][0] = False
        bridge.deadlines.close()
        for selector in bridge.selectors.values():
            await selector.source.aclose()
        await shared.aclose()


async def _metrics(request: web.Request) -> web.Response:
    encoder, content_type = choose_encoder(request.headers.get(ACCEPT, ""))
    body = encoder(request.app[METRICS].registry)
    return exposition(request, body, content_type)


async def _landing(request: web.Request) -> web.Response:
    return web.Response(text=landing.render(request.app[CONFIG]), content_type="text/html", charset="utf-8")


async def _healthy(request: web.Request) -> web.Response:
    return text(200, "Healthy.")


async def _ready(request: web.Request) -> web.Response:
    if request.app[READY][0]:
        return text(200, "Ready.")
    return text(503, "Not ready.")
