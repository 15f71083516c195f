"""`kind = "nebraska"`: Flatcar's releases and rollout policies, from a Nebraska server's API.

A Flatcar host asks Nebraska for updates on its track (update_engine's GROUP, the `stream` its
own families carry). Nebraska answers from the group with that track: the group's channel
points at the package (version) to update to, and the group's policy says how fast hosts get
it (updates enabled, safe mode, office hours, at most N updates per period, an update timeout).
So the bridge reads the application's groups (`GET /api/apps/{app}/groups`, every page; each
group carries its channel and package) and serves, per track, the newest version and the
policy as `os_release_*` families (agents/os_release.py). Nebraska plans a rollout as a rate,
not a schedule, so there is no planned share here (docs/metrics.md).

Behind Nebraska's oidc or github authentication, `bearer_token_file` gives the bridge a token.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from local_exporter.agents import nebraska
from local_exporter.agents import os_release as names
from local_exporter.bridge.sources.base import ParseContext, SharedResources, SourceLimits
from local_exporter.bridge.sources.exposition import Family, render
from local_exporter.bridge.sources.feed import FeedSettings, FeedSource, Get, parse_feed
from local_exporter.common.fields import Table

#: Groups asked per page, and the pages read at most: a Nebraska has a handful of groups; a
#: listing that does not end is not followed forever.
PER_PAGE = 100
MAX_PAGES = 20


@dataclass(frozen=True)
class NebraskaSettings:
    feed: FeedSettings
    application: str = nebraska.FLATCAR_APP_ID
    #: The tracks served ((): every group's).
    tracks: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"nebraska {self.feed.url}{nebraska.groups_path(self.application)}"

    def open(self, limits: SourceLimits, shared: SharedResources) -> FeedSource[tuple[nebraska.Group, ...]]:
        async def load(get: Get) -> tuple[nebraska.Group, ...]:
            return select(await read_groups(get, self.application), self.tracks)

        def draw(groups: tuple[nebraska.Group, ...], fetched: float, now: float) -> bytes:
            return render(families(groups, fetched))

        return FeedSource(self.feed, load, draw, limits.max_bytes)


def parse(table: Table, context: ParseContext) -> NebraskaSettings | None:
    feed = parse_feed(table)
    application = table.string("application", nebraska.FLATCAR_APP_ID)
    tracks = table.strings("tracks") if "tracks" in table.raw else []
    if application is not None and not application:
        table.problem("application", "must not be empty")
        return None
    if feed is None or application is None or tracks is None:
        return None
    return NebraskaSettings(feed, application, tuple(tracks))


async def read_groups(get: Get, application: str) -> list[nebraska.Group]:
    """Every page of the application's groups (ApiError on a wrong shape or an endless listing)."""
    groups: list[nebraska.Group] = []
    for page in range(1, MAX_PAGES + 1):
        query = urlencode({nebraska.PAGE: page, nebraska.PER_PAGE: PER_PAGE})
        listed = nebraska.parse_groups(await get(f"{nebraska.groups_path(application)}?{query}"))
        groups += listed.items
        if not listed.items or len(groups) >= listed.total_count:
            return groups
    raise nebraska.ApiError(f"more than {MAX_PAGES * PER_PAGE} groups listed: not following further")


def select(groups: list[nebraska.Group], tracks: tuple[str, ...]) -> tuple[nebraska.Group, ...]:
    """The groups of the tracks served, by track; two groups on one track is no answer Nebraska
    gives (a host's track names one group)."""
    chosen: dict[str, nebraska.Group] = {}
    for group in groups:
        if tracks and group.track not in tracks:
            continue
        if group.track in chosen:
            raise nebraska.ApiError(
                f"groups {chosen[group.track].name!r} and {group.name!r} share track {group.track!r}"
            )
        chosen[group.track] = group
    return tuple(chosen[track] for track in sorted(chosen))


def families(groups: tuple[nebraska.Group, ...], fetched: float) -> list[Family]:
    """The groups as `os_release_*` families, one stream per track (pure)."""
    info = Family(names.INFO, "gauge", "A release the update server lists for the stream (1).")
    newest = Family(names.NEWEST, "gauge", "The stream's newest release (1).")
    group_info = Family(names.GROUP_INFO, "gauge", "The Nebraska group hosts on the track are in, and its channel.")
    enabled = Family(names.GROUP_UPDATES_ENABLED, "gauge", "Whether the group's policy grants updates (1) or not.")
    safe = Family(names.GROUP_SAFE_MODE, "gauge", "Whether the group's policy is in safe mode.")
    office = Family(names.GROUP_OFFICE_HOURS, "gauge", "Whether updates are granted only in office hours.")
    limit = Family(names.GROUP_MAX_UPDATES, "gauge", "Updates the group's policy grants per period at most.")
    period = Family(names.GROUP_PERIOD, "gauge", "The period of the group's update limit.")
    timeout = Family(names.GROUP_UPDATE_TIMEOUT, "gauge", "How long a granted update counts as in progress.")
    rolling = Family(names.GROUP_ROLLOUT_IN_PROGRESS, "gauge", "Whether Nebraska says the group's rollout is on.")
    updated = Family(names.FEED_UPDATED, "gauge", "When the answer served was read from the update server.")
    for group in groups:
        stream = {"os": names.FLATCAR, "stream": group.track}
        channel = group.channel
        if channel is not None and channel.package_version:
            info.add(1, **stream, version=channel.package_version)
            newest.add(1, **stream, version=channel.package_version)
        where = {**stream, "group": group.name}
        group_info.add(1, **where, channel=channel.name if channel is not None else "")
        enabled.add(int(group.policy_updates_enabled), **where)
        safe.add(int(group.policy_safe_mode), **where)
        office.add(int(group.policy_office_hours), **where)
        limit.add(group.policy_max_updates_per_period, **where)
        period.add(group.period_seconds, **where)
        timeout.add(group.update_timeout_seconds, **where)
        rolling.add(int(group.rollout_in_progress), **where)
        updated.add(fetched, **stream)
    return [info, newest, group_info, enabled, safe, office, limit, period, timeout, rolling, updated]
