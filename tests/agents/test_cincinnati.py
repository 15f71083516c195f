"""Cincinnati's graph and throttling as coreos/fedora-coreos-cincinnati 95388bd defines them:
commons/src/graph.rs (the graph-builder's graph and its JSON shape), commons/src/metadata.rs (the
keys), commons/src/policy.rs (filter_deadends, throttle_rollouts), fcos-policy-engine/src/main.rs
(the client's wariness); and Zincati's choice from the graph (coreos/zincati be76c4aa
src/cincinnati/mod.rs find_update, src/rpm_ostree/mod.rs)."""

from __future__ import annotations

import json
import math

import pytest

from local_exporter.agents import cincinnati as api

START = 1_700_000_000


def _rollout(**values: str) -> dict[str, str]:
    return {api.ROLLOUT: "true", **values}


@pytest.mark.parametrize(
    ("metadata", "now", "expected"),
    [
        # Before the start epoch: nobody (policy.rs: `now < start_epoch` -> 0.0).
        (_rollout(**{api.START_EPOCH: str(START), api.START_VALUE: "0.2", api.DURATION: "100"}), START - 1, 0.0),
        # At the start: the start value; half way: half of the rest; after the end: everyone.
        (_rollout(**{api.START_EPOCH: str(START), api.START_VALUE: "0.2", api.DURATION: "100"}), START, 0.2),
        (_rollout(**{api.START_EPOCH: str(START), api.START_VALUE: "0.2", api.DURATION: "100"}), START + 3000, 0.6),
        (_rollout(**{api.START_EPOCH: str(START), api.START_VALUE: "0.2", api.DURATION: "100"}), START + 6001, 1.0),
        # No duration: the rollout stays at its start value.
        (_rollout(**{api.START_EPOCH: str(START), api.START_VALUE: "0.3"}), START + 10**6, 0.3),
        # A duration of 0 counts as 1 minute; an unparsable start value as 0; no epoch as 0.
        (_rollout(**{api.START_EPOCH: str(START), api.DURATION: "0"}), START + 30, 0.5),
        (_rollout(**{api.START_VALUE: "x", api.DURATION: "1"}), 30, 0.5),
        # A negative duration does not parse as u64: no duration.
        (_rollout(**{api.START_VALUE: "0.4", api.DURATION: "-5"}), START, 0.4),
    ],
)
def test_throttling_follows_policy_rs(metadata: dict[str, str], now: float, expected: float) -> None:
    assert api.throttling(metadata, now) == pytest.approx(expected)


def test_a_client_is_offered_the_release_when_its_wariness_is_not_above_the_throttling() -> None:
    metadata = _rollout(**{api.START_EPOCH: str(START), api.START_VALUE: "0", api.DURATION: "60"})
    assert api.offered(0.5, metadata, START + 1800) and not api.offered(0.51, metadata, START + 1800)
    # Hidden only when the wariness is above the throttling: a wariness of 0 sees the release
    # even before its start (0 is not above 0), any other none.
    assert api.offered(0.0, metadata, START - 1) and not api.offered(1e-6, metadata, START - 1)


def test_the_graph_shape_and_its_releases_in_order() -> None:
    document = {
        "nodes": [
            {"version": "40.20240519.3.0", "metadata": {api.AGE_INDEX: "2", api.ROLLOUT: "true"}, "payload": "b"},
            {"version": "40.20240504.3.0", "metadata": {api.AGE_INDEX: "1", api.DEADEND: "true"}, "payload": "a"},
        ],
        "edges": [[1, 0]],
    }
    graph = api.parse_graph(document)
    assert [node.version for node in graph.releases()] == ["40.20240504.3.0", "40.20240519.3.0"]
    newest = graph.newest()
    assert newest is not None and newest.version == "40.20240519.3.0" and newest.rollout
    assert [node.version for node in graph.nodes if node.deadend] == ["40.20240504.3.0"]
    assert graph.edges == ((1, 0),)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ([], "not a graph"),
        ({"nodes": [{"metadata": {}}]}, "node 0 has no version"),
        ({"nodes": [{"version": "1", "metadata": {"k": 1}}]}, "not a map of strings"),
        ({"nodes": [{"version": "1"}], "edges": [[0, 3]]}, "does not join two nodes"),
    ],
)
def test_a_malformed_graph_says_what_is_wrong(document: object, reason: str) -> None:
    with pytest.raises(api.GraphError, match=reason):
        api.parse_graph(document)


def test_versions_of_both_oses_order_by_their_numbers() -> None:
    versions = ["40.20240519.3.0", "40.20240504.3.0", "39.20240407.3.0", "40.20240504.3.1"]
    assert sorted(versions, key=api.version_key) == [
        "39.20240407.3.0",
        "40.20240504.3.0",
        "40.20240504.3.1",
        "40.20240519.3.0",
    ]
    assert sorted(["4230.2.1", "4152.2.0", "4152.10.0"], key=api.version_key) == ["4152.2.0", "4152.10.0", "4230.2.1"]


# --- graph.rs: the graph-builder's graph ----------------------------------------------------------

V = [f"40.2024050{i}.3.0" for i in range(7)]


def _releases(count: int, missing: tuple[int, ...] = ()) -> list[api.Release]:
    return [api.Release(V[i], None if i in missing else f"sum{i}") for i in range(count)]


def test_graph_rs_a_rollout_node_gets_edges_from_every_release_since_the_previous_barrier() -> None:
    # 0, 1 (barrier), 2, 3 (rollout): the rollout is reached from the barrier on, not from 0.
    updates = {V[1]: api.UpdateMetadata(barrier=""), V[3]: api.UpdateMetadata(rollout=api.Rollout(START, 0.0, 60))}
    graph = api.build_graph(_releases(4), updates)
    # Rollout edges first, then the barrier's (from every release before it).
    assert graph.edges == ((1, 3), (2, 3), (0, 1))


def test_graph_rs_without_a_barrier_a_rollout_is_reached_from_the_first_release_and_others_from_nowhere() -> None:
    updates = {V[2]: api.UpdateMetadata(rollout=api.Rollout()), V[4]: api.UpdateMetadata(rollout=api.Rollout())}
    graph = api.build_graph(_releases(5), updates)
    # Newest rollout first; 1 and 3 are not rolled out nor barriers: no edge leads to them.
    assert graph.edges == ((0, 4), (1, 4), (2, 4), (3, 4), (0, 2), (1, 2))
    assert not any(target in (1, 3) for _, target in graph.edges)


def test_graph_rs_an_in_progress_barrier_gets_only_its_rollout_edges() -> None:
    # A barrier being rolled out: the rollout logic gave it its edges; the next barrier starts there.
    updates = {
        V[1]: api.UpdateMetadata(barrier="", rollout=api.Rollout()),
        V[3]: api.UpdateMetadata(barrier="https://bugs/2"),
    }
    graph = api.build_graph(_releases(4), updates)
    assert graph.edges == ((0, 1), (1, 3), (2, 3))
    assert graph.nodes[3].metadata[api.BARRIER_REASON] == "https://bugs/2"
    assert graph.nodes[1].metadata[api.BARRIER_REASON] == api.GENERIC_REASON


def test_graph_rs_a_release_without_a_payload_for_the_scope_is_skipped_but_keeps_its_place() -> None:
    updates = {V[2]: api.UpdateMetadata(rollout=api.Rollout())}
    graph = api.build_graph(_releases(3, missing=(1,)), updates)
    assert [(n.version, n.age_index) for n in graph.nodes] == [(V[0], 0), (V[2], 2)]
    # Edges index the nodes as listed, not the age index.
    assert graph.edges == ((0, 1),)


def test_graph_rs_node_metadata_keys_and_values() -> None:
    updates = {
        V[0]: api.UpdateMetadata(deadend=""),
        V[1]: api.UpdateMetadata(rollout=api.Rollout(START, 0.25, 120)),
        V[2]: api.UpdateMetadata(rollout=api.Rollout(START, 0.0)),
    }
    checksum = api.build_graph(_releases(3), updates)
    assert checksum.nodes[0].metadata == {
        api.AGE_INDEX: "0",
        api.SCHEME: "checksum",
        api.DEADEND: "true",
        api.DEADEND_REASON: "generic",
    }
    assert checksum.nodes[1].metadata == {
        api.AGE_INDEX: "1",
        api.SCHEME: "checksum",
        api.ROLLOUT: "true",
        api.START_EPOCH: str(START),
        api.START_VALUE: "0.25",
        api.DURATION: "120",
    }
    # Rust's f64 to_string: 0.0 is "0"; an absent duration is no key at all.
    assert checksum.nodes[2].metadata[api.START_VALUE] == "0" and api.DURATION not in checksum.nodes[2].metadata
    oci = api.build_graph(_releases(3), updates, oci=True)
    assert {node.metadata[api.SCHEME] for node in oci.nodes} == {"oci"}


def test_graph_rs_and_policy_rs_a_dead_end_loses_its_outgoing_edges() -> None:
    updates = {V[1]: api.UpdateMetadata(deadend="why"), V[2]: api.UpdateMetadata(rollout=api.Rollout())}
    graph = api.build_graph(_releases(3), updates)
    assert graph.edges == ((0, 2),)  # 1 -> 2 is gone: hosts on 1 get no update
    assert graph.nodes[1].deadend and graph.nodes[1].metadata[api.DEADEND_REASON] == "why"
    # policy.rs filter_deadends does the same on any graph.
    unfiltered = api.Graph(graph.nodes, ((0, 2), (1, 2)))
    assert api.filter_deadends(unfiltered).edges == ((0, 2),)


def test_graph_rs_the_json_document_round_trips_and_is_serde_json_pretty() -> None:
    updates = {V[1]: api.UpdateMetadata(rollout=api.Rollout(START, 0.5, 10))}
    graph = api.build_graph(_releases(2), updates)
    text = api.dump_graph(graph)
    assert text.startswith('{\n  "nodes": [\n    {\n      "version": "40.20240500.3.0",\n      "metadata": {\n')
    assert text.endswith('"edges": [\n    [\n      0,\n      1\n    ]\n  ]\n}')
    document = json.loads(text)
    assert list(document) == ["nodes", "edges"] and list(document["nodes"][0]) == ["version", "metadata", "payload"]
    assert api.parse_graph(document) == graph
    assert api.dump_graph(api.Graph((), ())) == '{\n  "nodes": [],\n  "edges": []\n}'


# --- policy.rs and fcos-policy-engine main.rs -------------------------------------------------------


def test_policy_rs_throttle_rollouts_hides_the_edges_into_a_rollout_above_the_clients_wariness() -> None:
    updates = {
        V[1]: api.UpdateMetadata(rollout=api.Rollout(START, 0.0, 100)),
        V[2]: api.UpdateMetadata(barrier=""),
    }
    graph = api.build_graph(_releases(3), updates)
    now = START + 3000  # half way: throttling 0.5
    assert api.throttle_rollouts(graph, 0.5, now).edges == graph.edges
    assert api.throttle_rollouts(graph, 0.51, now).edges == ((0, 2), (1, 2))  # the barrier is not throttled
    # A NaN wariness is above nothing: nothing is hidden (Rust's `>` on NaN is false).
    assert api.throttle_rollouts(graph, math.nan, START - 1).edges == graph.edges


def test_main_rs_the_policy_engine_throttles_at_whole_seconds_then_filters_dead_ends() -> None:
    updates = {V[1]: api.UpdateMetadata(rollout=api.Rollout(START, 0.0, 1))}
    graph = api.build_graph(_releases(2), updates)
    # At START + 30.9 the engine's clock reads START + 30 (chrono's timestamp): throttling 0.5,
    # not 0.515.
    assert api.policy_graph(graph, 0.5, START + 30.9).edges == ((0, 1),)
    assert api.policy_graph(graph, 0.51, START + 30.9).edges == ()
    # The throttled graph's dead-ends are filtered again: an edge out of one never reaches a host.
    deadend = api.Node(V[0], {**graph.nodes[0].metadata, api.DEADEND: "true"}, "sum0")
    assert api.policy_graph(api.Graph((deadend, graph.nodes[1]), ((0, 1),)), 0.0, START + 60).edges == ()


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("0.500000", 0.5),  # Zincati sends six decimals
        ("1.5", 1.0),  # clamped
        ("-0.2", 0.0),
        ("+.25", 0.25),
        ("1e-1", 0.1),
        ("inf", 1.0),
        ("Infinity", 1.0),
    ],
)
def test_main_rs_a_configured_wariness_is_clamped(sent: str, expected: float) -> None:
    assert api.compute_wariness(sent, "27e3ac02af3946af995c9940e18b0cce") == expected


@pytest.mark.parametrize("sent", [None, "", " 0.5", "0.5 ", "1_0", "0x1", ".", "e5", "high"])
def test_main_rs_a_wariness_rust_cannot_parse_falls_back_to_the_node_id(sent: str | None) -> None:
    node = "27e3ac02af3946af995c9940e18b0cce"
    assert api.compute_wariness(sent, node) == api.node_wariness(node)


def test_main_rs_a_nan_wariness_stays_nan() -> None:
    assert math.isnan(api.compute_wariness("NaN", "x"))


def test_main_rs_the_derived_wariness_is_stable_in_range_and_spread() -> None:
    nodes = [f"{i:032x}" for i in range(2000)]
    values = [api.node_wariness(node) for node in nodes]
    assert values == [api.compute_wariness(None, node) for node in nodes]  # same node, same value
    assert all(api.COMPUTED_MIN <= value <= 1.0 for value in values)
    # Evenly spread: about a tenth in each tenth.
    tenths = [sum(1 for value in values if k / 10 <= value < (k + 1) / 10) for k in range(10)]
    assert all(150 < count < 250 for count in tenths), tenths
    # Without a node id the engine hashes "".
    assert api.compute_wariness(None, None) == api.node_wariness("")


# --- Zincati: src/cincinnati/mod.rs find_update, src/rpm_ostree/mod.rs --------------------------------


def _zincati_graph() -> api.Graph:
    updates = {
        V[1]: api.UpdateMetadata(rollout=api.Rollout()),
        V[2]: api.UpdateMetadata(rollout=api.Rollout()),
        V[3]: api.UpdateMetadata(deadend="https://bugs/3"),
    }
    return api.build_graph(_releases(4), updates)


def test_zincati_mod_rs_takes_the_reachable_release_with_the_highest_age_index() -> None:
    graph = _zincati_graph()
    check = api.find_update(graph, "sum0")
    assert (check.nodes, check.edges) == (4, 3)
    assert check.booted is not None and check.booted.version == V[0] and not check.booted_deadend
    assert check.target is not None and check.target.version == V[2]
    # Throttled away from 2, the host is offered 1.
    only_one = api.Graph(graph.nodes, tuple(edge for edge in graph.edges if edge[1] != 2))
    target = api.find_update(only_one, "sum0").target
    assert target is not None and target.version == V[1]


def test_zincati_mod_rs_a_booted_release_not_in_the_graph_is_no_update() -> None:
    check = api.find_update(_zincati_graph(), "unknown-checksum")
    assert check.booted is None and check.target is None and not check.booted_deadend
    # Found by payload, not by version.
    assert api.find_update(_zincati_graph(), V[0]).booted is None


def test_zincati_mod_rs_a_dead_end_is_reported_and_offers_nothing() -> None:
    check = api.find_update(_zincati_graph(), "sum3")
    assert check.booted_deadend and check.target is None


def test_zincati_mod_rs_a_downgrade_is_taken_only_when_allowed() -> None:
    nodes = _zincati_graph().nodes
    graph = api.Graph(nodes, ((2, 1),))
    assert api.find_update(graph, "sum2").target is None
    target = api.find_update(graph, "sum2", allow_downgrade=True).target
    assert target is not None and target.version == V[1]


def test_zincati_rpm_ostree_mod_rs_a_target_that_is_not_a_release_fails_the_check() -> None:
    booted = api.Node(V[0], {api.AGE_INDEX: "0", api.SCHEME: "checksum"}, "sum0")
    broken = api.Node(V[1], {api.SCHEME: "checksum"}, "sum1")  # no age index
    with pytest.raises(api.GraphError, match="age_index"):
        api.find_update(api.Graph((booted, broken), ((0, 1),)), "sum0")
