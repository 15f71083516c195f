"""Group os-update-releases: what the update servers say against what the fleet does (a
rollout behind its plan, hosts left on a dead-end release) and whether they can still be heard
(the release feed stale). Silent where no release feed is scraped."""

from __future__ import annotations

from local_exporter.bundle import names, rules
from local_exporter.bundle.alerts.alert import Alert
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.rules import on, seconds, selected


def alerts(config: BundleConfig) -> list[Alert]:
    stream = rules.streams(config)
    window = config.gauge_window
    feed = config.release_feed_selector
    # Read through *_over_time: one failed scrape of the hosts lowers the share for a moment.
    behind = f"{rules.PLANNED_SHARE} - {on(stream)} {rules.NEWEST_RATIO}"
    updated = f"max by (os, stream) ({selected(names.RELEASE_FEED_UPDATED, feed)})"
    return [
        Alert(
            "RolloutBehindPlan",
            "warning",
            f"min_over_time((\n  {behind}\n)[{window}:]) > {config.behind_plan_margin}",
            "A rollout is behind the update server's plan.",
            "The update server has offered the newest {{ $labels.os }} {{ $labels.stream }} release to "
            "{{ $value | humanizePercentage }} more of the hosts than run it, past the margin of "
            f"{config.behind_plan_margin:.0%} for {config.behind_plan_for}: offered hosts do not finish their update.",
            config.behind_plan_for,
        ),
        Alert(
            "HostsOnDeadEndRelease",
            "warning",
            f"min_over_time({rules.HOSTS_ON_DEADEND}[{window}]) > 0",
            "Hosts run a release the update server marks a dead-end.",
            "{{ $value }} {{ $labels.os }} {{ $labels.stream }} hosts run {{ $labels.os_version }}, which the update "
            "server marks a dead-end: they get no update from it and need a manual one (see the release's dead-end "
            "reason).",
            config.deadend_for,
        ),
        Alert(
            "ReleaseFeedStale",
            "warning",
            f"time() - {updated} > {seconds(config.feed_stale_for)}\n"
            f"or max_over_time({selected(names.UP, feed)}[{window}]) == 0",
            "The update server's releases are not current.",
            f"A release feed has not heard from the update server for {config.feed_stale_for}, or its bridge does "
            "not answer ({{ $labels.os }} {{ $labels.stream }}{{ $labels.job }}): the newest version and the "
            "rollout plan are out of date.",
            config.bridge_down_for,
        ),
    ]
