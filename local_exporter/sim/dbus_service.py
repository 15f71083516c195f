"""What the simulator's DBus services share: connecting, owning a name, and a disconnect that
leaves no socket behind however the connection ends (local_exporter.common.dbus_bus)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, TypeVar

from dbus_next.aio.message_bus import MessageBus
from dbus_next.constants import NameFlag, RequestNameReply
from dbus_next.message import Message

from local_exporter.common.dbus_bus import Bus, close_socket


class NameNotOwned(RuntimeError):
    """A service could not become the primary owner of its bus name."""


async def claim(bus: MessageBus, name: str, bus_address: str) -> None:
    """Own `name` on `bus`, or raise `NameNotOwned`: DO_NOT_QUEUE, so a second service of one
    host fails instead of waiting for the first to go."""
    reply = await bus.request_name(name, NameFlag.DO_NOT_QUEUE)
    if reply != RequestNameReply.PRIMARY_OWNER:
        raise NameNotOwned(f"cannot own DBus name {name} on {bus_address}: {reply.name.lower()}")


async def release(bus: MessageBus, name: str) -> None:
    """Give up `name` and disconnect: the name is gone from the bus when this returns. Calling it
    again does nothing (the name is released only while connected)."""
    try:
        if bus.connected:
            await bus.release_name(name)
    finally:
        await disconnect(bus)


async def disconnect(bus: MessageBus) -> None:
    """Disconnect `bus` completely, whatever state it is in, its socket closed (a `Bus` closes it
    as it is finalized; dbus-next's own bus, which tests use too, leaves it open)."""
    done = bus._disconnect_future
    if bus.connected:
        bus.disconnect()  # type: ignore[no-untyped-call]
        await asyncio.shield(done)  # the reader sees the end of the stream and finalizes
    if not bus._disconnected:  # the connect itself failed or was cancelled
        bus._finalize(None)  # type: ignore[no-untyped-call]
    if not done.cancelled():
        done.exception()  # a bus lost earlier was reported to the caller that noticed
    close_socket(bus)


def retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class Service(Protocol):
    def handle(self, msg: Message) -> bool: ...


S = TypeVar("S", bound=Service)


async def serve_on(bus_address: str, name: str, make: Callable[[MessageBus], S]) -> S:
    """Connect to `bus_address`, answer with the service `make(bus)` builds and own `name`: a
    daemon starting. Nothing is left connected when it fails."""
    bus = Bus(bus_address=bus_address)
    try:
        await bus.connect()
        service = make(bus)
        bus.add_message_handler(service.handle)
        await claim(bus, name, bus_address)
    except BaseException:
        await disconnect(bus)
        raise
    return service
