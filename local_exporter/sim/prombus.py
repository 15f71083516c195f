"""A simulated host's metrics over DBus, as prombus serves them.

Each export is one dbus-next connection owning one well-known name and answering
`com.github.lucab.Prombus.Observable.PromMetrics()` on `/com/github/lucab/Prombus` with
`render()` as an `ay` reply, called afresh per call. An empty render is an error reply
(`com.github.lucab.Prombus.Error.Unavailable`), as the Unix socket closes without writing.

A real host has its own bus and prombus owns `com.github.lucab.Prombus` on it. Many simulated
hosts share one private bus instead, so each host owns a name of its own (`bus_name(host)`)
on a connection of its own: closing one host's export drops its name and nothing else, which
is what the bridge sees of a host whose agent is down ("name not owned", 503).

The reply is sent by a dbus-next service, so the bridge's default of one call in flight per
selector applies (dbus-next upstream issue 153, see `local_exporter.sources.dbus`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from dbus_next.aio.message_bus import MessageBus
from dbus_next.constants import MessageType
from dbus_next.message import Message
from dbus_next.validators import is_bus_name_valid

from local_exporter.sim.dbus_service import release, retrieve, serve_on

NAME = "com.github.lucab.Prombus"
PATH = "/com/github/lucab/Prombus"
INTERFACE = "com.github.lucab.Prombus.Observable"
MEMBER = "PromMetrics"
#: How the bridge's `method` key names the call: interface and member in one string.
METHOD = f"{INTERFACE}.{MEMBER}"
#: The error reply for an empty render; the bridge reports it as `failed`.
UNAVAILABLE_ERROR = "com.github.lucab.Prombus.Error.Unavailable"

_NOT_NAME_CHARS = re.compile(r"[^A-Za-z0-9_]")


def bus_name(host: str) -> str:
    """The well-known bus name host `host` is exported under, e.g. `com.github.lucab.Prombus.host_0001`.

    The host becomes one name element: every character outside [A-Za-z0-9_] (`-`, `.`, ...)
    becomes `_`, and `_` goes in front of a leading digit. Distinct hosts can therefore share a
    name (`a-1`, `a.1`, `a_1`); the simulator's own `host-NNNN` names never do.
    """
    if not host:
        raise ValueError("host name must not be empty")
    element = _NOT_NAME_CHARS.sub("_", host)
    if element[0].isdigit():
        element = "_" + element
    name = f"{NAME}.{element}"
    if not is_bus_name_valid(name):  # only length remains: at most 255 characters
        raise ValueError(f"host name {host!r} is too long for a DBus bus name")
    return name


class PrombusExport:
    """One host's PromMetrics service: its own connection, owning `name` until `close()`."""

    def __init__(self, bus: MessageBus, name: str, render: Callable[[], bytes]) -> None:
        self.bus = bus
        self.name = name
        self.render = render

    @property
    def unique_name(self) -> str:
        """The connection's unique name (`:1.N`), which owns `name`."""
        return str(self.bus.unique_name)

    def handle(self, msg: Message) -> bool:
        """Answer PromMetrics() calls; leave every other message to dbus-next's defaults."""
        if not (
            msg.message_type == MessageType.METHOD_CALL
            and msg.path == PATH
            and msg.interface == INTERFACE
            and msg.member == MEMBER
            and msg.signature == ""
        ):
            return False
        body = self.render()
        if body:
            reply = Message.new_method_return(msg, "ay", [body])
        else:
            reply = Message.new_error(msg, UNAVAILABLE_ERROR, "no metrics to export")
        # Sent here rather than returned, so a write that fails because the bus went away is
        # retrieved instead of logged by asyncio as a future exception nobody looked at.
        self.bus.send(reply).add_done_callback(retrieve)
        return True

    async def close(self) -> None:
        """Release the name and disconnect; the name is gone from the bus when this returns."""
        await release(self.bus, self.name)


async def export_prombus(bus_address: str, name: str, render: Callable[[], bytes]) -> PrombusExport:
    """Connect to `bus_address`, own `name` and answer PromMetrics() with `render()`.

    Raises `NameNotOwned` if another connection owns `name` already, and dbus-next's own
    errors if the bus cannot be reached; nothing stays open after a failure.
    """
    return await serve_on(bus_address, name, lambda bus: PrombusExport(bus, name, render))
