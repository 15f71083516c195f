"""The simulated Cincinnati (sim/cincinnati.py) over real HTTP: the policy engine's `/v1/graph`
(coreos/fedora-coreos-cincinnati fcos-policy-engine main.rs, commons graph.rs and policy.rs), and
the fleet's Zincati hosts answered from the very same graph: offered a release being rolled out
once its throttling reaches their wariness, never on a dead-end."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest

from local_exporter.agents import cincinnati as api
from local_exporter.sim.cincinnati import Cincinnati, payload, read_query, zincati_query
from local_exporter.sim.fleet import Fleet, Host
from local_exporter.sim.live import LiveFleet, LiveOptions
from local_exporter.sim.scenario import FaultSpec, FleetSpec, ReleaseSpec, Scenario
from tests.support.fleet import first_on
from tests.support.processes import LOOPBACK
from tests.support.update_servers import serving_app

START = 1_800_000_000
OLD, NEW = "40.20240504.3.0", "40.20240519.3.0"
HOUR = 3600.0
RELEASE_AT = 600.0


def scenario(
    hosts: int = 20,
    *,
    rollout: float = HOUR,
    faults: tuple[FaultSpec, ...] = (),
    wariness: float | None = None,
) -> Scenario:
    fleet = FleetSpec(hosts=hosts, version=OLD, wariness=wariness)
    return Scenario("cincinnati", "", 6 * HOUR, fleet, (ReleaseSpec(NEW, RELEASE_AT, rollout),), faults)


def make(s: Scenario) -> Fleet:
    return Fleet(s, lambda t: START + t)


@contextlib.asynccontextmanager
async def serving(fleet: Fleet) -> AsyncIterator[Callable[..., str]]:
    """The fleet's Cincinnati on a real port, answering at the fleet's current time; yields a
    function making a graph URL from query parameters."""
    async with serving_app(fleet.cincinnati.app(lambda: fleet.now)) as base:

        def url(query: str | dict[str, str] = "", **params: str) -> str:
            text = query if isinstance(query, str) else urlencode(query)
            text = "&".join(part for part in (text, urlencode(params)) if part)
            return f"{base}{api.GRAPH_PATH}?{text}"

        yield url


async def fetch(session: aiohttp.ClientSession, url: str) -> tuple[int, str | None, bytes]:
    async with session.get(url, headers={"Accept": "application/json"}) as response:
        return response.status, response.headers.get("Content-Type"), await response.read()


def version(host: Host) -> str:
    return host.agent.identity.os_version


# --- the endpoint ------------------------------------------------------------------------------------


async def test_the_graph_has_graph_rs_shape_and_metadata() -> None:
    fleet = make(scenario())
    fleet.advance(RELEASE_AT + 1800)
    async with serving(fleet) as url, aiohttp.ClientSession() as session:
        status, content_type, body = await fetch(session, url(basearch="x86_64", stream="stable"))
        # Pretty JSON, `application/json` without a charset (actix content_type).
        assert (status, content_type) == (200, "application/json")
        assert body.startswith(b'{\n  "nodes": [\n    {\n      "version": "40.20240504.3.0"')
        graph = api.parse_graph(json.loads(body))
        old, new = graph.nodes
        assert (old.version, old.payload, dict(old.metadata)) == (
            OLD,
            payload(OLD, "x86_64"),
            {api.AGE_INDEX: "0", api.SCHEME: "checksum"},
        )
        assert dict(new.metadata) == {
            api.AGE_INDEX: "1",
            api.SCHEME: "checksum",
            api.ROLLOUT: "true",
            api.START_EPOCH: str(START + int(RELEASE_AT)),
            api.START_VALUE: "0",
            api.DURATION: "60",
        }
        # Without a wariness the engine derives one from "": that client sees the edge only once
        # the throttling reaches it.
        anonymous = api.node_wariness("")
        assert graph.edges == (((0, 1),) if anonymous <= 0.5 else ())

        # Other scopes: another basearch's payloads, the OCI graph, another stream (empty).
        status, _, body = await fetch(session, url(basearch="aarch64", stream="stable"))
        aarch64 = api.parse_graph(json.loads(body))
        assert status == 200 and aarch64.nodes[1].payload == payload(NEW, "aarch64") != new.payload
        _, _, body = await fetch(session, url(basearch="x86_64", stream="stable", oci="true"))
        oci = api.parse_graph(json.loads(body))
        assert {n.metadata[api.SCHEME] for n in oci.nodes} == {"oci"}
        assert oci.nodes[1].payload == payload(NEW, "x86_64", oci=True)
        assert oci.nodes[1].payload.startswith("quay.io/fedora/fedora-coreos@sha256:")
        status, _, body = await fetch(session, url(basearch="x86_64", stream="testing"))
        assert (status, json.loads(body)) == (200, {"nodes": [], "edges": []})
        # Zincati's other parameters are read by nobody: accepted, ignored.
        status, _, _ = await fetch(session, url(basearch="x86_64", stream="stable", os_version=OLD, platform="metal"))
        assert status == 200


def test_before_its_release_a_release_is_not_in_the_graph() -> None:
    fleet = make(scenario())
    graph = fleet.cincinnati.serve(read_query([("basearch", "x86_64"), ("stream", "stable")]), RELEASE_AT - 1)
    assert [node.version for node in graph.nodes] == [OLD] and graph.edges == ()


@pytest.mark.parametrize(
    ("query", "status", "body"),
    [
        # validate_scope: a missing or empty basearch or stream, 400 with an empty body.
        ("", 400, b""),
        ("basearch=x86_64", 400, b""),
        ("stream=stable", 400, b""),
        ("basearch=x86_64&stream=", 400, b""),
        ("basearch=&stream=stable", 400, b""),
        # The Query extractor (serde_urlencoded) before it: a text reason.
        (
            "basearch=x86_64&stream=stable&oci=yes",
            400,
            b"Query deserialize error: provided string was not `true` or `false`",
        ),
        ("basearch=x86_64&stream=stable&stream=next", 400, b"Query deserialize error: duplicate field `stream`"),
        # A scope the graph-builder has no graph of: the engine's upstream request fails.
        ("basearch=x86_64&stream=nope", 500, None),
        ("basearch=riscv64&stream=stable", 500, None),
    ],
)
async def test_the_policy_engine_refuses_what_it_cannot_read(query: str, status: int, body: bytes | None) -> None:
    fleet = make(scenario(hosts=1))
    async with serving(fleet) as url, aiohttp.ClientSession() as session:
        got_status, content_type, got_body = await fetch(session, url(query))
    assert got_status == status
    if body is not None:
        assert got_body == body
    if got_body:
        assert content_type == "text/plain; charset=utf-8" and b"\n" not in got_body
    # Zincati reads no {"kind", "value"} error from these: `generic_http_<status>`.


@pytest.mark.parametrize(("speed", "rollout", "minutes"), [(1.0, HOUR, "60"), (1.0, 90.0, "2"), (60.0, 1800.0, "1")])
def test_a_rollout_lasts_its_window_in_wall_time_in_whole_minutes(speed: float, rollout: float, minutes: str) -> None:
    cincinnati = Cincinnati(scenario(rollout=rollout), lambda t: START + t / speed)
    graph = cincinnati.graph("stable", "x86_64", RELEASE_AT)
    assert graph.nodes[1].metadata[api.DURATION] == minutes
    assert graph.nodes[1].metadata[api.START_EPOCH] == str(math.floor(START + RELEASE_AT / speed))


def test_a_release_without_a_rollout_window_is_offered_to_everyone_from_its_release() -> None:
    cincinnati = Cincinnati(scenario(rollout=0.0), lambda t: START + t)
    metadata = cincinnati.graph("stable", "x86_64", RELEASE_AT).nodes[1].metadata
    assert (metadata[api.START_VALUE], api.DURATION in metadata) == ("1", False)
    assert api.throttling(metadata, START + RELEASE_AT) == 1.0


# --- the hosts, answered from the same graph ----------------------------------------------------------


def test_a_hosts_wariness_is_what_the_policy_engine_computes_for_it() -> None:
    fleet = make(scenario())
    assert all(host.wariness == api.compute_wariness(None, host.client_id) for host in fleet.hosts)
    assert len({host.wariness for host in fleet.hosts}) == len(fleet.hosts)
    # Configured: Zincati sends it with six decimals, and that is what throttles the host.
    configured = make(scenario(hosts=2, wariness=0.12345678))
    assert [host.wariness for host in configured.hosts] == [0.123457, 0.123457]
    query = zincati_query(configured.hosts[0].agent.identity, configured.hosts[0].client_id, 0.12345678)
    assert query["rollout_wariness"] == "0.123457" and query["node_uuid"] == configured.hosts[0].client_id


def test_a_phased_rollout_reaches_each_host_once_the_throttling_reaches_its_wariness() -> None:
    fleet = make(scenario())
    first_seen = first_on(fleet, NEW, 6 * HOUR, 30)
    assert all(version(host) == NEW for host in fleet.hosts)
    metadata = fleet.cincinnati.graph("stable", "x86_64", RELEASE_AT).nodes[1].metadata
    for host in fleet.hosts:
        # The first whole second the throttling reaches the host's wariness: offered from then,
        # picked up at its next check (a refresh is 300 s plus up to 10 %), seen within 30 s.
        offered = next(
            s for s in range(int(RELEASE_AT), int(2 * HOUR)) if api.offered(host.wariness, metadata, START + s)
        )
        assert api.throttling(metadata, START + offered) >= host.wariness
        assert offered <= first_seen[host.name] <= offered + 330 + 30, host.name
    assert max(first_seen.values()) - min(first_seen.values()) > HOUR / 2


async def test_the_endpoint_answers_each_host_what_its_check_used() -> None:
    fleet = make(scenario())
    t = RELEASE_AT + 1500.0
    fleet.advance(t)
    throttling = api.throttling(fleet.cincinnati.graph("stable", "x86_64", t).nodes[1].metadata, START + t)
    offered = 0
    async with serving(fleet) as url, aiohttp.ClientSession() as session:
        for host in fleet.hosts:
            # Exactly the query Zincati sends.
            query = zincati_query(host.agent.identity, host.client_id, None)
            status, _, body = await fetch(session, url(query))
            assert status == 200
            served = api.parse_graph(json.loads(body))
            used = fleet.cincinnati.serve(read_query(query.items()), t)
            assert api.graph_document(served) == api.graph_document(used)
            # The edge into the rollout is there exactly when the throttling reached the host.
            assert (served.edges == ((0, 1),)) is (host.wariness <= throttling), host.name
            check = fleet.update_check(host, t)
            target = api.find_update(served, query["os_checksum"]).target
            assert (target.version if target else None) == (check.target.version if check.target else None)
            assert (check.nodes, check.edges) == (2, len(served.edges))
            offered += check.target is not None
    # Half way through the hour, about half the hosts.
    assert 0 < offered < len(fleet.hosts)


def test_the_hosts_report_the_graph_they_were_served() -> None:
    fleet = make(scenario(hosts=3))
    fleet.advance(RELEASE_AT - 1)
    for host in fleet.hosts:
        assert host.agent.value("zincati_cincinnati_graph_nodes_count") == 1
        assert host.agent.value("zincati_cincinnati_graph_edges_count") == 0
        assert host.agent.value("zincati_cincinnati_booted_release_is_deadend") == 0


# --- dead-ends ---------------------------------------------------------------------------------------------


async def test_a_dead_end_for_every_host_is_marked_in_the_stream_graph_while_active() -> None:
    # A deadend fault without a host selection: the stream's release is marked for everyone.
    fault = FaultSpec("deadend", tuple(range(4)), 0.0, 2 * HOUR, version=OLD)
    fleet = make(scenario(hosts=4, rollout=0.0, faults=(fault,)))
    fleet.advance(HOUR)
    async with serving(fleet) as url, aiohttp.ClientSession() as session:
        _, _, body = await fetch(session, url(basearch="x86_64", stream="stable"))
        graph = api.parse_graph(json.loads(body))
        assert graph.nodes[0].metadata[api.DEADEND] == "true"
        assert graph.nodes[0].metadata[api.DEADEND_REASON] == api.GENERIC_REASON
        assert graph.edges == ()  # no update path out of a dead-end
        assert all(version(h) == OLD for h in fleet.hosts)
        assert all(h.agent.value("zincati_cincinnati_booted_release_is_deadend") == 1 for h in fleet.hosts)
        fleet.advance(2 * HOUR)
        _, _, body = await fetch(session, url(basearch="x86_64", stream="stable"))
        graph = api.parse_graph(json.loads(body))
        assert api.DEADEND not in graph.nodes[0].metadata and graph.edges == ((0, 1),)
    fleet.advance(3 * HOUR)
    assert all(version(h) == NEW for h in fleet.hosts)
    assert all(h.agent.value("zincati_cincinnati_booted_release_is_deadend") == 0 for h in fleet.hosts)


async def test_a_dead_end_for_some_hosts_is_marked_only_in_the_graph_they_are_served() -> None:
    fleet = make(scenario(hosts=2, rollout=0.0, faults=(FaultSpec("deadend", (0,), version=OLD),)))
    fleet.advance(HOUR)
    stuck, moved = fleet.hosts
    async with serving(fleet) as url, aiohttp.ClientSession() as session:
        graphs = {}
        for name, uuid in (("stuck", stuck.client_id), ("moved", moved.client_id), ("anonymous", "")):
            _, _, body = await fetch(session, url(basearch="x86_64", stream="stable", node_uuid=uuid))
            graphs[name] = api.parse_graph(json.loads(body))
    assert graphs["stuck"].nodes[0].deadend and graphs["stuck"].edges == ()
    assert not graphs["moved"].nodes[0].deadend and not graphs["anonymous"].nodes[0].deadend
    assert version(stuck) == OLD and stuck.agent.value("zincati_cincinnati_booted_release_is_deadend") == 1
    assert version(moved) == NEW and moved.agent.value("zincati_cincinnati_booted_release_is_deadend") == 0


# --- live ----------------------------------------------------------------------------------------------------


async def test_a_live_fleet_serves_its_cincinnati(short_dir: Path) -> None:
    fleet_spec = FleetSpec(hosts=2, version=OLD)
    live_scenario = Scenario("live-graph", "", HOUR, fleet_spec, (ReleaseSpec(NEW, 0.0),))
    live = LiveFleet(live_scenario, LiveOptions(short_dir, speed=60.0, bridge_port_base=0, airlock_port=None))
    await live.start()
    try:
        assert live.cincinnati_port
        query = urlencode({"basearch": "x86_64", "stream": "stable"})
        async with aiohttp.ClientSession() as session:
            status, _, body = await fetch(session, f"http://{LOOPBACK}:{live.cincinnati_port}{api.GRAPH_PATH}?{query}")
        graph = api.parse_graph(json.loads(body))
        assert status == 200 and [node.version for node in graph.nodes] == [OLD, NEW]
        assert graph.edges == ((0, 1),)
    finally:
        await live.close()
