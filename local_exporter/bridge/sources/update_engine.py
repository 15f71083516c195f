"""`kind = "update_engine"`: what Flatcar's update agent and its reboot coordinator know of
this host, read over DBus and from their files, as families.

update_engine (agents/update_engine.py) has no properties: its status is GetStatus's five
values, and it broadcasts them as `StatusUpdate` at each change. The bridge follows the signal,
so short statuses are counted as transitions instead of missed between reads:
`REPORTING_ERROR_EVENT` lasts only while the error event is sent. What the signals tell is
folded into `Followed` by `follow`, a pure function: which update activity failed or succeeded
and when, as the `os_update` kind judges it. GetStatus is called again when a new daemon takes
the name, when the bus connection was made anew, and after `refresh` seconds at most (in case
the bus policy keeps broadcasts from this user). A host where update_engine is not on the bus
answers 503.

Beside it: the booted release and the update config (each key from the first of
`CONFIG_FILES` that has it) and locksmith's coordinator file (agents/locksmith.py).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from dbus_next.constants import MessageType
from dbus_next.message import Message

from local_exporter.agents import locksmith
from local_exporter.agents import update_engine as api
from local_exporter.agents.update_engine import Status
from local_exporter.bridge.errors import BadPayload
from local_exporter.bridge.sources.base import ParseContext, SharedResources, SourceLimits
from local_exporter.bridge.sources.dbus import (
    BusConnection,
    call,
    owner_changes,
    parse_bus,
    raise_if_error,
    shared_connection,
    subscribe,
)
from local_exporter.bridge.sources.exposition import Family, render
from local_exporter.common.fields import Table

DEFAULT_REFRESH_SECONDS = 60.0
MAX_REFRESH_SECONDS = 86400.0
#: Files are small; anything longer is not what the agents write.
MAX_FILE_BYTES = 64 * 1024
_SIGNALS = (
    f"type='signal',sender='{api.BUS_NAME}',interface='{api.INTERFACE}',"
    f"member='{api.STATUS_SIGNAL}',path='{api.OBJECT_PATH}'"
)
#: Settings keys of the files read, and their defaults (the real paths).
FILE_KEYS = {
    "update_conf": api.CONFIG_FILES[0],
    "default_update_conf": api.CONFIG_FILES[1],
    "release_file": api.CONFIG_FILES[2],
    "coordinator_file": locksmith.COORDINATOR_FILE,
    "no_update_file": api.NO_UPDATE_FILE,
}


@dataclass(frozen=True)
class UpdateEngineSettings:
    bus: str
    address: str
    refresh: float = DEFAULT_REFRESH_SECONDS
    #: FILE_KEYS' paths, by key.
    files: Mapping[str, str] = field(default_factory=lambda: MappingProxyType(dict(FILE_KEYS)))

    def describe(self) -> str:
        return f"update_engine {self.address or f'{self.bus} bus'} {api.BUS_NAME}"

    def open(self, limits: SourceLimits, shared: SharedResources) -> UpdateEngineSource:
        return UpdateEngineSource(self, UpdateEngineReader(shared_connection(shared, self.bus, self.address), self))


def parse(table: Table, context: ParseContext) -> UpdateEngineSettings | None:
    bus = parse_bus(table, context)
    refresh = table.number("refresh", DEFAULT_REFRESH_SECONDS, low=0, high=MAX_REFRESH_SECONDS)
    files = parse_files(table)
    if bus is None or files is None:
        return None
    return UpdateEngineSettings(bus[0], bus[1], refresh, MappingProxyType(files))


def parse_files(table: Table) -> dict[str, str] | None:
    """FILE_KEYS' paths (absolute), or None when one had a problem."""
    files, ok = {}, True
    for key, default in FILE_KEYS.items():
        value = table.string(key, default)
        if value is None:
            ok = False
        elif not value.startswith("/"):
            table.problem(key, f"must be an absolute path, got {value!r}")
            ok = False
        else:
            files[key] = value
    return files if ok else None


# --- what the signals tell: pure ------------------------------------------------------------


@dataclass(frozen=True)
class Followed:
    """update_engine's status as last seen, and what the bridge learnt from its changes."""

    status: Status
    #: The daemon's unique bus name (a restart is a new one).
    owner: str
    #: When the current operation began, as seen (the first read: when it was read).
    since: float
    #: When this daemon was first seen.
    first_seen: float
    #: Operation -> changes into it the bridge saw (every daemon).
    entered: Mapping[str, int] = field(default_factory=dict)
    #: StatusUpdate signals received.
    signals: int = 0
    #: Activity (update_check, deploy) -> when it last failed / succeeded (Unix time).
    failures: Mapping[str, float] = field(default_factory=dict)
    successes: Mapping[str, float] = field(default_factory=dict)
    #: The newest `last_checked_time` seen (it is 0 again after a restart).
    last_check_success: float | None = None
    #: The version under way: kept through a restart that restored NEED_REBOOT with "0.0.0".
    target: str = ""


def failed_activity(operation: str) -> str:
    """What failed when an error event follows `operation`: an update found and being installed
    (downloaded, verified, post-installed) is a deploy; otherwise the check."""
    return "deploy" if operation in api.INSTALLING else "update_check"


def follow(previous: Followed | None, status: Status, owner: str, now: float, *, signal: bool = False) -> Followed:
    """`previous` after seeing `status` from the daemon `owner` (by signal, or GetStatus)."""
    if previous is None:
        return Followed(
            status,
            owner,
            now,
            now,
            last_check_success=float(status.last_checked_time) or None,
            signals=int(signal),
            target=_version(status.new_version),
        )
    before = previous.status.operation
    operation = status.operation
    entered, failures, successes = dict(previous.entered), dict(previous.failures), dict(previous.successes)
    changed = operation != before
    if changed:
        entered[operation] = entered.get(operation, 0) + 1
    checked = previous.last_check_success
    if status.last_checked_time and status.last_checked_time > (checked or 0):
        checked = float(status.last_checked_time)
        # When the bridge saw it, to compare with failures it saw (update_engine's time is whole
        # seconds, and its clock the same host's).
        successes["update_check"] = now
        if operation == api.IDLE:
            successes["deploy"] = now  # no update offered: nothing left to deploy
    if changed and operation == api.REPORTING_ERROR:
        failures[failed_activity(before)] = now
    elif changed and before == api.CHECKING and operation == api.IDLE and checked == previous.last_check_success:
        failures["update_check"] = now  # the error event came and went between two reads
    if changed and operation == api.NEED_REBOOT:
        successes["deploy"] = now
    target = _version(status.new_version)
    if not target and operation == api.NEED_REBOOT:
        target = previous.target  # a restarted daemon forgot it
    return Followed(
        status,
        owner,
        now if changed else previous.since,
        now if owner != previous.owner else previous.first_seen,
        MappingProxyType(entered),
        previous.signals + int(signal),
        MappingProxyType(failures),
        MappingProxyType(successes),
        checked,
        target,
    )


def _version(text: str) -> str:
    return "" if text in ("", api.VERSION_ZERO) else text


def status_of(body: list[Any], signature: str) -> Status:
    if signature != api.STATUS_SIGNATURE or len(body) != 5:
        raise BadPayload(f"{api.BUS_NAME}: status signature is {signature!r}, expected {api.STATUS_SIGNATURE!r}")
    last_checked, progress, operation, new_version, new_size = body
    return Status(int(last_checked), float(progress), str(operation), str(new_version), int(new_size))


# --- the files beside: pure reads ----------------------------------------------------------


@dataclass(frozen=True)
class HostFiles:
    """The release, the update config and the reboot coordinator, as read now."""

    version: str
    board: str
    group: str
    server: str
    #: Every key of the update.conf files and the release file, the first file's winning (for
    #: locksmith's settings, which it takes from the same files).
    config: Mapping[str, str]
    #: locksmith's file, or None when there is none.
    coordinator: Mapping[str, str] | None
    no_update: bool

    @property
    def updates_disabled(self) -> bool:
        """update_engine is kept from starting, or its server is the documented `disabled`."""
        return self.no_update or self.server.strip().lower() == api.DISABLED_SERVER

    def setting(self, keys: tuple[str, ...]) -> str:
        return next((self.config[key] for key in keys if self.config.get(key)), "")


def read_files(paths: Mapping[str, str]) -> HostFiles:
    parsed = [
        api.parse_config(_read(paths[key]) or "") for key in ("update_conf", "default_update_conf", "release_file")
    ]
    config: dict[str, str] = {}
    for pairs in reversed(parsed):
        config.update(pairs)
    coordinator = _read(paths["coordinator_file"])
    return HostFiles(
        version=api.lookup(parsed, api.VERSION_KEY),
        board=api.lookup(parsed, api.BOARD_KEY),
        group=api.lookup(parsed, api.GROUP_KEY, api.DEFAULT_GROUP),
        server=api.lookup(parsed, api.SERVER_KEY, api.DEFAULT_SERVER),
        config=MappingProxyType(config),
        coordinator=MappingProxyType(api.parse_config(coordinator)) if coordinator is not None else None,
        no_update=Path(paths["no_update_file"]).exists(),
    )


def _read(path: str) -> str | None:
    """A small text file, or None when it is not there or cannot be read."""
    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_FILE_BYTES).decode(errors="replace")
    except OSError:
        return None


def public_server(url: str) -> str:
    """The update server without credentials or a query (it becomes a label)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if not parts.scheme:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


# --- the reader ----------------------------------------------------------------------------


@dataclass
class UpdateEngineReader:
    """update_engine's status on one bus connection, kept current by its signals."""

    connection: BusConnection
    settings: UpdateEngineSettings
    followed: Followed | None = None
    _bus: object = None
    _read_at: float = 0.0
    _stale: bool = True

    async def state(self) -> Followed:
        bus, _ = await self.connection.get()
        if bus is not self._bus:
            await subscribe(bus, self._signal, (_SIGNALS, owner_changes(api.BUS_NAME)), f"{api.BUS_NAME}'s status")
            self._bus, self._stale = bus, True
        if self._stale or self.followed is None or time.monotonic() - self._read_at >= self.settings.refresh:
            reply = await call(self.connection, _get_status, f"read {api.BUS_NAME}")
            status = _reply(reply)
            self.followed = follow(self.followed, status, reply.sender or "", time.time())
            self._read_at, self._stale = time.monotonic(), False
        return self.followed

    def _signal(self, msg: Message) -> bool:
        if msg.message_type != MessageType.SIGNAL:
            return False
        if msg.member == "NameOwnerChanged" and msg.body and msg.body[0] == api.BUS_NAME:
            self._stale = True  # a new daemon, or none: ask again
        elif msg.member == api.STATUS_SIGNAL and msg.interface == api.INTERFACE and self.followed is not None:
            try:
                status = status_of(msg.body, msg.signature)
            except (BadPayload, TypeError, ValueError):
                self._stale = True
                return False
            self.followed = follow(self.followed, status, msg.sender or "", time.time(), signal=True)
        return False


class UpdateEngineSource:
    def __init__(self, settings: UpdateEngineSettings, reader: UpdateEngineReader) -> None:
        self.settings = settings
        self.reader = reader

    def gauges(self) -> dict[str, float]:
        return {}

    async def fetch(self) -> bytes:
        followed = await self.reader.state()
        return render(families(followed, read_files(self.settings.files)))

    async def aclose(self) -> None:
        return None


def families(followed: Followed, files: HostFiles) -> list[Family]:
    status = followed.status
    operation = Family("update_engine_status_info", "gauge", "update_engine's current operation.").add(
        1, operation=status.operation
    )
    new_version = Family(
        "update_engine_new_version_info", "gauge", "The version being installed or installed and awaiting the reboot."
    )
    if followed.target:
        new_version.add(1, version=followed.target)
    checked = Family(
        "update_engine_last_checked_timestamp_seconds",
        "gauge",
        "update_engine's last successful update check (Unix time); absent until one since it started.",
    )
    if status.last_checked_time > 0:
        checked.add(status.last_checked_time)
    transitions = Family(
        "update_engine_status_transitions_total",
        "counter",
        "Changes into each operation the bridge saw, signalled or read (short ones such as "
        "UPDATE_STATUS_REPORTING_ERROR_EVENT counted as they happen).",
    )
    for name in api.STATUSES:
        transitions.add(followed.entered.get(name, 0), operation=name)
    coordinator = Family(
        "update_engine_coordinator_info",
        "gauge",
        "The reboot coordinator's own account (locksmith's coordinator.conf): its strategy and state.",
    )
    if files.coordinator is not None:
        conf = files.coordinator
        coordinator.add(
            1,
            name=conf.get(locksmith.NAME_KEY, ""),
            strategy=conf.get(locksmith.STRATEGY_KEY, ""),
            state=conf.get(locksmith.STATE_KEY, ""),
        )
    return [
        operation,
        Family(
            "update_engine_status_start_timestamp_seconds",
            "gauge",
            "When the current operation began, as the bridge saw it (Unix time).",
        ).add(followed.since),
        Family("update_engine_progress_ratio", "gauge", "Download progress of the update, 0 to 1.").add(
            status.progress
        ),
        Family("update_engine_new_size_bytes", "gauge", "Size of the update's payload; 0 when none.").add(
            status.new_size
        ),
        new_version,
        checked,
        transitions,
        Family("update_engine_status_signals_total", "counter", "StatusUpdate signals the bridge received.").add(
            followed.signals
        ),
        Family("update_engine_release_info", "gauge", "The booted Flatcar release and board.").add(
            1, version=files.version, board=files.board
        ),
        Family(
            "update_engine_config_info",
            "gauge",
            "The update group (channel) and server update_engine asks, without credentials.",
        ).add(1, group=files.group, server=public_server(files.server)),
        coordinator,
    ]


def _get_status() -> Message:
    return Message(destination=api.BUS_NAME, path=api.OBJECT_PATH, interface=api.INTERFACE, member=api.GET_STATUS)


def _reply(reply: Message) -> Status:
    raise_if_error(reply, f"read {api.BUS_NAME}", "update_engine is not reachable on the bus: ")
    try:
        return status_of(reply.body, reply.signature)
    except (TypeError, ValueError) as exc:
        raise BadPayload(f"{api.BUS_NAME}: bad status: {exc}") from None
