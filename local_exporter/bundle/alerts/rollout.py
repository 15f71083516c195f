"""Group os-update-rollout: the fleet's rollout as a whole (stalled, slow, skewed)."""

from __future__ import annotations

from local_exporter.bundle import rules
from local_exporter.bundle.alerts.alert import Alert
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.rules import by, on

#: Phases of a host in the middle of an update: what a rolling-update budget counts.
UPDATING_PHASES = ("staging", "staged", "rebooted")


def alerts(config: BundleConfig) -> list[Alert]:
    fleet = config.fleet_labels
    stream = rules.streams(config)
    os = (*fleet, "os")
    ratio = rules.NEWEST_RATIO
    updating = "|".join(UPDATING_PHASES)
    # Progress is a host reaching the newest version (phase `rebooted`), not a move of the share:
    # one failed scrape changes the share (the host drops out of both counts) without progress.
    arrived = f'{rules.HOSTS_BY_PHASE_VERSION}{{phase="rebooted"}}'
    # The share of updating hosts over the last 10 minutes: a host rebooting (or failing one
    # scrape) is `down` for a moment, which must not resolve the alert.
    share = (
        f'sum {by(fleet)} ({rules.HOSTS_BY_PHASE}{{phase=~"{updating}"}})\n'
        f"  / {on(fleet)} sum {by(fleet)} ({rules.HOSTS_BY_PHASE})"
    )
    return [
        Alert(
            "RolloutStalled",
            "warning",
            f"min_over_time({ratio}[{config.gauge_window}]) < 1\n"
            f"and {on(stream)} ({ratio} offset {config.stalled_for})\n"
            f"unless {on(stream)} max_over_time({arrived}[{config.stalled_for}])",
            "A rollout has stopped making progress.",
            "{{ $value | humanizePercentage }} of the {{ $labels.os }} {{ $labels.stream }} hosts run the newest "
            "version and no host "
            f"has reached it for {config.stalled_for}.",
            config.confirm_for,
        ),
        Alert(
            "RebootLockContended",
            "warning",
            # Per OS: each has its own lock (FleetLock, locksmith's etcd semaphore).
            f'sum {by(os)} (min_over_time({rules.HOSTS_BY_PHASE}{{phase="waiting_lock"}}[{config.gauge_window}]))\n'
            f'unless {on(os)} max_over_time({rules.HOSTS_BY_PHASE}{{phase="rebooted"}}[{config.gauge_window}])',
            "Hosts wait for a reboot slot and no host reboots.",
            "{{ $value }} {{ $labels.os }} hosts have been refused a reboot slot and no host has rebooted for "
            f"{config.lock_contended_for}: the slots are held by hosts that do not finish their update.",
            config.lock_contended_for,
        ),
        Alert(
            "TooManyUpdating",
            "warning",
            f"max_over_time((\n  {share}\n)[{config.gauge_window}:]) > {config.max_updating_ratio}",
            "Too many hosts are updating at once.",
            "{{ $value | humanizePercentage }} of the hosts are staging, staged or rebooting at once, over the "
            f"rolling-update budget of {config.max_updating_ratio:.0%}.",
            config.confirm_for,
        ),
        Alert(
            "VersionSkew",
            "info",
            f"count {by(stream)} (max_over_time({rules.HOSTS_BY_VERSION}[{config.gauge_window}])) > 1",
            "Hosts of one stream run different versions for days.",
            f"The {{{{ $labels.os }}}} {{{{ $labels.stream }}}} hosts have run {{{{ $value }}}} different versions for "
            f"{config.skew_for}.",
            config.skew_for,
        ),
    ]
