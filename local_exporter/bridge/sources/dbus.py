"""`kind = "dbus"`: call a method with no arguments; the reply (`ay` or `s`) is the exposition.

One connection per bus address is shared by every selector on that bus and re-made on the
next scrape after the bus or the connection goes away; a service that restarts needs nothing,
since calls go to its well-known name.

Calls in flight are capped per destination on a bus, one by default: the cap protects the
service, so every selector calling that service counts against one cap (`CallCap`), the
smallest `max_calls_in_flight` among them. dbus-next 0.2.3's writer takes EAGAIN for a lost
connection (upstream issue 153): a service written with dbus-next that has a second large reply
queued behind one that just filled the socket drops off the bus. Measured here
(tests/bridge/sources/test_dbus.py), caps of 2 to 7 lost such a service at about one reply size in
three between 0.1 and 4 MB; a cap of 1 never did. Go services (prombus itself) are not affected
and may raise the cap. Scrapes beyond the cap queue within their own deadline.

The reply arrives whole (dbus-next cannot stream it), so `max_bytes` is checked on the complete
reply; the bus daemon's own message size limit (dbus-daemon's default: 32 MiB on the system
bus, about 1 GB on the session bus) bounds it before that.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from dbus_next.aio.message_bus import MessageBus
from dbus_next.constants import BusType, MessageType
from dbus_next.message import Message
from dbus_next.validators import (
    is_bus_name_valid,
    is_interface_name_valid,
    is_member_name_valid,
    is_object_path_valid,
)

from local_exporter.bridge.errors import BadPayload, PayloadTooLarge, SourceFailed, SourceUnavailable
from local_exporter.bridge.sources.base import ParseContext, SharedResources, SourceLimits
from local_exporter.common.dbus_bus import Bus
from local_exporter.common.fields import Table

DEFAULT_MAX_CALLS_IN_FLIGHT = 1
# The upstream report names 8 large replies in flight as the breaking point: never reach it.
MAX_CALLS_IN_FLIGHT = 7
_BUSES = ("system", "session")
# Error replies that mean "nobody there to answer" rather than "the service answered badly".
_UNAVAILABLE_ERRORS = {
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
    "org.freedesktop.DBus.Error.AccessDenied",
    "org.freedesktop.DBus.Error.Disconnected",
}


@dataclass(frozen=True)
class DBusSettings:
    bus: str
    # Explicit bus address; "" means the default address of `bus` (env var or well-known path).
    address: str
    destination: str
    path: str
    interface: str
    member: str
    max_calls_in_flight: int

    def describe(self) -> str:
        bus = self.address or f"{self.bus} bus"
        return f"dbus {bus} {self.destination} {self.path} {self.interface}.{self.member}"

    def open(self, limits: SourceLimits, shared: SharedResources) -> DBusSource:
        connection = shared_connection(shared, self.bus, self.address)
        # One service: its name on one bus. An explicit address names the bus whatever `bus` says.
        cap = shared.get(("dbus calls", self.address or self.bus, self.destination), CallCap, CallCap.aclose)
        return DBusSource(self, limits.max_bytes, connection, cap)


def parse(table: Table, context: ParseContext) -> DBusSettings | None:
    bus = parse_bus(table, context)
    destination = table.string("destination", required=True)
    path = table.string("path", required=True)
    method = table.string("method", required=True)
    limit = table.integer("max_calls_in_flight", DEFAULT_MAX_CALLS_IN_FLIGHT, low=1, high=MAX_CALLS_IN_FLIGHT)
    ok = True
    if destination is not None and not is_bus_name_valid(destination):
        table.problem("destination", f"is not a valid DBus bus name: {destination!r}")
        ok = False
    if path is not None and not is_object_path_valid(path):
        table.problem("path", f"is not a valid DBus object path: {path!r}")
        ok = False
    interface, _, member = (method or "").rpartition(".")
    if method is not None and not (is_interface_name_valid(interface) and is_member_name_valid(member)):
        table.problem("method", f"must be an interface and a method name in one dotted string, got {method!r}")
        ok = False
    if not ok or bus is None or destination is None or path is None or method is None:
        return None
    return DBusSettings(bus[0], bus[1], destination, path, interface, member, limit)


def parse_bus(table: Table, context: ParseContext) -> tuple[str, str] | None:
    """`bus` and `bus_address`: (bus, address), the address defaulting to the `[bridge]` one
    for that bus ("" for the bus's usual address); None when they had problems."""
    bus = table.choice("bus", _BUSES, default="system")
    address = table.string("bus_address")
    if address == "":
        table.problem("bus_address", "must not be empty")
        return None
    if bus is None:
        return None
    default_address = context.buses.system if bus == "system" else context.buses.session
    return bus, address or default_address


def shared_connection(shared: SharedResources, bus: str, address: str) -> BusConnection:
    """The one connection of this app to that bus, made on first use."""
    return shared.get(("dbus", bus, address), lambda: BusConnection(bus, address), BusConnection.aclose)


class _MessageBus(Bus):
    """The common bus (no endless loop on a bus closing during authentication, no socket left
    open), whose futures nobody awaits are retrieved.

    dbus-next fails futures nobody awaits when the bus goes away under it: the one behind
    `wait_for_disconnect` and the write future of every message `call` sends. asyncio would log
    each as an ERROR ("Future exception was never retrieved") with a traceback, on every lost
    bus; the scrape that notices already reports the loss, so those errors are retrieved here.
    """

    def __init__(self, bus_address: str | None, bus_type: BusType) -> None:
        super().__init__(bus_address=bus_address, bus_type=bus_type)  # type: ignore[arg-type]
        self._disconnect_future.add_done_callback(_retrieve)

    # The base class says `send` returns None; the asyncio bus returns the write future.
    def send(self, msg: Message) -> asyncio.Future[None]:  # type: ignore[override]
        future: asyncio.Future[None] = super().send(msg)
        future.add_done_callback(_retrieve)
        return future


class BusConnection:
    """One lazily (re)made connection to one bus."""

    def __init__(self, bus: str, address: str) -> None:
        self.bus_type = BusType.SYSTEM if bus == "system" else BusType.SESSION
        self.address = address
        self.label = address or f"{bus} bus"
        self._bus: _MessageBus | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> tuple[_MessageBus, bool]:
        """The connected bus, and whether it was made just now."""
        bus = self._bus
        if bus is not None and bus.connected:
            return bus, False
        async with self._lock:
            if self._bus is not None and self._bus.connected:
                return self._bus, False
            self.drop(self._bus)
            try:
                bus = _MessageBus(self.address or None, self.bus_type)
            except Exception as exc:  # noqa: BLE001 - dbus-next raises OSError, ValueError, ...
                raise SourceUnavailable(f"connect to DBus {self.label}: {_reason(exc)}") from None
            try:
                await bus.connect()
            except Exception as exc:  # noqa: BLE001 - auth errors, EOF, OSError
                _dispose(bus)
                raise SourceUnavailable(f"connect to DBus {self.label}: {_reason(exc)}") from None
            self._bus = bus
            return bus, True

    def drop(self, bus: _MessageBus | None) -> None:
        """Forget `bus` (if it is still the current one) and close it."""
        if bus is None:
            return
        if self._bus is bus:
            self._bus = None
        _dispose(bus)

    async def aclose(self) -> None:
        self.drop(self._bus)


def _dispose(bus: _MessageBus) -> None:
    """End `bus` now, whatever state it is in (its socket closes as it is finalized)."""
    if not bus._disconnected:
        bus.disconnect()
        bus._finalize(None)


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


async def call(connection: BusConnection, make: Callable[[], Message], what: str) -> Message:
    """Send the message `make()` builds and return its reply (an error reply included).

    A connection that worked before may just be stale (the bus restarted while we were idle):
    a call that fails on it is tried once more on a fresh one, within the caller's deadline.
    """
    while True:
        bus, fresh = await connection.get()
        message = make()
        try:
            reply = await bus.call(message)
        except asyncio.CancelledError:
            # The deadline passed. dbus-daemon never times a call out, so dbus-next would keep
            # this call's reply handler until the service answers: forget it now, or a stuck
            # service grows the connection by one handler per scrape.
            bus._method_return_handlers.pop(message.serial, None)
            raise
        except Exception as exc:  # noqa: BLE001 - a dead connection fails calls with any error
            connection.drop(bus)
            if not fresh:
                continue
            raise SourceUnavailable(f"{what}: DBus connection lost: {_reason(exc)}") from None
        if reply is None:  # only for NO_REPLY_EXPECTED calls, which we never send
            raise SourceFailed(f"{what}: no reply")
        return reply


DBUS_DAEMON = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")


def owner_changes(name: str) -> str:
    """The match rule of the bus daemon's signal that `name` got a new owner, or lost it."""
    return (
        f"type='signal',sender='{DBUS_DAEMON[0]}',interface='{DBUS_DAEMON[2]}',member='NameOwnerChanged',arg0='{name}'"
    )


async def subscribe(bus: MessageBus, handler: Callable[[Message], bool], rules: tuple[str, ...], what: str) -> None:
    """Hand every message of `bus` to `handler` and ask the bus daemon for the signals `rules`
    match (a new connection has no subscriptions)."""
    bus.add_message_handler(handler)
    for rule in rules:
        reply = await bus.call(
            Message(
                destination=DBUS_DAEMON[0],
                path=DBUS_DAEMON[1],
                interface=DBUS_DAEMON[2],
                member="AddMatch",
                signature="s",
                body=[rule],
            )
        )
        if reply is not None and reply.message_type == MessageType.ERROR:
            raise SourceFailed(f"subscribe to {what}: {reply.error_name}")


def raise_if_error(reply: Message, what: str, unreachable: str = "") -> None:
    """Raise the SourceError an error reply means: `unavailable` (with `unreachable` before the
    reason) when nobody is there to answer, else `failed`."""
    if reply.message_type != MessageType.ERROR:
        return
    message, unavailable = error_reply(reply, what)
    if unavailable:
        raise SourceUnavailable(unreachable + message)
    raise SourceFailed(message)


def error_reply(reply: Message, what: str) -> tuple[str, bool]:
    """An error reply's one-line reason, and whether it means "nobody there to answer"."""
    detail = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
    return f"{what}: {reply.error_name}: {detail}".rstrip(": "), reply.error_name in _UNAVAILABLE_ERRORS


def _reason(exc: BaseException) -> str:
    return str(exc) or exc.__class__.__name__


class CallCap:
    """The calls in flight to one destination on one bus, shared by every selector calling it.

    The cap protects the service, not a selector: several selectors (or several Prometheus jobs
    through them) calling one service load it together. Each open source joins with its own
    `max_calls_in_flight` and leaves when it closes; the cap is the smallest of those joined,
    since each is what someone said the service can bear. It lives as long as the app's shared
    resources, so a reload keeps it and calls a replaced source still runs count against it
    until they end; the replaced source's value leaves only then. Waiters are served in order.
    """

    def __init__(self) -> None:
        self.in_flight = 0
        # max_calls_in_flight -> how many open sources joined with it.
        self._joined: dict[int, int] = {}
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def limit(self) -> int:
        return min(self._joined, default=DEFAULT_MAX_CALLS_IN_FLIGHT)

    def join(self, limit: int) -> None:
        # A lower limit needs no wake-up: calls over it finish, and new ones wait meanwhile.
        self._joined[limit] = self._joined.get(limit, 0) + 1

    def leave(self, limit: int) -> None:
        count = self._joined.pop(limit) - 1
        if count:
            self._joined[limit] = count
        self._wake()  # the limit may have risen

    async def acquire(self) -> None:
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # The slot was handed over just as this scrape's deadline passed: pass it on.
                self.release()
            else:
                # `_wake` may have dropped it already, seeing it cancelled.
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        # The slot is handed to the waiter (counted here, before it runs), so a call arriving
        # meanwhile cannot take it: order of arrival holds.
        while self._waiters and self.in_flight < self.limit:
            waiter = self._waiters.popleft()
            if waiter.done():
                continue  # cancelled while waiting
            self.in_flight += 1
            waiter.set_result(None)

    async def aclose(self) -> None:
        return None  # holds nothing but counts


class DBusSource:
    def __init__(self, settings: DBusSettings, max_bytes: int, connection: BusConnection, cap: CallCap) -> None:
        self.settings = settings
        self.max_bytes = max_bytes
        self.connection = connection
        self.cap = cap
        cap.join(settings.max_calls_in_flight)
        self._in_cap = True

    def gauges(self) -> dict[str, float]:
        return {}

    async def fetch(self) -> bytes:
        await self.cap.acquire()
        try:
            reply = await self._call()
        finally:
            self.cap.release()
        return self._payload(reply)

    async def _call(self) -> Message:
        s = self.settings
        return await call(
            self.connection,
            lambda: Message(destination=s.destination, path=s.path, interface=s.interface, member=s.member),
            f"call {s.destination}",
        )

    def _payload(self, reply: Message) -> bytes:
        s = self.settings
        raise_if_error(reply, f"call {s.destination} {s.path} {s.interface}.{s.member}")
        if reply.signature == "ay":
            body = bytes(reply.body[0])
        elif reply.signature == "s":
            body = reply.body[0].encode("utf-8")
        else:
            raise BadPayload(f"call {s.destination}: reply signature is {reply.signature!r}, expected 'ay' or 's'")
        if len(body) > self.max_bytes:
            raise PayloadTooLarge(self.max_bytes)
        return body

    async def aclose(self) -> None:
        # Once only: at stop, a replaced source can be closed both by its drain and by the app.
        if self._in_cap:
            self._in_cap = False
            self.cap.leave(self.settings.max_calls_in_flight)
