"""`kind = "rpm_ostree"`: what rpm-ostree knows of this host, read over DBus, as families.

The deployments (booted, staged, rollback: version, checksum, origin, stream, commit time),
the transaction running now (a download and deploy is `Deploy` or `Rebase`, a reboot into the
staged deployment `FinalizeDeployment`), the automatic update policy, and the update driver
registered with rpm-ostree (Zincati). Names and types: agents/rpm_ostree.py.

The state is read once (`Properties.GetAll` on the Sysroot object) and then kept by following
rpm-ostree's `PropertiesChanged` signals and its name's owner, not by a call per scrape. The
daemon exits when idle and bus activation starts it again on the next call: the state stays
true meanwhile (deployments change only through the daemon, which announces it), so it is
re-read when a new daemon takes the name, when the bus connection was made anew, and after
`refresh` seconds at most. A host where rpm-ostree cannot be reached answers 503.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dbus_next.constants import MessageType
from dbus_next.message import Message
from dbus_next.signature import Variant

from local_exporter.agents import rpm_ostree as api
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
from local_exporter.common.gvariant import decode_string_dict

DEFAULT_REFRESH_SECONDS = 600.0
MAX_REFRESH_SECONDS = 86400.0
_CHANGES = (
    f"type='signal',sender='{api.BUS_NAME}',interface='{api.PROPERTIES_INTERFACE}',"
    f"member='PropertiesChanged',path='{api.SYSROOT_PATH}'"
)


@dataclass(frozen=True)
class RpmOstreeSettings:
    bus: str
    address: str
    refresh: float = DEFAULT_REFRESH_SECONDS
    update_driver_file: str = api.UPDATE_DRIVER_FILE

    def describe(self) -> str:
        return f"rpm_ostree {self.address or f'{self.bus} bus'} {api.BUS_NAME}"

    def open(self, limits: SourceLimits, shared: SharedResources) -> RpmOstreeSource:
        return RpmOstreeSource(self, RpmOstreeReader(shared_connection(shared, self.bus, self.address), self))


def parse(table: Table, context: ParseContext) -> RpmOstreeSettings | None:
    bus = parse_bus(table, context)
    refresh = table.number("refresh", DEFAULT_REFRESH_SECONDS, low=0, high=MAX_REFRESH_SECONDS)
    driver = table.string("update_driver_file", api.UPDATE_DRIVER_FILE)
    if driver is not None and not driver.startswith("/"):
        table.problem("update_driver_file", f"must be an absolute path, got {driver!r}")
        return None
    if bus is None or driver is None:
        return None
    return RpmOstreeSettings(bus[0], bus[1], refresh, driver)


@dataclass(frozen=True)
class Deployment:
    """One deployment as the bridge uses it; `role`: staged, booted, rollback or other."""

    role: str
    osname: str
    checksum: str
    version: str
    stream: str
    origin: str
    timestamp: float
    pinned: bool


@dataclass(frozen=True)
class SysrootState:
    deployments: tuple[Deployment, ...]
    #: (method, caller's unique bus name); ("", "") when idle.
    transaction: tuple[str, str]
    policy: str
    #: Whether the daemon is on the bus now (it exits when idle).
    running: bool
    #: When this was read, or last changed by a signal (Unix time).
    updated: float

    @property
    def booted(self) -> Deployment | None:
        return next((d for d in self.deployments if d.role == "booted"), None)

    @property
    def staged(self) -> Deployment | None:
        return next((d for d in self.deployments if d.role == "staged"), None)


@dataclass
class RpmOstreeReader:
    """rpm-ostree's Sysroot state on one bus connection, kept current by its signals."""

    connection: BusConnection
    settings: RpmOstreeSettings
    _bus: object = None
    _properties: dict[str, Variant] = field(default_factory=dict)
    _state: SysrootState | None = None
    _read_at: float = 0.0

    async def state(self) -> SysrootState:
        bus, _ = await self.connection.get()
        if bus is not self._bus:
            # A new connection has no subscriptions and may have missed changes.
            await subscribe(bus, self._signal, (_CHANGES, owner_changes(api.BUS_NAME)), f"{api.BUS_NAME}'s changes")
            self._bus, self._state = bus, None
        if self._state is None or time.monotonic() - self._read_at >= self.settings.refresh:
            reply = await call(self.connection, _get_all, f"read {api.BUS_NAME}")
            self._properties = dict(_reply(reply))
            self._read_at = time.monotonic()
            self._state = sysroot_state(self._properties, running=True)
        return self._state

    def invalidate(self) -> None:
        """Read the state whole at the next call (the host may have changed under us)."""
        self._state = None

    def _signal(self, msg: Message) -> bool:
        if msg.message_type != MessageType.SIGNAL:
            return False
        if msg.member == "NameOwnerChanged" and msg.body and msg.body[0] == api.BUS_NAME:
            if msg.body[2]:
                self._state = None  # a new daemon: read it again
            elif self._state is not None:
                # Gone (idle exit, or a crash): no transaction runs without it.
                self._properties["ActiveTransaction"] = Variant("(sss)", list(api.IDLE_TRANSACTION))
                self._state = sysroot_state(self._properties, running=False)
        elif (
            msg.member == "PropertiesChanged"
            and msg.path == api.SYSROOT_PATH
            and msg.body
            and msg.body[0] == api.SYSROOT_INTERFACE
            and self._state is not None
        ):
            self._properties.update(msg.body[1])
            try:
                self._state = sysroot_state(self._properties, running=True)
            except BadPayload:
                self._state = None  # read it whole again, and report what is wrong then
        return False


class RpmOstreeSource:
    def __init__(self, settings: RpmOstreeSettings, reader: RpmOstreeReader) -> None:
        self.settings = settings
        self.reader = reader

    def gauges(self) -> dict[str, float]:
        return {}

    async def fetch(self) -> bytes:
        state = await self.reader.state()
        return render(families(state, _driver(self.settings.update_driver_file)))

    async def aclose(self) -> None:
        return None


def families(state: SysrootState, driver: Mapping[str, str] | None) -> list[Family]:
    info = Family(
        "rpm_ostree_deployment_info",
        "gauge",
        "A deployment rpm-ostree keeps, by role: staged (rebooting into it is pending), booted, rollback or other.",
    )
    stamp = Family("rpm_ostree_deployment_timestamp_seconds", "gauge", "Commit time of each deployment's OS version.")
    for d in state.deployments:
        info.add(
            1,
            role=d.role,
            osname=d.osname,
            version=d.version,
            checksum=d.checksum,
            stream=d.stream,
            origin=d.origin,
            pinned=str(d.pinned).lower(),
        )
        stamp.add(d.timestamp, role=d.role, osname=d.osname)
    method, caller = state.transaction
    transaction = Family(
        "rpm_ostree_transaction_info",
        "gauge",
        "The transaction rpm-ostree runs now: Deploy or Rebase stage an update (download included), "
        "FinalizeDeployment reboots into it.",
    )
    if method:
        transaction.add(1, method=method, caller=caller)
    driver_info = Family(
        "rpm_ostree_update_driver_info", "gauge", "The update agent registered as rpm-ostree's update driver."
    )
    if driver:
        driver_info.add(1, name=driver.get(api.DRIVER_NAME_KEY, ""), unit=driver.get(api.DRIVER_UNIT_KEY, ""))
    return [
        info,
        stamp,
        Family("rpm_ostree_transaction_active", "gauge", "Whether rpm-ostree runs a transaction now.").add(
            1 if method else 0
        ),
        transaction,
        Family("rpm_ostree_automatic_update_policy_info", "gauge", "rpm-ostree's own automatic update policy.").add(
            1, policy=state.policy
        ),
        driver_info,
        Family(
            "rpm_ostree_daemon_running",
            "gauge",
            "Whether rpm-ostree's daemon is on the bus now (it exits when idle and starts on the next call).",
        ).add(1 if state.running else 0),
        Family(
            "rpm_ostree_state_timestamp_seconds",
            "gauge",
            "When the bridge last read rpm-ostree's state or received a change of it.",
        ).add(state.updated),
    ]


def _get_all() -> Message:
    return Message(
        destination=api.BUS_NAME,
        path=api.SYSROOT_PATH,
        interface=api.PROPERTIES_INTERFACE,
        member="GetAll",
        signature="s",
        body=[api.SYSROOT_INTERFACE],
    )


def _reply(reply: Message) -> Mapping[str, Variant]:
    raise_if_error(reply, f"read {api.BUS_NAME}", "rpm-ostree is not reachable on the bus: ")
    if reply.signature != "a{sv}":
        raise BadPayload(f"read {api.BUS_NAME}: reply signature is {reply.signature!r}, expected 'a{{sv}}'")
    return reply.body[0]  # type: ignore[no-any-return]


def sysroot_state(properties: Mapping[str, Variant], *, running: bool) -> SysrootState:
    raw = properties.get("Deployments")
    if raw is None or raw.signature != "aa{sv}":
        raise BadPayload(f"{api.BUS_NAME}: Deployments missing or not aa{{sv}}")
    deployments = [_deployment(d) for d in raw.value]
    booted = next((i for i, d in enumerate(raw.value) if _value(d, "booted", "b", False)), None)
    roles = []
    for index, d in enumerate(raw.value):
        if _value(d, "staged", "b", False):
            roles.append("staged")
        elif index == booted:
            roles.append("booted")
        elif booted is not None and index == booted + 1:
            roles.append("rollback")
        else:
            roles.append("other")
    transaction = properties.get("ActiveTransaction")
    method, caller = ("", "")
    if transaction is not None and transaction.signature == "(sss)":
        method, caller = transaction.value[0], transaction.value[1]
    policy = properties.get("AutomaticUpdatePolicy")
    return SysrootState(
        deployments=tuple(Deployment(role, *fields) for role, fields in zip(roles, deployments, strict=True)),
        transaction=(method, caller),
        policy=policy.value if policy is not None and policy.signature == "s" else "",
        running=running,
        updated=time.time(),
    )


def _deployment(d: Mapping[str, Variant]) -> tuple[str, str, str, str, str, float, bool]:
    origin = _value(d, "container-image-reference", "s", "") or _value(d, "origin", "s", "")
    return (
        _value(d, "osname", "s", ""),
        _value(d, "checksum", "s", ""),
        _value(d, "version", "s", ""),
        _stream(d, origin),
        origin,
        float(_value(d, "timestamp", "t", 0)),
        _value(d, "pinned", "b", False),
    )


def _stream(d: Mapping[str, Variant], origin: str) -> str:
    """Where Zincati finds it (src/rpm_ostree/cli_status.rs): the image's `com.coreos.stream`
    label, or a legacy commit's `fedora-coreos.stream` metadata."""
    meta = _value(d, "base-commit-meta", "a{sv}", {})
    config = meta.get("ostree.container.image-config")
    if config is not None and config.signature == "s":
        try:
            labels = json.loads(config.value).get("config", {}).get("Labels", {})
        except (ValueError, AttributeError):
            labels = {}
        if isinstance(labels, dict) and isinstance(labels.get("com.coreos.stream"), str):
            return str(labels["com.coreos.stream"])
    legacy = meta.get(api.STREAM_COMMIT_META)
    return legacy.value if legacy is not None and legacy.signature == "s" else ""


def _value(d: Mapping[str, Variant], key: str, signature: str, default: Any) -> Any:
    item = d.get(key)
    if item is None:
        return default
    if not isinstance(item, Variant) or item.signature != signature:
        raise BadPayload(f"{api.BUS_NAME}: deployment key {key!r} is not of type {signature}")
    return item.value


def _driver(path: str) -> dict[str, str] | None:
    """The registered update driver, or None: no file is no driver registered (a damaged one
    shows the same; the deployments and the transaction are what this kind is for)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(4096)
    except OSError:
        return None
    try:
        return decode_string_dict(data)
    except ValueError:
        return None
