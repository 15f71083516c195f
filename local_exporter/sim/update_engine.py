"""A simulated Flatcar host's update_engine on DBus: the real bus name, object path, interface,
methods and signal (agents/update_engine.py), answering from a model of its status.

As the real daemon does (flatcar/update_engine update_attempter.cc, dbus_service.cc):
- every status change it is told of is broadcast as `StatusUpdate` with GetStatus's five
  values, and the status once at start (main.cc), also when it is NEED_REBOOT restored from
  the completed marker; `ResetStatus` changes it silently;
- `AttemptUpdate` always answers success; it asks for a check (`on_attempt`) only while IDLE;
- `ResetStatus` from IDLE changes nothing, from NEED_REBOOT returns to IDLE without a signal,
  and from any other status fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from dbus_next.aio.message_bus import MessageBus
from dbus_next.constants import MessageType
from dbus_next.message import Message

from local_exporter.agents import update_engine as api
from local_exporter.agents.update_engine import Status
from local_exporter.sim.dbus_service import release, retrieve, serve_on

_UNKNOWN_METHOD = "org.freedesktop.DBus.Error.UnknownMethod"
#: What dbus-glib answers for a method that returned FALSE without an error of its own.
_FAILED = "org.freedesktop.DBus.GLib.ErrorError"


@dataclass
class UpdateEngineService:
    """update_engine on one bus: owns the name until `close()`; `update()` changes its status."""

    bus: MessageBus
    status: Status
    #: Called when AttemptUpdate asks for a check while IDLE.
    on_attempt: Callable[[], None] | None = None

    def update(self, **changes: Any) -> None:
        """Change the status (Status fields) and broadcast it, as SetStatusAndNotify does."""
        self.status = replace(self.status, **changes)
        signal = Message.new_signal(
            api.OBJECT_PATH, api.INTERFACE, api.STATUS_SIGNAL, api.STATUS_SIGNATURE, self.status.body()
        )
        self.bus.send(signal).add_done_callback(retrieve)

    def handle(self, msg: Message) -> bool:
        if (
            msg.message_type != MessageType.METHOD_CALL
            or msg.path != api.OBJECT_PATH
            or msg.interface not in (api.INTERFACE, None)
        ):
            return False
        if msg.member == api.GET_STATUS:
            reply = Message.new_method_return(msg, api.STATUS_SIGNATURE, self.status.body())
        elif msg.member == api.ATTEMPT_UPDATE:
            if self.status.operation == api.IDLE and self.on_attempt is not None:
                self.on_attempt()
            reply = Message.new_method_return(msg)
        elif msg.member == api.RESET_STATUS:
            reply = self._reset(msg)
        else:
            reply = Message.new_error(msg, _UNKNOWN_METHOD, f"No such method '{msg.member}'")
        self.bus.send(reply).add_done_callback(retrieve)
        return True

    def _reset(self, msg: Message) -> Message:
        if self.status.operation == api.IDLE:
            return Message.new_method_return(msg)
        if self.status.operation == api.NEED_REBOOT:
            self.status = replace(self.status, operation=api.IDLE, new_version=api.VERSION_ZERO, new_size=0)
            return Message.new_method_return(msg)
        return Message.new_error(msg, _FAILED, "Method invoked for ResetStatus returned FALSE but did not set error")

    async def close(self) -> None:
        """Release the name and disconnect: what the daemon stopping looks like on the bus."""
        await release(self.bus, api.BUS_NAME)


async def serve_update_engine(bus_address: str, status: Status) -> UpdateEngineService:
    """Own update_engine's name on `bus_address`, answering for `status`, broadcast once."""
    service = await serve_on(bus_address, api.BUS_NAME, lambda bus: UpdateEngineService(bus, status))
    service.update()
    return service
