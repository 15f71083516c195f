"""`kind = "cincinnati"` against a real HTTP server serving a Cincinnati graph: the releases in
order, dead-ends, barriers and the newest release's rollout plan as `os_release_*` families; the
answer cached for `cache_for`; every failure of a first read with its status and one-line
reason; after a good answer, the last good answer served with its age, the failure logged once.

The graph's shape and metadata keys: coreos/fedora-coreos-cincinnati commons/src/graph.rs and
metadata.rs; the planned share: commons/src/policy.rs throttle_rollouts."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from local_exporter.agents import cincinnati as api
from local_exporter.bridge import config
from local_exporter.common.logs import FIELDS
from tests.support.bridges import bridge_app, sample, scrape_families
from tests.support.processes import LOOPBACK, free_port
from tests.support.update_servers import FIRST_READ_FAILURES, UpdateServer, failing, first_read_fails, serving

REQUESTS = "local_exporter_bridge_requests_total"
AGE = "local_exporter_bridge_answer_age_seconds"


def _node(version: str, age: int, **metadata: str) -> dict[str, Any]:
    return {
        "version": version,
        "payload": f"sha-{version}",
        "metadata": {api.AGE_INDEX: str(age), api.SCHEME: "checksum", **metadata},
    }


def graph(now: float) -> dict[str, Any]:
    """A stream's graph as the server writes it (nodes in no particular order): a dead-end, a
    barrier, and the newest release half an hour into a one-hour rollout starting at 10 %."""
    return {
        "nodes": [
            _node(
                "41.20250101.3.0",
                3,
                **{
                    api.ROLLOUT: "true",
                    api.START_EPOCH: str(int(now) - 1800),
                    api.START_VALUE: "0.1",
                    api.DURATION: "60",
                },
            ),
            _node("39.20231101.3.0", 0, **{api.DEADEND: "true", api.DEADEND_REASON: "https://bugs/1"}),
            _node("40.20240101.3.0", 1, **{api.BARRIER: "true"}),
            _node("40.20240201.3.0", 2),
        ],
        "edges": [[2, 3], [3, 0]],
    }


@pytest.fixture
async def server() -> AsyncIterator[UpdateServer]:
    async with serving({api.GRAPH_PATH: graph(time.time())}) as running:
        yield running


async def _bridge(aiohttp_client, url: str, extra: str = ""):  # type: ignore[no-untyped-def]
    registry = CollectorRegistry()
    text = f'[bridge.selectors.releases]\nkind = "cincinnati"\nurl = "{url}"\nstream = "stable"\ntimeout = 1\n{extra}'
    return await aiohttp_client(bridge_app(text, registry)), registry


def _by_version(samples: list[tuple[dict[str, str], float]]) -> dict[str, float]:
    return {labels["version"]: value for labels, value in samples}


async def test_the_graph_as_release_families(aiohttp_client, server: UpdateServer) -> None:
    client, _ = await _bridge(aiohttp_client, server.url)
    before = time.time()
    status, families = await scrape_families(client, "releases")
    assert status == 200
    stream = {"os": "fedora-coreos", "stream": "stable"}
    assert _by_version(families["os_release_index"]) == {
        "39.20231101.3.0": 0,
        "40.20240101.3.0": 1,
        "40.20240201.3.0": 2,
        "41.20250101.3.0": 3,
    }
    assert families["os_release_newest_info"] == [({**stream, "version": "41.20250101.3.0"}, 1)]
    assert families["os_release_deadend_info"] == [
        ({**stream, "version": "39.20231101.3.0", "reason": "https://bugs/1"}, 1)
    ]
    assert families["os_release_barrier_info"] == [({**stream, "version": "40.20240101.3.0", "reason": "generic"}, 1)]
    # policy.rs: 0.1 + 0.9 * 30 min / 60 min, at the scrape.
    [(labels, planned)] = families["os_release_rollout_planned_share"]
    assert labels["version"] == "41.20250101.3.0" and planned == pytest.approx(0.55, abs=0.01)
    assert families["os_release_rollout_duration_seconds"][0][1] == 3600
    assert families["os_release_rollout_start_share"][0][1] == pytest.approx(0.1)
    [(labels, updated)] = families["os_release_feed_updated_timestamp_seconds"]
    assert labels == stream and before - 1 <= updated <= time.time()


async def test_asks_what_zincati_asks(aiohttp_client, server: UpdateServer) -> None:
    client, _ = await _bridge(aiohttp_client, server.url + "/", 'basearch = "aarch64"\noci = true\n')
    assert (await scrape_families(client, "releases"))[0] == 200
    [(path, headers)] = server.requests
    assert path == f"{api.GRAPH_PATH}?basearch=aarch64&stream=stable&oci=true"
    assert headers["Accept"] == "application/json"


async def test_a_release_fully_out_is_planned_for_everyone(aiohttp_client) -> None:
    document = {"nodes": [_node("40.20240101.3.0", 0), _node("40.20240201.3.0", 1)], "edges": [[0, 1]]}
    async with serving({api.GRAPH_PATH: document}) as server:
        client, _ = await _bridge(aiohttp_client, server.url)
        status, families = await scrape_families(client, "releases")
    assert status == 200
    assert _by_version(families["os_release_rollout_planned_share"]) == {"40.20240201.3.0": 1}
    assert "os_release_rollout_start_timestamp_seconds" not in families


async def test_answers_from_the_cache_while_it_is_fresh(aiohttp_client, server: UpdateServer) -> None:
    client, _ = await _bridge(aiohttp_client, server.url, "cache_for = 300\n")
    for _ in range(3):
        assert (await scrape_families(client, "releases"))[0] == 200
    assert len(server.requests) == 1


@pytest.mark.parametrize("failure", FIRST_READ_FAILURES, ids=[f[0] for f in FIRST_READ_FAILURES])
async def test_a_first_read_that_fails_gets_its_status(
    aiohttp_client, server: UpdateServer, failure: tuple[str, int, str, str]
) -> None:
    client, registry = await _bridge(aiohttp_client, failing(server, failure[0]), "max_bytes = 100000\n")
    await first_read_fails(client, registry, "releases", failure)


async def test_a_document_that_is_not_a_graph_is_a_bad_payload(aiohttp_client) -> None:
    async with serving({api.GRAPH_PATH: {"kind": "x", "value": "y"}}) as server:
        client, registry = await _bridge(aiohttp_client, server.url)
        async with client.get("/bridge?selector=releases") as response:
            assert response.status == 502
            assert "not a graph: no list of nodes" in await response.text()
    assert sample(registry, REQUESTS, selector="releases", outcome="bad_payload") == 1


async def test_the_last_good_answer_stands_in_logged_once(
    aiohttp_client, server: UpdateServer, caplog: pytest.LogCaptureFixture
) -> None:
    client, registry = await _bridge(aiohttp_client, server.url, "cache_for = 0\n")
    status, good = await scrape_families(client, "releases")
    assert status == 200
    server.mode = "error"
    with caplog.at_level(logging.DEBUG, logger="local_exporter.bridge"):
        for _ in range(3):
            status, stood_in = await scrape_families(client, "releases")
            assert status == 200
            # The same answer, the planned share rendered anew.
            assert stood_in["os_release_newest_info"] == good["os_release_newest_info"]
            assert (
                stood_in["os_release_feed_updated_timestamp_seconds"]
                == good["os_release_feed_updated_timestamp_seconds"]
            )
        server.mode = "ok"
        assert (await scrape_families(client, "releases"))[0] == 200
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == ["scrape failed, serving the last good answer"]
    logged = vars(warnings[0])[FIELDS]
    assert logged["selector"] == "releases" and logged["outcome"] == "failed" and "HTTP 500" in logged["reason"]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == ["scrape recovered"]
    assert sample(registry, REQUESTS, selector="releases", outcome="last_good") == 3
    assert sample(registry, REQUESTS, selector="releases", outcome="success") == 2
    assert 0 <= sample(registry, AGE, selector="releases") < 5


async def test_a_slow_server_gets_the_last_good_answer_within_the_deadline(
    aiohttp_client, server: UpdateServer
) -> None:
    client, registry = await _bridge(aiohttp_client, server.url, "cache_for = 0\n")
    assert (await scrape_families(client, "releases"))[0] == 200
    server.mode = "slow"
    started = time.monotonic()
    status, families = await scrape_families(client, "releases")
    assert status == 200 and families["os_release_newest_info"]
    assert time.monotonic() - started < 3
    assert sample(registry, REQUESTS, selector="releases", outcome="last_good") == 1


async def test_no_age_before_a_first_answer(aiohttp_client) -> None:
    client, registry = await _bridge(aiohttp_client, f"http://{LOOPBACK}:{free_port()}")
    assert (await scrape_families(client, "releases"))[0] == 503
    assert registry.get_sample_value(AGE, {"selector": "releases"}) is None


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ('url = "ftp://updates.example"\nstream = "stable"', "url: must be an http:// or https:// URL with a host"),
        ('url = "https://updates.example/v1/graph?stream=x"\nstream = "stable"', "url: must be the server's base URL"),
        ('url = "https://updates.example"', "stream: is required"),
        ('url = "https://updates.example"\nstream = ""', "stream: must not be empty"),
        ('url = "https://updates.example"\nstream = "stable"\ncache_for = -1', "cache_for"),
        (
            'url = "https://u.example"\nstream = "stable"\nbearer_token_file = "t"',
            "bearer_token_file: must be an absolute",
        ),
    ],
)
def test_config_problems_name_the_key(lines: str, problem: str) -> None:
    text = f'[bridge.selectors.releases]\nkind = "cincinnati"\n{lines}\n'
    with pytest.raises(config.ConfigError) as caught:
        config.parse(text, "c.toml")
    assert any("bridge.selectors.releases" in p and problem in p for p in caught.value.problems), caught.value.problems
