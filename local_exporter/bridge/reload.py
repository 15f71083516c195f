"""Reloading the config without a restart (SIGHUP, or `POST /-/reload`): parse and compare.

The file is parsed as at start; a config with any problem is refused whole and the running one
keeps serving. What a good one changes is said here; selectors.py applies it to the selectors
(the next scrape sees it, scrapes in flight finish on what they started with) and app.py to the
rest. Listening address and port are the server's: they change only with a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from local_exporter.bridge.config import Config, ConfigError, load


@dataclass(frozen=True)
class Changes:
    """What a reloaded config changes, by selector name, and what it cannot change."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    #: Settings around the source changed (timeout, caps, coalescing, labels): source kept.
    reconfigured: tuple[str, ...]
    #: What the source reads changed (kind, path, max_bytes, ...): a new source.
    reopened: tuple[str, ...]
    #: Said when the new config asks for what only a restart does.
    restart_note: str = ""


class ReloadRefused(Exception):
    """The reload cannot happen; the message is the one line the client and the log get."""


def read(path: Path | None) -> Config:
    """The config file again, or `ReloadRefused` saying why not (every problem, with its line)."""
    if path is None:
        raise ReloadRefused("no config file to reload: this bridge was started without one")
    try:
        return load(path)
    except ConfigError as exc:
        raise ReloadRefused(
            f"config reload failed, still serving the previous config: {'; '.join(exc.problems)}"
        ) from None


#: `[service]` keys the listening socket and its connections are set up with, once, at start.
SERVER_KEYS = ("header_timeout", "idle_timeout", "max_connections", "listen_backlog")


def diff(old: Config, new: Config) -> Changes:
    before = {s.name: s for s in old.selectors}
    after = {s.name: s for s in new.selectors}
    kept = [name for name in after if name in before and after[name] != before[name]]
    note = ""
    if (new.service.address, new.service.port) != (old.service.address, old.service.port):
        note = f"still listening on {old.service.address}:{old.service.port}: a new address or port takes a restart"
    else:
        changed = [key for key in SERVER_KEYS if getattr(new.service, key) != getattr(old.service, key)]
        if changed:
            note = f"service.{', service.'.join(changed)} changed: the listening socket's settings take a restart"
    return Changes(
        added=tuple(name for name in after if name not in before),
        removed=tuple(name for name in before if name not in after),
        reconfigured=tuple(n for n in kept if after[n].source_fields == before[n].source_fields),
        reopened=tuple(n for n in kept if after[n].source_fields != before[n].source_fields),
        restart_note=note,
    )
