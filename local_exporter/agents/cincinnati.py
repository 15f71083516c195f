"""Fedora CoreOS' update server (Cincinnati), as its sources define it: the graph it serves and
how it throttles a phased rollout.

coreos/fedora-coreos-cincinnati 95388bd: commons/src/metadata.rs (the metadata keys),
commons/src/graph.rs (the JSON shape: nodes, edges as pairs of node indices), commons/src/policy.rs
(dead-ends lose their outgoing edges; an edge into a release being rolled out is hidden from a
client whose rollout wariness is above the release's throttling value now). Zincati asks
`GET <base>/v1/graph?basearch=...&stream=...&rollout_wariness=...` and takes the reachable
release with the highest age index.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

GRAPH_PATH = "/v1/graph"
AGE_INDEX = "org.fedoraproject.coreos.releases.age_index"
SCHEME = "org.fedoraproject.coreos.scheme"
BARRIER = "org.fedoraproject.coreos.updates.barrier"
DEADEND = "org.fedoraproject.coreos.updates.deadend"
DEADEND_REASON = "org.fedoraproject.coreos.updates.deadend_reason"
ROLLOUT = "org.fedoraproject.coreos.updates.rollout"
DURATION = "org.fedoraproject.coreos.updates.duration_minutes"
START_EPOCH = "org.fedoraproject.coreos.updates.start_epoch"
START_VALUE = "org.fedoraproject.coreos.updates.start_value"


class GraphError(ValueError):
    """A graph document that is not the shape graph.rs serializes."""


@dataclass(frozen=True)
class Node:
    version: str
    metadata: Mapping[str, str]
    payload: str

    @property
    def age_index(self) -> int:
        try:
            return int(self.metadata.get(AGE_INDEX, "-1"))
        except ValueError:
            return -1

    @property
    def deadend(self) -> bool:
        return self.metadata.get(DEADEND) == "true"

    @property
    def rollout(self) -> bool:
        """Being rolled out (policy.rs: the key's presence is what counts)."""
        return ROLLOUT in self.metadata


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    edges: tuple[tuple[int, int], ...]

    def releases(self) -> tuple[Node, ...]:
        """The releases oldest first (by age index, the order of the stream's releases.json)."""
        return tuple(sorted(self.nodes, key=lambda node: node.age_index))

    def newest(self) -> Node | None:
        releases = self.releases()
        return releases[-1] if releases else None


def parse_graph(document: Any) -> Graph:
    """A graph from its JSON document (already decoded); GraphError when it is not one."""
    if not isinstance(document, dict) or not isinstance(document.get("nodes"), list):
        raise GraphError("not a graph: no list of nodes")
    nodes = []
    for position, raw in enumerate(document["nodes"]):
        if not isinstance(raw, dict) or not isinstance(raw.get("version"), str):
            raise GraphError(f"node {position} has no version")
        metadata = raw.get("metadata", {})
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise GraphError(f"node {position}: metadata is not a map of strings")
        payload = raw.get("payload", "")
        nodes.append(Node(raw["version"], dict(metadata), payload if isinstance(payload, str) else ""))
    edges = []
    for raw in document.get("edges", []):
        if (
            not isinstance(raw, list)
            or len(raw) != 2
            or not all(isinstance(i, int) and 0 <= i < len(nodes) for i in raw)
        ):
            raise GraphError(f"edge {raw!r} does not join two nodes")
        edges.append((raw[0], raw[1]))
    return Graph(tuple(nodes), tuple(edges))


def throttling(metadata: Mapping[str, str], now: float) -> float:
    """The rollout's throttling value at `now` (policy.rs throttle_rollouts): 0 before its start,
    then from `start_value` rising linearly to 1 over `duration_minutes` (at least 1); without a
    duration it stays at `start_value`. Unparsable start values count as their defaults (0)."""
    epoch: int = _number(metadata.get(START_EPOCH), int, 0)
    start: float = _number(metadata.get(START_VALUE), float, 0.0)
    minutes: int | None = _number(metadata.get(DURATION), int, None)
    if now < epoch:
        return 0.0
    if minutes is None or minutes < 0:
        return start
    end = epoch + max(minutes, 1) * 60
    if now > end:
        return 1.0
    return start + (1.0 - start) / (end - epoch) * (now - epoch)


def offered(wariness: float, metadata: Mapping[str, str], now: float) -> bool:
    """Whether a client of rollout `wariness` sees the edge into a release being rolled out."""
    return wariness <= throttling(metadata, now)


def _number(text: str | None, kind: type, default: Any) -> Any:
    if text is None:
        return default
    try:
        return kind(text)
    except ValueError:
        return default


def version_key(version: str) -> tuple[int, ...]:
    """Both OSes' versions sort by their numeric parts (`40.20240519.3.0`, `4230.2.1`)."""
    return tuple(int(part) for part in re.findall(r"\d+", version))
