"""`kind = "cincinnati"`: a Fedora CoreOS stream's releases, from its update server's graph.

`GET <url>/v1/graph?basearch=B&stream=S` (and `oci=true` for OCI hosts) is what Zincati asks
(agents/cincinnati.py). The graph lists the stream's releases with their age index (their order
in the stream's releases.json), the dead-ends and barriers, and the phased-rollout schedule of
a release being rolled out. No `rollout_wariness` is sent: the graph's nodes and metadata are the
same whatever the wariness (only edges are throttled), and Fedora's wariness histogram is left
to real hosts.

Served as the `os_release_*` families (agents/os_release.py), with the rollout's planned share
(the share of hosts the server offers the release to by now) computed at each scrape the way
the policy engine throttles.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from local_exporter.agents import cincinnati
from local_exporter.agents import os_release as names
from local_exporter.bridge.sources.base import ParseContext, SharedResources, SourceLimits
from local_exporter.bridge.sources.exposition import Family, render
from local_exporter.bridge.sources.feed import FeedSettings, FeedSource, Get, parse_feed
from local_exporter.common.fields import Table

DEFAULT_BASEARCH = "x86_64"


@dataclass(frozen=True)
class CincinnatiSettings:
    feed: FeedSettings
    stream: str
    basearch: str = DEFAULT_BASEARCH
    oci: bool = False

    @property
    def graph_path(self) -> str:
        query = {"basearch": self.basearch, "stream": self.stream}
        if self.oci:
            query["oci"] = "true"
        return f"{cincinnati.GRAPH_PATH}?{urlencode(query)}"

    def describe(self) -> str:
        return f"cincinnati {self.feed.url}{self.graph_path}"

    def open(self, limits: SourceLimits, shared: SharedResources) -> FeedSource[cincinnati.Graph]:
        async def load(get: Get) -> cincinnati.Graph:
            return cincinnati.parse_graph(await get(self.graph_path))

        def draw(graph: cincinnati.Graph, fetched: float, now: float) -> bytes:
            return render(families(graph, self.stream, fetched, now))

        return FeedSource(self.feed, load, draw, limits.max_bytes)


def parse(table: Table, context: ParseContext) -> CincinnatiSettings | None:
    feed = parse_feed(table)
    stream = table.string("stream", required=True)
    basearch = table.string("basearch", DEFAULT_BASEARCH)
    oci = table.boolean("oci", False)
    for key, value in (("stream", stream), ("basearch", basearch)):
        if value is not None and not value:
            table.problem(key, "must not be empty (the server answers 400 without it)")
            return None
    if feed is None or stream is None or basearch is None:
        return None
    return CincinnatiSettings(feed, stream, basearch, oci)


def families(graph: cincinnati.Graph, stream: str, fetched: float, now: float) -> list[Family]:
    """The graph as `os_release_*` families at `now` (pure)."""
    labels = {"os": names.FEDORA_COREOS, "stream": stream}
    info = Family(names.INFO, "gauge", "A release the update server lists for the stream (1).")
    index = Family(names.INDEX, "gauge", "The release's place in the stream's order, oldest first (age index).")
    newest = Family(names.NEWEST, "gauge", "The stream's newest release (1).")
    deadend = Family(names.DEADEND, "gauge", "A release marked a dead-end: hosts on it get no update (1).")
    barrier = Family(names.BARRIER, "gauge", "A release every host must pass through on its way to newer ones (1).")
    start = Family(names.ROLLOUT_START, "gauge", "When the newest release's phased rollout starts (Unix time).")
    duration = Family(names.ROLLOUT_DURATION, "gauge", "How long the newest release's phased rollout lasts.")
    start_share = Family(names.ROLLOUT_START_SHARE, "gauge", "The share of hosts offered the rollout at its start.")
    planned = Family(
        names.PLANNED_SHARE, "gauge", "The share of hosts the server offers the newest release to by now (0-1)."
    )
    updated = Family(names.FEED_UPDATED, "gauge", "When the answer served was read from the update server.")
    releases = graph.releases()
    for node in releases:
        version = {**labels, "version": node.version}
        info.add(1, **version)
        index.add(node.age_index, **version)
        if node.deadend:
            deadend.add(1, **version, reason=node.metadata.get(cincinnati.DEADEND_REASON, "generic"))
        if node.metadata.get(cincinnati.BARRIER) == "true":
            barrier.add(1, **version, reason=node.metadata.get(cincinnati.BARRIER_REASON, "generic"))
    if releases:
        node = releases[-1]
        version = {**labels, "version": node.version}
        newest.add(1, **version)
        if node.rollout:
            schedule = cincinnati.Schedule.of(node.metadata)
            start.add(schedule.start, **version)
            start_share.add(schedule.start_value, **version)
            if schedule.minutes is not None:
                duration.add(schedule.minutes * 60, **version)
        planned.add(cincinnati.throttling(node.metadata, now) if node.rollout else 1.0, **version)
    updated.add(fetched, **labels)
    return [info, index, newest, deadend, barrier, start, duration, start_share, planned, updated]
