"""A simulated Fedora CoreOS update server: coreos/fedora-coreos-cincinnati's graph-builder and
policy engine (agents/cincinnati.py) over a scenario's Fedora CoreOS releases.

What the graph-builder reads, made from the scenario:
- a stream's releases.json: the fleet's initial version first (on the fleet's stream), then the
  stream's releases in the order they come out (`at`); a release not yet out is not listed. Each
  has a commit for every basearch Fedora builds (and the fleet's), its checksum a hash of its
  version and arch, and an OCI image (`payload`);
- its updates.json: a release with a `rollout` window is a rollout starting at its wall-clock `at`
  (start value 0) lasting the window in wall time, rounded up to whole minutes (at least one:
  `duration_minutes` is the protocol's unit, so at `--speed 60` a rollout lasts at least a
  scenario hour); a release without one is offered to everyone from `at` (start value 1, no
  duration). A `deadend` fault marks its version a dead-end while it is active, without a
  reason (graph.rs: `generic`). One that applies to every host marks it in the stream's graph;
  one that picks hosts marks it only in the graph served to them (the policy engine knows a
  host by its node_uuid), the way a `check_errors` fault is what some hosts see.

`serve` is the policy engine's answer to one query at a scenario time: the graph throttled for
the client's wariness at that wall-clock second, dead-ends filtered. `app` serves it as
`GET /v1/graph` with the engine's statuses; the fleet's Zincati hosts are answered in-process by
the same `serve`, with the query Zincati sends (`zincati_query`).
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

from local_exporter.agents import cincinnati as api
from local_exporter.sim.scenario import FLATCAR, Scenario
from local_exporter.sim.zincati import ZincatiIdentity

Clock = Callable[[float], float]

#: The streams and basearches Fedora's graph-builder serves (fcos-graph-builder settings.rs).
FEDORA_STREAMS = ("stable", "testing", "next")
FEDORA_BASEARCHES = ("x86_64", "aarch64", "s390x", "ppc64le")
#: Where the releases' OCI images are (their payload with `oci=true`).
OCI_REPOSITORY = "quay.io/fedora/fedora-coreos"


def node_uuid(seed: int, name: str) -> str:
    """A host's node id: the app-specific machine id Zincati sends Cincinnati as `node_uuid`
    and FleetLock as its client id (lower-case hex, 32 digits)."""
    return hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()[:32]


@functools.lru_cache(maxsize=4096)
def payload(version: str, basearch: str, *, oci: bool = False) -> str:
    """A release's payload for `basearch`: its commit checksum, or its image's digest reference."""
    digest = hashlib.sha256(f"fedora-coreos:{version}:{basearch}:{'oci' if oci else 'ostree'}".encode()).hexdigest()
    return f"{OCI_REPOSITORY}@sha256:{digest}" if oci else digest


def zincati_query(
    identity: ZincatiIdentity, uuid: str, wariness: float | None, group: str = "default"
) -> dict[str, str]:
    """The query Zincati sends with its graph request (src/identity/mod.rs cincinnati_params):
    a configured wariness with six decimals, none otherwise."""
    query = {
        "basearch": identity.basearch,
        "os_version": identity.os_version,
        "group": group,
        "node_uuid": uuid,
        "platform": identity.platform,
        "stream": identity.stream,
        "os_checksum": payload(identity.os_version, identity.basearch),
    }
    if wariness is not None:
        query["rollout_wariness"] = f"{wariness:.6f}"
    return query


@dataclass(frozen=True)
class GraphQuery:
    """What the policy engine reads of a request (main.rs `GraphQuery`), validated."""

    basearch: str
    stream: str
    rollout_wariness: str | None = None
    node_uuid: str | None = None
    oci: bool = False


class QueryError(Exception):
    """A request the policy engine refuses: its status, and its body ("" for none)."""

    def __init__(self, status: int, body: str = "") -> None:
        super().__init__(f"{status} {body}".strip())
        self.status = status
        self.body = body


def read_query(pairs: Iterable[tuple[str, str]]) -> GraphQuery:
    """The policy engine's reading of a query string's decoded pairs.

    actix-web's `Query` extractor first (serde_urlencoded): a parameter given twice, or an `oci`
    that is neither `true` nor `false`, is a 400 with a text reason; unknown parameters are
    ignored. Then `validate_scope`: a missing or empty `basearch` or `stream` is a 400 with an
    empty body (`HttpResponse::BadRequest().finish()`).
    """
    values: dict[str, str] = {}
    for key, value in pairs:
        if key in api.QUERY_PARAMETERS:
            if key in values:
                raise QueryError(400, f"Query deserialize error: duplicate field `{key}`")
            values[key] = value
    oci = values.get("oci")
    if oci is not None and oci not in ("true", "false"):
        raise QueryError(400, "Query deserialize error: provided string was not `true` or `false`")
    basearch, stream = values.get("basearch"), values.get("stream")
    if not basearch or not stream:
        raise QueryError(400)
    return GraphQuery(basearch, stream, values.get("rollout_wariness"), values.get("node_uuid"), oci == "true")


_NONE: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _Release:
    version: str
    at: float
    rollout: float


class Cincinnati:
    """The graph-builder and policy engine for `scenario`, on the fleet's `clock`."""

    def __init__(self, scenario: Scenario, clock: Clock) -> None:
        self.scenario = scenario
        self.clock = clock
        fleet = scenario.fleet
        self.basearches = FEDORA_BASEARCHES + ((fleet.basearch,) if fleet.basearch not in FEDORA_BASEARCHES else ())
        self._streams: dict[str, list[_Release]] = {stream: [] for stream in FEDORA_STREAMS}
        self._streams.setdefault(fleet.stream, []).append(_Release(fleet.version, -math.inf, 0.0))
        for release in sorted(scenario.releases, key=lambda r: r.at):
            if release.os != FLATCAR:
                self._streams.setdefault(release.stream, []).append(
                    _Release(release.version, release.at, release.rollout)
                )
        self._release_times = {
            stream: [release.at for release in releases] for stream, releases in self._streams.items()
        }
        self._hosts = {node_uuid(fleet.seed, fleet.host_name(index)): index for index in range(fleet.hosts)}
        everyone = tuple(range(fleet.hosts))
        self._deadends = [
            (fault, fault.hosts == everyone, fault.version or fleet.version)
            for fault in scenario.faults
            if fault.kind == "deadend" and fault.os != FLATCAR
        ]
        # Every graph built is kept (a scenario has a handful), so their ids name them.
        self._graphs: dict[tuple[str, str, bool, int, frozenset[str]], api.Graph] = {}
        self._throttles: dict[int, tuple[int, tuple[tuple[int, float], ...]]] = {}
        self._served: dict[tuple[int, frozenset[int]], api.Graph] = {}

    def deadends(self, t: float, host: int | None = None) -> frozenset[str]:
        """The versions marked dead-ends at `t`: for everyone, and for `host`."""
        if not self._deadends:
            return _NONE
        return frozenset(
            version
            for fault, everyone, version in self._deadends
            if fault.active(t) and (everyone or (host is not None and host in fault.hosts))
        )

    def graph(self, stream: str, basearch: str, t: float, *, oci: bool = False, host: int | None = None) -> api.Graph:
        """The graph-builder's graph at scenario time `t` (for `host`, with its dead-ends).
        Raises QueryError 500 for a stream or basearch it has no graph of: the graph-builder's
        refusal (404 or an error), which the policy engine passes on as an internal error."""
        releases = self._streams.get(stream)
        if releases is None:
            raise QueryError(500, f"HTTP status client error (404 Not Found): no graph for stream '{stream}'")
        if basearch not in self.basearches:
            raise QueryError(500, f"unexpected basearch '{basearch}'")
        out = bisect.bisect_right(self._release_times[stream], t)
        deadends = self.deadends(t, host)
        key = (stream, basearch, oci, out, deadends)
        graph = self._graphs.get(key)
        if graph is None:
            graph = self._graphs[key] = api.build_graph(
                [api.Release(r.version, payload(r.version, basearch, oci=oci)) for r in releases[:out]],
                self._updates(releases[:out], deadends),
                oci=oci,
            )
        return graph

    def _updates(self, releases: list[_Release], deadends: frozenset[str]) -> dict[str, api.UpdateMetadata]:
        """The stream's updates.json, by version."""
        updates: dict[str, api.UpdateMetadata] = {}
        for release in releases:
            rollout = None
            if math.isfinite(release.at):
                start = math.floor(self.clock(release.at))
                if release.rollout > 0:
                    wall = self.clock(release.at + release.rollout) - self.clock(release.at)
                    rollout = api.Rollout(start, 0.0, max(1, math.ceil(round(wall / 60, 6))))
                else:
                    rollout = api.Rollout(start, 1.0, None)
            deadend = "" if release.version in deadends else None
            if rollout is not None or deadend is not None:
                updates[release.version] = api.UpdateMetadata(deadend=deadend, rollout=rollout)
        return updates

    def serve(self, query: GraphQuery, t: float) -> api.Graph:
        """The policy engine's answer at scenario time `t` (main.rs pe_serve_graph): the
        graph-builder's graph throttled for the query's wariness at that wall-clock second,
        dead-ends filtered. Raises QueryError as `graph` does."""
        host = self._hosts.get(query.node_uuid) if query.node_uuid else None
        graph = self.graph(query.stream, query.basearch, t, oci=query.oci, host=host)
        wariness = api.compute_wariness(query.rollout_wariness, query.node_uuid)
        now = math.floor(self.clock(t))
        # The answer depends only on which rollouts the wariness is above: a fleet's thousands
        # of checks share a handful of answers, each computed once by the policy engine's code.
        throttles = self._throttles.get(id(graph))
        if throttles is None or throttles[0] != now:
            rollouts = tuple(
                (index, api.throttling(node.metadata, now))
                for index, node in enumerate(graph.nodes)
                if api.ROLLOUT in node.metadata
            )
            throttles = self._throttles[id(graph)] = (now, rollouts)
        hidden = frozenset(index for index, value in throttles[1] if wariness > value)
        served = self._served.get((id(graph), hidden))
        if served is None:
            served = self._served[(id(graph), hidden)] = api.policy_graph(graph, wariness, now)
        return served

    def answer(self, pairs: Iterable[tuple[str, str]], t: float) -> tuple[int, bytes, str | None]:
        """`GET /v1/graph` with these query pairs at `t`: status, body and Content-Type."""
        try:
            graph = self.serve(read_query(pairs), t)
        except QueryError as refused:
            return refused.status, refused.body.encode(), "text/plain; charset=utf-8" if refused.body else None
        # actix `content_type("application/json")`: no charset.
        return 200, api.dump_graph(graph).encode(), "application/json"

    def app(self, now: Callable[[], float]) -> web.Application:
        """The policy engine's `GET /v1/graph`, answering at scenario time `now()`."""

        async def graph(request: web.Request) -> web.Response:
            status, body, content_type = self.answer(request.query.items(), now())
            response = web.Response(status=status, body=body)
            if content_type is not None:
                response.headers["Content-Type"] = content_type
            return response

        application = web.Application()
        application.router.add_get(api.GRAPH_PATH, graph)
        return application
