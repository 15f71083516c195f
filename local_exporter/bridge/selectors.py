"""A selector's whole life, in one place: opened at start, swapped on reload, drained, closed.

`Selectors` owns the live selectors (what `/bridge` looks names up in), the resources their
sources share (one DBus connection per bus), and the selectors a reload replaced while the
reads already running on them finish. A reload that changes only what the bridge does around a
source (timeout, coalescing, caps, labels) keeps the open source and its counts; a change to
what opening the source reads (`SelectorConfig.source_fields`) opens a new one (reload.py
tells which is which).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from local_exporter.bridge.config import SelectorConfig
from local_exporter.bridge.metrics import SelectorStats
from local_exporter.bridge.reload import Changes
from local_exporter.bridge.sources import SharedResources, Source


@dataclass
class Read:
    """One read of a source, awaited by every scrape that shares it; cancelled when none is left."""

    task: asyncio.Future[bytes]
    waiters: int = 0


@dataclass
class Selector:
    """A configured selector at run time: its config, its open source and its metrics."""

    config: SelectorConfig
    source: Source
    metrics: SelectorStats
    # The (outcome, reason) of the last scrape if it failed: the same failure again is logged at
    # debug only, so a source down for an hour writes one warning, not one per scrape.
    failure: tuple[str, str] | None = None
    # Deadline per scrape-timeout header value: each Prometheus job sends the same value on every
    # scrape. Bounded, so clients sending arbitrary values cannot grow memory.
    deadlines: dict[str | None, float] = field(default_factory=dict)
    # The read concurrent scrapes join (coalescing), and how many reads are running.
    shared: Read | None = None
    reads: int = 0
    # The running reads' tasks: what a reload waits for before closing a replaced source.
    running: set[asyncio.Future[bytes]] = field(default_factory=set)

    def reconfigure(self, config: SelectorConfig) -> None:
        """New settings around the same source; reads already running finish as they started."""
        self.config = config
        self.deadlines.clear()

    async def drain_and_close(self) -> None:
        """Close the source once its running reads are over (each is bounded by the deadlines
        of the scrapes waiting for it)."""
        if self.running:
            await asyncio.wait(set(self.running))
        await self.source.aclose()


class Selectors:
    """The live selectors by name; `/bridge` reads `by_name`, `/metrics` reads `readings()`."""

    def __init__(self) -> None:
        self.by_name: dict[str, Selector] = {}
        self._shared = SharedResources()
        # Selectors replaced by a reload, each closing once its reads have finished.
        self._retiring: dict[asyncio.Task[None], Selector] = {}

    def open(self, configs: Iterable[SelectorConfig]) -> None:
        """At start: open every selector's source."""
        self.by_name = {config.name: self._open(config, SelectorStats(config.kind)) for config in configs}

    def apply(self, configs: Iterable[SelectorConfig], changes: Changes) -> None:
        """A reloaded config's selectors (reload.py said what changed): unchanged ones stay as
        they are, reconfigured ones take their new settings around the open source, added and
        reopened ones open a source, and removed or reopened ones close theirs once the reads
        running on it are over."""
        old, new = self.by_name, {}
        opening = {*changes.added, *changes.reopened}
        for config in configs:
            current = old.get(config.name)
            if current is None or config.name in opening:
                # A reopened selector of the same kind keeps counting where it was.
                same_kind = current is not None and current.config.kind == config.kind
                stats = current.metrics if current is not None and same_kind else SelectorStats(config.kind)
                new[config.name] = self._open(config, stats)
                continue
            if config.name in changes.reconfigured:
                current.reconfigure(config)
            new[config.name] = current
        self.by_name = new
        for name, selector in old.items():
            if new.get(name) is not selector:
                task = asyncio.get_running_loop().create_task(selector.drain_and_close())
                self._retiring[task] = selector
                task.add_done_callback(self._retiring.pop)

    def readings(self) -> Iterator[tuple[str, SelectorStats, Mapping[str, float]]]:
        """Each selector's name, numbers and its source's gauges, for `/metrics`."""
        for name, selector in self.by_name.items():
            yield name, selector.metrics, selector.source.gauges()

    async def aclose(self) -> None:
        """At stop: every source, retiring ones included, then what they shared."""
        for task, selector in list(self._retiring.items()):
            task.cancel()
            await selector.source.aclose()
        for selector in self.by_name.values():
            await selector.source.aclose()
        self.by_name = {}
        await self._shared.aclose()

    def _open(self, config: SelectorConfig, stats: SelectorStats) -> Selector:
        return Selector(config, config.source.open(config.source_limits, self._shared), stats)
