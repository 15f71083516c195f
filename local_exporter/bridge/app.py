"""make_app(config, registry) -> the aiohttp application; every AppKey is declared here.

The app wires the parts through their constructors (selectors -> metrics -> bridge) and owns
what is app-wide: readiness, and a reload from start to finish (reload.py says what changed,
selectors.py and the bridge apply it, the metrics and the log tell how it went).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.hdrs import ACCEPT
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from local_exporter.bridge import landing, reload
from local_exporter.bridge.bridge import Bridge
from local_exporter.bridge.config import Config
from local_exporter.bridge.errors import REJECTION_STATUS
from local_exporter.bridge.metrics import ExporterMetrics
from local_exporter.bridge.responses import exposition, text
from local_exporter.bridge.selectors import Selectors
from local_exporter.common.logs import fields

if TYPE_CHECKING:
    # Imported when a web config is given (make_app): TLS and bcrypt cost a bridge without one.
    from local_exporter.bridge.webconfig.config import WebConfig
    from local_exporter.bridge.webconfig.guard import WebGuard

log = logging.getLogger("local_exporter.reload")


@dataclass
class Running:
    """What the app runs now: the config and the file it came from, and whether it serves."""

    config: Config
    path: Path | None = None
    ready: bool = False


RUNNING = web.AppKey("running", Running)
#: Whether `POST /-/reload` may reload (serve --web.enable-lifecycle); SIGHUP always does.
LIFECYCLE = web.AppKey("lifecycle", bool)
SELECTORS = web.AppKey("selectors", Selectors)
METRICS = web.AppKey("metrics", ExporterMetrics)
BRIDGE = web.AppKey("bridge", Bridge)
WEB: web.AppKey[WebGuard] = web.AppKey("web")


def make_app(
    config: Config,
    registry: CollectorRegistry | None = None,
    path: Path | None = None,
    *,
    sighup: bool = False,
    lifecycle: bool = False,
    web_config: tuple[Path, WebConfig] | None = None,
) -> web.Application:
    """The bridge app; pass a registry to inspect its metrics (each app gets its own otherwise).

    With `path`, SIGHUP (with `sighup`) and `POST /-/reload` (with `lifecycle`; otherwise it is
    a 403) re-read that file (reload.py).
    With `web_config` (its file and what it holds), every request goes through its guard
    (webconfig/guard.py); without, no per-request cost at all.
    """
    # The sources open when the app starts (cleanup_ctx); until then no selector is known.
    selectors = Selectors()
    metrics = ExporterMetrics(registry or CollectorRegistry(), selectors)
    guard = None
    if web_config is not None:
        from local_exporter.bridge.webconfig import guard as web_guard

        guard = web_guard.WebGuard(*web_config, metrics)
    app = web.Application(middlewares=[guard.middleware] if guard is not None else [])
    if guard is not None:
        app[WEB] = guard
        app.on_response_prepare.append(guard.add_headers)
    app[RUNNING] = Running(config, path)
    app[LIFECYCLE] = lifecycle
    app[SELECTORS] = selectors
    app[METRICS] = metrics
    app[BRIDGE] = Bridge(selectors, metrics, config.service)
    metrics.budget = app[BRIDGE].budget
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
    running, selectors = app[RUNNING], app[SELECTORS]
    selectors.open(running.config.selectors)
    running.ready = True
    try:
        yield
    finally:
        running.ready = False
        app[BRIDGE].deadlines.close()
        await selectors.aclose()


async def _reload_on_sighup(app: web.Application) -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, _apply_reload, app)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)


def _reload_config(app: web.Application) -> tuple[bool, str]:
    """Re-read the config file and apply it; (done, one line saying what happened)."""
    running, metrics = app[RUNNING], app[METRICS]
    try:
        new = reload.read(running.path)
    except reload.ReloadRefused as exc:
        if running.path is not None:
            metrics.config_loaded(False)
            log.error("config reload failed", extra=fields(path=str(running.path), reason=str(exc)))
        return False, str(exc)
    changes = reload.diff(running.config, new)
    app[SELECTORS].apply(new.selectors, changes)
    app[BRIDGE].configure(new.service)
    running.config = new
    metrics.config_loaded(True)
    note = f"; {changes.restart_note}" if changes.restart_note else ""
    log.info(
        "config reloaded",
        extra=fields(path=str(running.path), selectors=",".join(app[SELECTORS].by_name), note=note),
    )
    return True, f"config reloaded: {len(new.selectors)} selector(s){note}"


def _apply_reload(app: web.Application) -> tuple[bool, str]:
    done, message = _reload_config(app)
    guard = app.get(WEB)
    if guard is None:
        return done, message
    web_done, web_message = guard.reload()
    return done and web_done, f"{message}; {web_message}"


async def _reload(request: web.Request) -> web.Response:
    if not request.app[LIFECYCLE]:
        request.app[METRICS].rejected("lifecycle_disabled")
        return text(
            REJECTION_STATUS["lifecycle_disabled"],
            "lifecycle endpoints are off: start serve with --web.enable-lifecycle, or send SIGHUP",
        )
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
