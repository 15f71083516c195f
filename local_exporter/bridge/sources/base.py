"""The one interface every source kind implements, and what kinds may share.

A kind is a module named after it, with `parse(table, context)` that reads the selector's own
keys into a frozen settings dataclass (parsed once from the config) whose `open()` builds a
`Source`. Sources only produce bytes or raise `SourceError`; deadlines, status codes, metrics
and logging belong to the bridge, so every kind gets them for free.

The module is imported the first time a selector of its kind is parsed, so a kind's library
(dbus-next for `dbus`) is loaded only by a bridge that has such a selector.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, cast, runtime_checkable

from local_exporter.common.fields import Table


class Source(Protocol):
    def fetch(self) -> bytes | Awaitable[bytes]:
        """The complete exposition, or raise `SourceError`.

        A source that can answer without waiting (a file) returns the bytes; one that must wait
        (a socket, a DBus call) is an `async def` and returns a coroutine, which the bridge
        awaits under the scrape's deadline. Cancellation must release everything.
        """

    async def aclose(self) -> None:
        """Release whatever the source keeps between scrapes."""

    def gauges(self) -> Mapping[str, float]:
        """What the source knows that /metrics should show, by metric name after
        `local_exporter_bridge_` (a file's modification time); most kinds have nothing."""


@runtime_checkable
class KeepsLastGood(Protocol):
    """A source that can stand in for a failed read (the release feeds, feed.py)."""

    def last_good(self) -> bytes | None:
        """Its last good answer, rendered now; None before it had one."""


@dataclass(frozen=True)
class SourceLimits:
    """Per-selector limits a source enforces while it reads (the deadline is the bridge's)."""

    max_bytes: int


class SourceSettings(Protocol):
    def describe(self) -> str:
        """Where the bytes come from, for the landing page and logs (`uds /run/x.sock`)."""

    def open(self, limits: SourceLimits, shared: SharedResources) -> Source: ...


@dataclass(frozen=True)
class BusAddresses:
    """The `[bridge]` DBus addresses of the original config format ("" = the usual default)."""

    system: str = ""
    session: str = ""


@dataclass(frozen=True)
class ParseContext:
    """What a kind may read from the config beyond its selector's own table."""

    #: The `[bridge]` DBus addresses (the `dbus` kind's default buses).
    buses: BusAddresses = field(default_factory=BusAddresses)


class KindModule(Protocol):
    def parse(self, table: Table, context: ParseContext) -> SourceSettings | None:
        """The kind's own keys of a selector table; None when they had problems (reported)."""


@dataclass(frozen=True)
class Kind:
    name: str
    summary: str

    def parse(self, table: Table, context: ParseContext) -> SourceSettings | None:
        return self.module().parse(table, context)

    def module(self) -> KindModule:
        # Imported on first use: the module is `sources/<name>.py`.
        return cast(KindModule, importlib.import_module(f"{__package__}.{self.name}"))


R = TypeVar("R")


class SharedResources:
    """Things several sources of one app share, such as one DBus connection per bus.

    Keyed by whatever the kind chooses; each entry is closed once when the app stops.
    """

    def __init__(self) -> None:
        self._items: dict[Hashable, object] = {}
        self._closers: list[Callable[[], Awaitable[None]]] = []

    def get(self, key: Hashable, factory: Callable[[], R], close: Callable[[R], Awaitable[None]]) -> R:
        if key not in self._items:
            item = factory()
            self._items[key] = item
            self._closers.append(lambda: close(item))
        return self._items[key]  # type: ignore[return-value]

    async def aclose(self) -> None:
        closers, self._closers = self._closers, []
        self._items.clear()
        for close in reversed(closers):
            await close()
