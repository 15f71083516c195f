"""The simulated update_engine on a private dbus-daemon answers and signals as the real daemon
does (flatcar/update_engine: update_engine.xml for the interface, dbus_service.cc and
update_attempter.cc for what each method does, main.cc for the broadcast at start)."""

from __future__ import annotations

import asyncio

from dbus_next.aio.message_bus import MessageBus
from dbus_next.constants import MessageType
from dbus_next.message import Message

from local_exporter.agents import update_engine as api
from local_exporter.agents.update_engine import Status
from local_exporter.sim.dbus_service import disconnect
from local_exporter.sim.update_engine import serve_update_engine
from tests.support.dbus import DBusDaemon


async def _client(bus: DBusDaemon) -> tuple[MessageBus, list[list[object]]]:
    """A connection that records every StatusUpdate it receives."""
    client = await MessageBus(bus_address=bus.address).connect()
    signals: list[list[object]] = []

    def record(msg: Message) -> bool:
        if msg.message_type == MessageType.SIGNAL and msg.member == api.STATUS_SIGNAL:
            signals.append(list(msg.body))
        return False

    client.add_message_handler(record)
    rule = f"type='signal',interface='{api.INTERFACE}',member='{api.STATUS_SIGNAL}'"
    await client.call(
        Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            member="AddMatch",
            signature="s",
            body=[rule],
        )
    )
    return client, signals


async def _call(client: MessageBus, member: str) -> Message:
    reply = await client.call(
        Message(destination=api.BUS_NAME, path=api.OBJECT_PATH, interface=api.INTERFACE, member=member)
    )
    assert reply is not None
    return reply


async def test_get_status_answers_the_five_values_of_the_interface(dbus_bus: DBusDaemon) -> None:
    status = Status(1765000000, 0.25, api.DOWNLOADING, "4230.2.1", 480_000_000)
    service = await serve_update_engine(dbus_bus.address, status)
    client, _ = await _client(dbus_bus)
    try:
        reply = await _call(client, api.GET_STATUS)
        assert reply.signature == "xdssx"
        assert reply.body == [1765000000, 0.25, "UPDATE_STATUS_DOWNLOADING", "4230.2.1", 480000000]
    finally:
        await disconnect(client)
        await service.close()


async def test_every_change_is_broadcast_but_a_reset(dbus_bus: DBusDaemon) -> None:
    client, signals = await _client(dbus_bus)
    service = await serve_update_engine(dbus_bus.address, Status(operation=api.NEED_REBOOT, new_version="2.0.0"))
    try:
        await _until(lambda: len(signals) == 1)  # main.cc: the status once at start
        assert signals[0][2] == api.NEED_REBOOT
        # ResetStatus from NEED_REBOOT: back to IDLE, "0.0.0", without a signal.
        assert (await _call(client, api.RESET_STATUS)).message_type == MessageType.METHOD_RETURN
        assert service.status == Status(operation=api.IDLE)
        service.update(operation=api.CHECKING)
        await _until(lambda: len(signals) == 2)
        assert signals[1] == [0, 0.0, api.CHECKING, api.VERSION_ZERO, 0]
        # From any other status than IDLE and NEED_REBOOT it fails.
        assert (await _call(client, api.RESET_STATUS)).message_type == MessageType.ERROR
    finally:
        await disconnect(client)
        await service.close()


async def test_attempt_update_always_succeeds_but_checks_only_when_idle(dbus_bus: DBusDaemon) -> None:
    service = await serve_update_engine(dbus_bus.address, Status(operation=api.NEED_REBOOT))
    asked: list[str] = []
    service.on_attempt = lambda: asked.append(service.status.operation)
    client, _ = await _client(dbus_bus)
    try:
        assert (await _call(client, api.ATTEMPT_UPDATE)).message_type == MessageType.METHOD_RETURN
        assert asked == []  # ignored, as update_attempter.cc ignores it outside IDLE
        service.update(operation=api.IDLE)
        assert (await _call(client, api.ATTEMPT_UPDATE)).message_type == MessageType.METHOD_RETURN
        assert asked == [api.IDLE]
        assert (await _call(client, "Frobnicate")).message_type == MessageType.ERROR
    finally:
        await disconnect(client)
        await service.close()


async def _until(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met")
