"""make_app(config, registry) -> the aiohttp application; every AppKey is declared here."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from aiohttp.hdrs import ACCEPT
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from local_exporter import landing, reload
from local_exporter.bridge import Bridge
from local_exporter.config import Config
from local_exporter.metrics import ExporterMetrics
from local_exporter.responses import exposition, text
from local_exporter.webconfig.config import WebConfig
from local_exporter.webconfig.guard import WebGuard

RUNNING = web.AppKey("running", reload.Running)
METRICS = web.AppKey("metrics", ExporterMetrics)
BRIDGE = web.AppKey("bridge", Bridge)
WEB = web.AppKey("web", WebGuard)


def make_app(
    config: Config,
    registry: CollectorRegistry | None = None,
    path: Path | None = None,
    *,
    sighup: bool = False,
    web_config: tuple[Path, WebConfig] | None = None,
) -> web.Application:
    """The bridge app; pass a registry to inspect its metrics (each app gets its own otherwise).

    With `path`, `POST /-/reload` (and SIGHUP, with `sighup`) re-reads that file (reload.py).
    With `web_config` (its file and what it holds), every request goes through its guard
    (webconfig/guard.py); without, no per-request cost at all.
    """
    metrics = ExporterMetrics(registry or CollectorRegistry(), ((s.name, s.kind) for s in config.selectors))
    guard = WebGuard(*web_config, metrics) if web_config is not None else None
    app = web.Application(middlewares=[guard.middleware] if guard is not None else [])
    if guard is not None:
        app[WEB] = guard
        app.on_response_prepare.append(guard.add_headers)
    app[RUNNING] = reload.Running(config, path)
    app[METRICS] = metrics
    # Selectors are added when the sources open (cleanup_ctx); until then none is known.
    app[BRIDGE] = Bridge({}, app[METRICS], config.service.scrape_timeout_offset, config.service.max_in_flight)
    app.cleanup_ctx.append(_sources)
    if sighup:
        app.cleanup_ctx.append(_reload_on_sighup)
    app.router.add_get("/", _landing)
    app.router.add_get("/bridge", app[BRIDGE].handle)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/-/healthy", _healthy)
    app.router.add_get("/-/ready", _ready)
    app.router.add_post("/-/reload", _reload)
    return app


async def _sources(app: web.Application) -> AsyncIterator[None]:
    """Open every selector's source at start and close them all at stop."""
    running, bridge = app[RUNNING], app[BRIDGE]
    bridge.selectors = reload.open_selectors(running.config, running, app[METRICS])
    app[METRICS].source_gauges = lambda: {name: s.source.gauges() for name, s in bridge.selectors.items()}
    running.ready = True
    try:
        yield
    finally:
        running.ready = False
        bridge.deadlines.close()
        await reload.close(running, bridge)


async def _reload_on_sighup(app: web.Application) -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, _apply_reload, app)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)


def _apply_reload(app: web.Application) -> tuple[bool, str]:
    done, message = reload.reload(app[RUNNING], app[BRIDGE], app[METRICS])
    guard = app.get(WEB)
    if guard is None:
        return done, message
    web_done, web_message = guard.reload()
    return done and web_done, f"{message}; {web_message}"


async def _reload(request: web.Request) -> web.Response:
    done, message = _apply_reload(request.app)
    # Prometheus' and Alertmanager's convention: a config that cannot be loaded is a 500.
    return text(200 if done else 500, message)


async def _metrics(request: web.Request) -> web.Response:
    encoder, content_type = choose_encoder(request.headers.get(ACCEPT, ""))
    body = encoder(request.app[METRICS].registry)
    return exposition(request, body, content_type)


async def _landing(request: web.Request) -> web.Response:
    return web.Response(text=landing.render(request.app[RUNNING].config), content_type="text/html", charset="utf-8")


async def _healthy(request: web.Request) -> web.Response:
    return text(200, "Healthy.")


async def _ready(request: web.Request) -> web.Response:
    if request.app[RUNNING].ready:
        return text(200, "Ready.")
    return text(503, "Not ready.")
