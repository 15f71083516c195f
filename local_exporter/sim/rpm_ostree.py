"""A simulated host's rpm-ostree daemon on DBus: the real bus name, object paths, interfaces,
property names and types (agents/rpm_ostree.py), answering from a model of the host's
deployments and transaction.

A real host's rpm-ostree owns `org.projectatomic.rpmostree1` on its own system bus, so each
simulated host gets a bus of its own (a private dbus-daemon). The service answers
`org.freedesktop.DBus.Properties.Get/GetAll` on the Sysroot and OS objects and announces every
change as rpm-ostree does: one `PropertiesChanged` per object whose properties changed. Its
deployment dicts carry the keys a current Fedora CoreOS host's do (a container-image origin);
their key order is insertion order, where rpm-ostree's follows GLib's hash table (readers treat
a dict as a map, so nothing depends on it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from dbus_next.aio.message_bus import MessageBus
from dbus_next.constants import MessageType
from dbus_next.message import Message
from dbus_next.signature import Variant

from local_exporter.agents import rpm_ostree as api
from local_exporter.common.gvariant import encode_string_dict
from local_exporter.sim.dbus_service import release, retrieve, serve_on

IMAGE = "ostree-image-signed:docker://quay.io/fedora/fedora-coreos"
_UNKNOWN_PROPERTY = "org.freedesktop.DBus.Error.UnknownProperty"
_UNKNOWN_INTERFACE = "org.freedesktop.DBus.Error.UnknownInterface"


@dataclass(frozen=True)
class Deployment:
    """One deployment of the model; `variant()` is its dict as the daemon sends it."""

    version: str
    checksum: str
    stream: str
    timestamp: int
    serial: int = 0
    osname: str = "fedora-coreos"
    booted: bool = False
    staged: bool = False
    pinned: bool = False
    #: `sha256:...` of the container image the deployment was made from.
    digest: str = ""

    def variant(self) -> dict[str, Variant]:
        config = {"config": {"Labels": {"com.coreos.stream": self.stream, "version": self.version}}}
        meta = {
            "ostree.manifest-digest": Variant("s", self.digest),
            "ostree.container.image-config": Variant("s", json.dumps(config)),
            "ostree.importer.version": Variant("s", "0.15.3"),
        }
        return {
            "id": Variant("s", f"{self.osname}-{self.checksum}.{self.serial}"),
            "osname": Variant("s", self.osname),
            "checksum": Variant("s", self.checksum),
            "serial": Variant("i", self.serial),
            "booted": Variant("b", self.booted),
            "staged": Variant("b", self.staged),
            "pinned": Variant("b", self.pinned),
            "unlocked": Variant("s", "none"),
            "requested-packages": Variant("as", []),
            "requested-local-packages": Variant("as", []),
            "requested-local-fileoverride-packages": Variant("as", []),
            "requested-base-removals": Variant("as", []),
            "requested-base-local-replacements": Variant("as", []),
            "regenerate-initramfs": Variant("b", False),
            "base-commit-meta": Variant("a{sv}", meta),
            "version": Variant("s", self.version),
            "timestamp": Variant("t", self.timestamp),
            "container-image-reference": Variant("s", f"{IMAGE}:{self.stream}"),
            "container-image-reference-digest": Variant("s", self.digest),
            "packages": Variant("as", []),
            "base-removals": Variant("av", []),
            "base-local-replacements": Variant("a(vv)", []),
            "base-remote-replacements": Variant("a{sv}", {}),
        }


@dataclass(frozen=True)
class HostState:
    """What rpm-ostree knows of one host: its deployments in boot order and its transaction."""

    deployments: tuple[Deployment, ...]
    #: (method, caller's unique name, object path), or idle.
    transaction: tuple[str, str, str] = api.IDLE_TRANSACTION
    policy: str = "none"
    osname: str = "fedora-coreos"

    def sysroot(self) -> dict[str, Variant]:
        active = self.transaction != api.IDLE_TRANSACTION
        return {
            "Booted": Variant("o", api.os_object_path(self.osname)),
            "Path": Variant("s", "/"),
            "ActiveTransaction": Variant("(sss)", list(self.transaction)),
            "ActiveTransactionPath": Variant("s", "unix:path=/run/rpm-ostree-transaction.sock" if active else ""),
            "AutomaticUpdatePolicy": Variant("s", self.policy),
            "Deployments": Variant("aa{sv}", [d.variant() for d in self.deployments]),
        }

    def os(self) -> dict[str, Variant]:
        booted = next((i for i, d in enumerate(self.deployments) if d.booted), None)
        mine = [d for d in self.deployments if d.osname == self.osname]
        # Default: the first deployment before the booted one (the staged one), else booted.
        default = mine[0] if mine else None
        rollback = self.deployments[booted + 1] if booted is not None and booted + 1 < len(self.deployments) else None
        return {
            "BootedDeployment": Variant("a{sv}", self.deployments[booted].variant() if booted is not None else {}),
            "DefaultDeployment": Variant("a{sv}", default.variant() if default else {}),
            "RollbackDeployment": Variant("a{sv}", rollback.variant() if rollback else {}),
            "CachedUpdate": Variant("a{sv}", {}),
            "HasCachedUpdateRpmDiff": Variant("b", False),
            "Name": Variant("s", self.osname),
        }


def update_driver_file(name: str = "Zincati", unit: str = "zincati.service") -> bytes:
    """/run/rpm-ostree/update-driver.gv as rpm-ostree writes it when `unit` registers `name`."""
    return encode_string_dict({api.DRIVER_NAME_KEY: name, api.DRIVER_UNIT_KEY: unit})


@dataclass
class RpmOstreeService:
    """rpm-ostree on one bus: owns the name until `close()`; `update()` changes the host."""

    bus: MessageBus
    state: HostState
    _objects: dict[str, tuple[str, Callable[[HostState], dict[str, Variant]]]] = field(init=False)

    def __post_init__(self) -> None:
        self._objects = {
            api.SYSROOT_PATH: (api.SYSROOT_INTERFACE, HostState.sysroot),
            api.os_object_path(self.state.osname): (api.OS_INTERFACE, HostState.os),
        }

    def update(self, **changes: Any) -> None:
        """Change the model (HostState fields) and announce what changed, per object."""
        old, self.state = self.state, replace(self.state, **changes)
        for path, (interface, read) in self._objects.items():
            before, after = read(old), read(self.state)
            changed = {name: value for name, value in after.items() if _differs(before[name], value)}
            if changed:
                signal = Message.new_signal(
                    path, api.PROPERTIES_INTERFACE, "PropertiesChanged", "sa{sv}as", [interface, changed, []]
                )
                self.bus.send(signal).add_done_callback(retrieve)

    def handle(self, msg: Message) -> bool:
        """Answer Properties.Get/GetAll on the Sysroot and OS objects."""
        if msg.message_type != MessageType.METHOD_CALL or msg.interface != api.PROPERTIES_INTERFACE:
            return False
        target = self._objects.get(msg.path or "")
        if target is None or msg.member not in ("Get", "GetAll"):
            return False
        interface, read = target
        properties = read(self.state)
        if msg.member == "GetAll" and msg.signature == "s":
            reply = (
                Message.new_method_return(msg, "a{sv}", [properties])
                if msg.body[0] == interface
                else Message.new_error(msg, _UNKNOWN_INTERFACE, f"No such interface '{msg.body[0]}'")
            )
        elif msg.member == "Get" and msg.signature == "ss" and msg.body[0] == interface and msg.body[1] in properties:
            reply = Message.new_method_return(msg, "v", [properties[msg.body[1]]])
        else:
            reply = Message.new_error(msg, _UNKNOWN_PROPERTY, "No such property")
        self.bus.send(reply).add_done_callback(retrieve)
        return True

    async def close(self) -> None:
        """Release the name and disconnect: what a daemon exiting looks like on the bus."""
        await release(self.bus, api.BUS_NAME)


async def serve_rpm_ostree(bus_address: str, state: HostState) -> RpmOstreeService:
    """Own rpm-ostree's name on `bus_address` and answer for `state`."""
    return await serve_on(bus_address, api.BUS_NAME, lambda bus: RpmOstreeService(bus, state))


def _differs(a: Variant, b: Variant) -> bool:
    return a.signature != b.signature or _plain(a.value) != _plain(b.value)


def _plain(value: object) -> object:
    if isinstance(value, Variant):
        return (value.signature, _plain(value.value))
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
