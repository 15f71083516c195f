"""Source kinds: the one table of kinds the config, the app and the docs all read."""

from local_exporter.sources import dbus, file, http, uds
from local_exporter.sources.base import (
    BusAddresses,
    Kind,
    SharedResources,
    Source,
    SourceLimits,
    SourceSettings,
)

KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("file", "the whole content of a regular file", file.parse),
        Kind("uds", "a Unix stream socket that writes its exposition to each new connection and closes", uds.parse),
        Kind("dbus", "a DBus method with no arguments that returns the exposition as `ay` or `s`", dbus.parse),
        Kind("http", "an exporter serving HTTP on this host, on a port or on a Unix socket", http.parse),
    )
}

__all__ = ["KINDS", "BusAddresses", "Kind", "SharedResources", "Source", "SourceLimits", "SourceSettings"]
