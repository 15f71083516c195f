"""Fedora CoreOS' update server (Cincinnati), as its sources define it: the graph it serves and
how it throttles a phased rollout, and how Zincati picks its update from it.

coreos/fedora-coreos-cincinnati 95388bd:
- commons/src/metadata.rs: the metadata keys, and what a stream's releases.json and updates.json
  hold (`Release`, `UpdateMetadata`, `Rollout` here);
- commons/src/graph.rs: the graph-builder's graph (`build_graph`): a node per release that has a
  payload for the scope's basearch, its age index its position in releases.json; edges only into
  releases being rolled out (from every release since the previous barrier) and into barriers;
  dead-ends lose their outgoing edges. The JSON shape: nodes, edges as pairs of node indices
  (`graph_document`, `dump_graph`, `parse_graph`);
- commons/src/policy.rs: `filter_deadends`, and `throttle_rollouts` (an edge into a release being
  rolled out is hidden from a client whose rollout wariness is above the release's throttling
  value now);
- fcos-policy-engine/src/main.rs: `GET /v1/graph` with `basearch` and `stream` required (else 400),
  `oci`, and the client's wariness (`compute_wariness`): its `rollout_wariness` clamped into 0..1,
  else a value derived from its `node_uuid`.

Zincati (coreos/zincati be76c4aa, src/cincinnati/mod.rs `find_update`, src/rpm_ostree/mod.rs) asks
`GET <base>/v1/graph?basearch=...&stream=...&node_uuid=...[&rollout_wariness=...]`, finds its
booted release by payload and takes the release its edges reach with the highest age index
(`find_update`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

GRAPH_PATH = "/v1/graph"
AGE_INDEX = "org.fedoraproject.coreos.releases.age_index"
SCHEME = "org.fedoraproject.coreos.scheme"
BARRIER = "org.fedoraproject.coreos.updates.barrier"
BARRIER_REASON = "org.fedoraproject.coreos.updates.barrier_reason"
DEADEND = "org.fedoraproject.coreos.updates.deadend"
DEADEND_REASON = "org.fedoraproject.coreos.updates.deadend_reason"
ROLLOUT = "org.fedoraproject.coreos.updates.rollout"
DURATION = "org.fedoraproject.coreos.updates.duration_minutes"
START_EPOCH = "org.fedoraproject.coreos.updates.start_epoch"
START_VALUE = "org.fedoraproject.coreos.updates.start_value"
#: The payload schemes (`SCHEME`): an ostree commit checksum, or an OCI image's digest reference.
CHECKSUM_SCHEME, OCI_SCHEME = "checksum", "oci"
#: A dead-end's or barrier's reason when updates.json gives an empty one (graph.rs).
GENERIC_REASON = "generic"
#: The policy engine's query parameters (main.rs `GraphQuery`); any other is ignored.
QUERY_PARAMETERS = ("basearch", "stream", "rollout_wariness", "node_uuid", "oci")
#: A wariness derived from a node's id lies in [COMPUTED_MIN, 1] (main.rs compute_wariness).
COMPUTED_MIN = 0.000_001


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


@dataclass(frozen=True)
class Schedule:
    """A rollout's schedule as policy.rs reads it from the metadata: unparsable values count as
    their defaults (start 0, start value 0, no duration)."""

    start: int
    start_value: float
    minutes: int | None

    @classmethod
    def of(cls, metadata: Mapping[str, str]) -> Schedule:
        return cls(
            _number(metadata.get(START_EPOCH), int, 0),
            _number(metadata.get(START_VALUE), float, 0.0),
            _number(metadata.get(DURATION), int, None),
        )


def throttling(metadata: Mapping[str, str], now: float) -> float:
    """The rollout's throttling value at `now` (policy.rs throttle_rollouts): 0 before its start,
    then from `start_value` rising linearly to 1 over `duration_minutes` (at least 1); without a
    duration it stays at `start_value`."""
    schedule = Schedule.of(metadata)
    epoch, start, minutes = schedule.start, schedule.start_value, schedule.minutes
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


# --- the graph-builder (graph.rs) -------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    """A releases.json entry as one graph scope sees it: its version, and its payload for the
    scope's basearch and scheme (the commit checksum, or the OCI digest reference); None when it
    has none, and the graph skips it (its age index still counts: it is its place in the file)."""

    version: str
    payload: str | None


@dataclass(frozen=True)
class Rollout:
    """updates.json `metadata.rollout` (metadata.rs `UpdateRollout`): each field optional."""

    start_epoch: int | None = None
    #: `start_percentage`: the share of clients offered the release at its start, 0..1.
    start_percentage: float | None = None
    duration_minutes: int | None = None


@dataclass(frozen=True)
class UpdateMetadata:
    """An updates.json entry's `metadata` (metadata.rs `UpdateMetadata`): a barrier or dead-end
    with its reason ("" counts as `generic`), a rollout, or None for each that is absent."""

    barrier: str | None = None
    deadend: str | None = None
    rollout: Rollout | None = None


def build_graph(releases: Sequence[Release], updates: Mapping[str, UpdateMetadata], *, oci: bool = False) -> Graph:
    """The graph-builder's graph of a stream for one scope (graph.rs `Graph::from_metadata`).

    `releases` in releases.json order (oldest first), `updates` by version. Each release with a
    payload is a node: its age index (its position in `releases`), its scheme, then what its
    update metadata says (dead-end, barrier, rollout). Edges: into each release being rolled out
    from every node since the previous barrier (that barrier included, else from the first);
    into each barrier that is not being rolled out from every node since the previous barrier;
    no other node has an incoming edge. Dead-ends lose their outgoing edges (`filter_deadends`).
    """
    nodes: list[Node] = []
    for age_index, release in enumerate(releases):
        if not release.payload:
            continue
        metadata = {AGE_INDEX: str(age_index), SCHEME: OCI_SCHEME if oci else CHECKSUM_SCHEME}
        update = updates.get(release.version)
        if update is not None:
            if update.deadend is not None:
                metadata[DEADEND] = "true"
                metadata[DEADEND_REASON] = update.deadend or GENERIC_REASON
            if update.barrier is not None:
                metadata[BARRIER] = "true"
                metadata[BARRIER_REASON] = update.barrier or GENERIC_REASON
            if update.rollout is not None:
                rollout = update.rollout
                metadata[ROLLOUT] = "true"
                if rollout.start_epoch is not None:
                    metadata[START_EPOCH] = str(rollout.start_epoch)
                if rollout.start_percentage is not None:
                    metadata[START_VALUE] = _rust_float(rollout.start_percentage)
                if rollout.duration_minutes is not None:
                    metadata[DURATION] = str(rollout.duration_minutes)
        nodes.append(Node(release.version, metadata, release.payload))
    return filter_deadends(Graph(tuple(nodes), _compute_edges(nodes)))


def _compute_edges(nodes: Sequence[Node]) -> tuple[tuple[int, int], ...]:
    """graph.rs `compute_edges`, in its order: the rollouts' edges newest target first, then the
    barriers' oldest first. Indices are positions in `nodes`."""
    rollouts = {index for index, node in enumerate(nodes) if ROLLOUT in node.metadata}
    barriers = sorted(index for index, node in enumerate(nodes) if BARRIER in node.metadata)
    edges: list[tuple[int, int]] = []
    for target in sorted(rollouts, reverse=True):
        previous_barrier = max((b for b in barriers if b < target), default=0)
        edges.extend((source, target) for source in range(previous_barrier, target))
    start = 0
    for target in barriers:
        if target not in rollouts:  # an in-progress barrier already has the rollout's edges
            edges.extend((source, target) for source in range(start, target))
        start = target
    return tuple(edges)


def _rust_float(value: float) -> str:
    """Rust's `f64::to_string` of a finite number: the shortest digits that read back the same,
    integers without a fraction, never an exponent (`0`, `0.25`, `0.0000001`)."""
    if float(value).is_integer():
        return str(int(value))
    return format(Decimal(repr(float(value))), "f")


def graph_document(graph: Graph) -> dict[str, Any]:
    """The graph as graph.rs serializes it: `{"nodes": [{"version", "metadata", "payload"}],
    "edges": [[from, to], ...]}` (metadata keys sorted; Rust's map has no order)."""
    return {
        "nodes": [
            {"version": node.version, "metadata": dict(sorted(node.metadata.items())), "payload": node.payload}
            for node in graph.nodes
        ],
        "edges": [[source, target] for source, target in graph.edges],
    }


def dump_graph(graph: Graph) -> str:
    """The body the policy engine serves: `serde_json::to_string_pretty` of the graph (two-space
    indent, one array element per line, UTF-8 unescaped)."""
    return json.dumps(graph_document(graph), indent=2, ensure_ascii=False)


# --- the policy engine (policy.rs, fcos-policy-engine main.rs) ----------------------------------


def filter_deadends(graph: Graph) -> Graph:
    """policy.rs `filter_deadends`: every edge out of a dead-end (`deadend` = "true") removed."""
    deadends = {index for index, node in enumerate(graph.nodes) if node.metadata.get(DEADEND) == "true"}
    return Graph(graph.nodes, tuple(edge for edge in graph.edges if edge[0] not in deadends))


def throttle_rollouts(graph: Graph, wariness: float, now: float) -> Graph:
    """policy.rs `throttle_rollouts`: every edge into a release being rolled out whose throttling
    value at `now` is below `wariness` removed. The engine's `now` is whole Unix seconds."""
    hidden = {
        index
        for index, node in enumerate(graph.nodes)
        if ROLLOUT in node.metadata and wariness > throttling(node.metadata, now)
    }
    return Graph(graph.nodes, tuple(edge for edge in graph.edges if edge[1] not in hidden))


def policy_graph(graph: Graph, wariness: float, now: float) -> Graph:
    """What the policy engine answers a client of `wariness` at `now` from the graph-builder's
    graph: throttled, then dead-ends filtered (main.rs `pe_serve_graph`)."""
    return filter_deadends(throttle_rollouts(graph, wariness, math.floor(now)))


#: Rust's `f64::from_str` grammar: a sign, then `inf`, `infinity`, `nan` or a decimal number
#: with an optional exponent; case-insensitive; no spaces, no underscores.
_RUST_F64 = re.compile(r"[+-]?(inf|infinity|nan|(\d+\.?\d*|\.\d+)(e[+-]?\d+)?)", re.IGNORECASE)


def parse_rust_f64(text: str) -> float | None:
    """`text.parse::<f64>()`: the number, or None where Rust fails (Python's `float` is laxer)."""
    return float(text) if _RUST_F64.fullmatch(text) else None


def compute_wariness(rollout_wariness: str | None, node_uuid: str | None) -> float:
    """The wariness the policy engine throttles a request with (main.rs `compute_wariness`).

    A `rollout_wariness` that parses as a Rust f64 is clamped into [0, 1] (a NaN stays NaN, as
    Rust's clamp leaves it: such a client is never throttled). Otherwise the value is derived
    from `node_uuid` ("" when absent) by `node_wariness`.
    """
    value = parse_rust_f64(rollout_wariness) if rollout_wariness is not None else None
    if value is not None:
        return value if math.isnan(value) else min(max(value, 0.0), 1.0)
    return node_wariness(node_uuid or "")


@functools.lru_cache(maxsize=65536)
def node_wariness(node_uuid: str) -> float:
    """A node's wariness derived from its id: a 64-bit hash of the id, scaled by 2^64 - 1 and
    clamped into [1e-6, 1], so the same node always gets the same value, spread evenly.

    The real engine hashes with Rust's `DefaultHasher`, whose algorithm the standard library
    does not promise to keep (it is SipHash-1-3 with zero keys today); here the hash is the first
    8 bytes of the id's SHA-256, big-endian: stable everywhere, so the values differ from
    Fedora's, not their spread.
    """
    digest = int.from_bytes(hashlib.sha256(node_uuid.encode()).digest()[:8], "big")
    return min(max(digest / float(2**64 - 1), COMPUTED_MIN), 1.0)


# --- Zincati's choice (src/cincinnati/mod.rs find_update) ----------------------------------------


@dataclass(frozen=True)
class UpdateCheck:
    """What Zincati makes of one graph: its size (the graph gauges), the booted release's node
    (None: not in the graph, so no update and the dead-end gauge untouched), and the target."""

    nodes: int
    edges: int
    booted: Node | None
    target: Node | None

    @property
    def booted_deadend(self) -> bool:
        """mod.rs `evaluate_deadend` on the booted node."""
        return self.booted is not None and self.booted.deadend


def find_update(graph: Graph, booted_payload: str, *, allow_downgrade: bool = False) -> UpdateCheck:
    """Zincati's `find_update`: the booted node is the one whose payload is the booted
    deployment's (with a known scheme); the target, among the nodes its edges reach, the highest
    in Zincati's release order (age index, then version, then payload); a target not above the
    booted release is a downgrade, taken only when allowed. A node that is not a release
    (no version, payload, scheme or age index) fails the check: GraphError."""
    size = len(graph.nodes), len(graph.edges)
    position = next(
        (
            index
            for index, node in enumerate(graph.nodes)
            if node.metadata.get(SCHEME) in (CHECKSUM_SCHEME, OCI_SCHEME) and node.payload == booted_payload
        ),
        None,
    )
    if position is None:
        return UpdateCheck(*size, None, None)
    booted = graph.nodes[position]
    current = _release_order(booted)
    targets = [graph.nodes[target] for source, target in graph.edges if source == position]
    best = max(targets, key=_release_order, default=None)
    if best is None or (_release_order(best) <= current and not allow_downgrade):
        return UpdateCheck(*size, booted, None)
    return UpdateCheck(*size, booted, best)


def _release_order(node: Node) -> tuple[int, str, str]:
    """rpm_ostree/mod.rs `Release::from_cincinnati` and its order."""
    if not node.version or not node.payload:
        raise GraphError(f"node {node.version!r}: empty version or payload")
    if node.metadata.get(SCHEME) not in (CHECKSUM_SCHEME, OCI_SCHEME):
        raise GraphError(f"node {node.version!r}: missing or unexpected payload scheme")
    age = node.metadata.get(AGE_INDEX, "")
    if not re.fullmatch(r"\+?[0-9]+", age) or int(age) >= 2**64:
        raise GraphError(f"node {node.version!r}: invalid age_index value {age!r}")
    return (int(age), node.version, node.payload)
