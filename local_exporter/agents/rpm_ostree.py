"""rpm-ostree, the Fedora CoreOS deployment manager, as its DBus API defines it.

coreos/rpm-ostree d5ef5f0c: src/daemon/org.projectatomic.rpmostree1.xml (interfaces),
rpmostreed-daemon.{h,cxx} (names, paths, idle exit), rust/src/daemon.rs and
rpmostreed-deployment-utils.cxx (the deployment dicts), rpmostreed-sysroot.cxx (transactions),
rpmostreed-transaction-types.cxx (the update driver file), org.projectatomic.rpmostree1.conf
(who may read). The bridge's `rpm_ostree` kind reads it; the simulator serves it.

The daemon declares no signals: every change is `org.freedesktop.DBus.Properties.PropertiesChanged`
from the object whose property changed. It exits after `IDLE_EXIT_SECONDS` without a
transaction or a registered client and is bus-activated again by the next call to its name;
a property read neither registers a client nor keeps it running.
"""

from __future__ import annotations

import re

BUS_NAME = "org.projectatomic.rpmostree1"
BASE_PATH = "/org/projectatomic/rpmostree1"
SYSROOT_PATH = f"{BASE_PATH}/Sysroot"
SYSROOT_INTERFACE = "org.projectatomic.rpmostree1.Sysroot"
OS_INTERFACE = "org.projectatomic.rpmostree1.OS"
PROPERTIES_INTERFACE = "org.freedesktop.DBus.Properties"

#: Sysroot's properties and their DBus signatures, in the XML's order (all read-only).
SYSROOT_PROPERTIES = {
    "Booted": "o",
    "Path": "s",
    #: (method name, caller's unique bus name, object path); ("", "", "") when idle.
    "ActiveTransaction": "(sss)",
    #: The transaction's peer-to-peer address; "" when idle.
    "ActiveTransactionPath": "s",
    "AutomaticUpdatePolicy": "s",
    #: Every deployment, in boot order: the staged one first if any, then the booted one.
    "Deployments": "aa{sv}",
}
#: The OS object's properties (one object per osname, at `os_object_path(osname)`).
OS_PROPERTIES = {
    "BootedDeployment": "a{sv}",
    "DefaultDeployment": "a{sv}",
    "RollbackDeployment": "a{sv}",
    "CachedUpdate": "a{sv}",
    "HasCachedUpdateRpmDiff": "b",
    "Name": "s",
}
IDLE_TRANSACTION = ("", "", "")
#: `AutomaticUpdatePolicy` values (rpmostree-util.cxx; `off`/`ex-stage` are config spellings).
AUTOMATIC_UPDATE_POLICIES = ("none", "check", "stage", "apply")
#: The methods a transaction of an update agent runs: staging (`Deploy`, or `Rebase` for a
#: container image by digest) and rebooting into it (`FinalizeDeployment`).
STAGING_METHODS = ("Deploy", "Rebase", "UpdateDeployment", "Upgrade")
FINALIZING_METHOD = "FinalizeDeployment"
IDLE_EXIT_SECONDS = 60

#: Keys of a deployment dict (`a{sv}`) the bridge reads, with their DBus types. Always present:
#: id, osname, checksum, serial, booted, staged, pinned, unlocked, base-commit-meta; `version`
#: when the commit has one (always on Fedora CoreOS), `timestamp` (the commit's time);
#: `origin` for an ostree refspec, `container-image-reference` (and `-digest`) for a
#: container image; `finalization-locked` only with ostree's legacy lock file (rpm-ostree
#: 2024.6 and later keep the lock in /run/ostree/staged-deployment, off the bus).
DEPLOYMENT_KEYS = {
    "id": "s",
    "osname": "s",
    "checksum": "s",
    "serial": "i",
    "booted": "b",
    "staged": "b",
    "finalization-locked": "b",
    "pinned": "b",
    "unlocked": "s",
    "base-commit-meta": "a{sv}",
    "version": "s",
    "timestamp": "t",
    "origin": "s",
    "container-image-reference": "s",
    "container-image-reference-digest": "s",
}
#: Where a legacy ostree commit names its stream, in `base-commit-meta`.
STREAM_COMMIT_META = "fedora-coreos.stream"

#: The update driver Zincati registers (`rpm-ostree deploy "" --register-driver=Zincati`):
#: a serialized GVariant `a{sv}` with `driver-name` and `driver-sd-unit`, readable by anyone.
#: No DBus property carries it.
UPDATE_DRIVER_FILE = "/run/rpm-ostree/update-driver.gv"
DRIVER_NAME_KEY = "driver-name"
DRIVER_UNIT_KEY = "driver-sd-unit"

_KEPT = re.compile(rb"[A-Za-z0-9_]")


def os_object_path(osname: str) -> str:
    """`fedora-coreos` -> `/org/projectatomic/rpmostree1/fedora_coreos` (rust/src/daemon.rs):
    per UTF-8 byte, letters, digits and `_` stay, `-` and `/` become `_`, others `_XX`."""
    escaped = []
    for byte in osname.encode():
        char = bytes((byte,))
        if _KEPT.match(char):
            escaped.append(char.decode())
        elif char in (b"-", b"/"):
            escaped.append("_")
        else:
            escaped.append(f"_{byte:02X}")
    return f"{BASE_PATH}/{''.join(escaped)}"
