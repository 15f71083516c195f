"""Source kinds: the one table of kinds the config, the app, the docs and the tests all read.

Each kind is the module of its name here (base.py says what it implements); it is imported
only when a selector of that kind is configured.
"""

from local_exporter.bridge.sources.base import (
    BusAddresses,
    Kind,
    ParseContext,
    SharedResources,
    Source,
    SourceLimits,
    SourceSettings,
)

KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("file", "the whole content of a regular file"),
        Kind("uds", "a Unix stream socket that writes its exposition to each new connection and closes"),
        Kind("dbus", "a DBus method with no arguments that returns the exposition as `ay` or `s`"),
        Kind("http", "an exporter serving HTTP on this host, on a port or on a Unix socket"),
        Kind("rpm_ostree", "rpm-ostree's deployments and transaction, read over DBus and kept current by its signals"),
        Kind(
            "update_engine",
            "Flatcar's update_engine over DBus, kept current by its signals, with the release, the update config "
            "and locksmith's state",
        ),
        Kind("os_update", "the host's update phase and versions, normalised, from its update agent and rpm-ostree"),
        Kind(
            "cincinnati",
            "a Fedora CoreOS stream's releases, dead-ends and rollout plan, from its update server's graph "
            "(fleet-level, cached)",
        ),
        Kind(
            "nebraska",
            "Flatcar's newest version and rollout policy per track, from a Nebraska server's groups "
            "(fleet-level, cached)",
        ),
    )
}

__all__ = [
    "KINDS",
    "BusAddresses",
    "Kind",
    "ParseContext",
    "SharedResources",
    "Source",
    "SourceLimits",
    "SourceSettings",
]
