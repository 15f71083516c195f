"""Reloading the config without a restart: SIGHUP, or `POST /-/reload`.

The file is parsed as at start; a config with any problem is refused whole and the running one
keeps serving. A good one takes effect for the next scrape: selectors whose settings did not
change keep their open source and their counters, new ones are opened, and removed or changed
ones are closed once the scrapes already reading them have finished (each bounded by its
deadline). Listening address and port are the server's: they change only with a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from local_exporter.bridge import Bridge, Selector
from local_exporter.config import Config, ConfigError, SelectorConfig, load
from local_exporter.logs import fields
from local_exporter.metrics import ExporterMetrics, SelectorStats
from local_exporter.sources import SharedResources, SourceLimits

log = logging.getLogger("local_exporter.reload")


@dataclass
class Running:
    """What the app runs now: the config (and the file it came from), and what it opened."""

    config: Config
    path: Path | None = None
    ready: bool = False
    shared: SharedResources = field(default_factory=SharedResources)
    # Selectors replaced by a reload, each closing once its scrapes have finished.
    retiring: dict[asyncio.Task[None], Selector] = field(default_factory=dict)


def open_selectors(config: Config, running: Running, metrics: ExporterMetrics) -> dict[str, Selector]:
    return {s.name: _open(s, running, metrics.selectors[s.name]) for s in config.selectors}


def _open(selector_config: SelectorConfig, running: Running, stats: SelectorStats) -> Selector:
    limits = SourceLimits(max_bytes=selector_config.max_bytes)
    return Selector(selector_config, selector_config.source.open(limits, running.shared), stats)


def reload(running: Running, bridge: Bridge, metrics: ExporterMetrics) -> tuple[bool, str]:
    """Re-read the config file and apply it; (done, one line saying what happened)."""
    if running.path is None:
        return False, "no config file to reload: this bridge was started without one"
    try:
        new = load(running.path)
    except ConfigError as exc:
        metrics.reload_successful = False
        log.error("config reload failed", extra=fields(path=str(running.path), problems=" | ".join(exc.problems)))
        return False, f"config reload failed, still serving the previous config: {'; '.join(exc.problems)}"
    note = _apply(new, running, bridge, metrics)
    metrics.reload_successful = True
    metrics.reload_success_time = time.time()
    log.info("config reloaded", extra=fields(path=str(running.path), selectors=",".join(bridge.selectors), note=note))
    return True, f"config reloaded: {len(bridge.selectors)} selector(s){note}"


def _apply(new: Config, running: Running, bridge: Bridge, metrics: ExporterMetrics) -> str:
    old = bridge.selectors
    selectors: dict[str, Selector] = {}
    for selector_config in new.selectors:
        current = old.get(selector_config.name)
        if current is not None and current.config == selector_config:
            selectors[selector_config.name] = current
            continue
        # A changed selector of the same kind keeps counting where it was.
        same_kind = current is not None and current.config.kind == selector_config.kind
        stats = current.metrics if current is not None and same_kind else SelectorStats(selector_config.kind)
        selectors[selector_config.name] = _open(selector_config, running, stats)
    retired = [selector for name, selector in old.items() if selectors.get(name) is not selector]
    bridge.selectors = selectors
    metrics.selectors = {name: selector.metrics for name, selector in selectors.items()}
    bridge.timeout_offset = new.service.scrape_timeout_offset
    bridge.max_in_flight = new.service.max_in_flight
    previous, running.config = running.config, new
    for selector in retired:
        task = asyncio.get_running_loop().create_task(_retire(selector))
        running.retiring[task] = selector
        task.add_done_callback(running.retiring.pop)
    if (new.service.address, new.service.port) != (previous.service.address, previous.service.port):
        return (
            f"; still listening on {previous.service.address}:{previous.service.port}: "
            "a new address or port takes a restart"
        )
    return ""


async def _retire(selector: Selector) -> None:
    """Close a replaced selector's source once its running reads are over (each is bounded by
    the deadlines of the scrapes waiting for it)."""
    if selector.running:
        await asyncio.wait(set(selector.running))
    await selector.source.aclose()


async def close(running: Running, bridge: Bridge) -> None:
    """At shutdown: every source, retiring ones included."""
    for task, selector in list(running.retiring.items()):
        task.cancel()
        await selector.source.aclose()
    for selector in bridge.selectors.values():
        await selector.source.aclose()
    await running.shared.aclose()
