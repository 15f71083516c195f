"""Cincinnati's graph and throttling as coreos/fedora-coreos-cincinnati 95388bd defines them:
commons/src/graph.rs (the JSON shape), commons/src/metadata.rs (the keys), commons/src/policy.rs
(throttle_rollouts)."""

from __future__ import annotations

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
