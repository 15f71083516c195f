"""`kind = "nebraska"` against real HTTP servers: the simulated Nebraska (its API's real JSON
shapes and paging, flatcar/nebraska backend/pkg/handler and types) and a server that fails the
ways servers do. Per track (update_engine's GROUP): the newest version from the group's channel
package, and the group's rollout policy; every page read; failures of a first read with their
status and one-line reason; the last good answer standing in afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from local_exporter.agents import nebraska as api
from local_exporter.bridge import config
from local_exporter.bridge.sources.nebraska import PER_PAGE
from local_exporter.sim import scenario_file
from local_exporter.sim.fleet import Fleet
from local_exporter.sim.nebraska import NebraskaMetrics
from tests.support.bridges import bridge_app, sample, scrape_families
from tests.support.update_servers import (
    FIRST_READ_FAILURES,
    UpdateServer,
    failing,
    first_read_fails,
    serving,
    serving_app,
)

REQUESTS = "local_exporter_bridge_requests_total"
START = 1_700_000_000


async def _bridge(aiohttp_client, url: str, extra: str = ""):  # type: ignore[no-untyped-def]
    registry = CollectorRegistry()
    text = f'[bridge.selectors.flatcar]\nkind = "nebraska"\nurl = "{url}"\ntimeout = 1\n{extra}'
    return await aiohttp_client(bridge_app(text, registry)), registry


async def test_each_track_s_newest_version_and_policy_from_the_simulated_nebraska(aiohttp_client) -> None:
    fleet = Fleet(scenario_file.preset("mixed"), lambda t: START + t)
    async with serving_app(NebraskaMetrics(fleet).app()) as url:
        client, _ = await _bridge(aiohttp_client, url)
        status, before = await scrape_families(client, "flatcar")
        fleet.advance(fleet.scenario.duration)
        client_after, _ = await _bridge(aiohttp_client, url)
        _, after = await scrape_families(client_after, "flatcar")
    assert status == 200
    stable = {"os": "flatcar", "stream": "stable"}
    assert before["os_release_newest_info"] == [({**stable, "version": "4152.2.0"}, 1)]
    # The release the scenario rolls out became the channel's package.
    assert after["os_release_newest_info"] == [({**stable, "version": "4230.2.1"}, 1)]
    [(labels, enabled)] = before["os_release_group_updates_enabled"]
    assert labels == {**stable, "group": "Stable (AMD64)"} and enabled == 1
    assert before["os_release_group_info"] == [({**stable, "group": "Stable (AMD64)", "channel": "stable"}, 1)]
    assert before["os_release_group_period_seconds"][0][1] > 0
    assert "os_release_rollout_planned_share" not in before


def _group(track: str, version: str) -> dict[str, Any]:
    channel = {"id": f"c-{track}", "name": track, "application_id": api.FLATCAR_APP_ID, "arch": 1}
    return {
        "id": f"g-{track}",
        "name": track.title(),
        "application_id": api.FLATCAR_APP_ID,
        "channel_id": channel["id"],
        "channel": {**channel, "package_id": "p", "package": {"version": version}},
        "track": track,
        "rollout_in_progress": True,
        "policy_updates_enabled": True,
        "policy_safe_mode": False,
        "policy_office_hours": False,
        "policy_timezone": "UTC",
        "policy_period_interval": "15 minutes",
        "policy_max_updates_per_period": 2,
        "policy_update_timeout": "60 minutes",
    }


def _page(number: int, groups: list[dict[str, Any]], total: int) -> tuple[str, dict[str, Any]]:
    path = f"{api.groups_path(api.FLATCAR_APP_ID)}?page={number}&perpage={PER_PAGE}"
    return path, {"totalCount": total, "count": len(groups), "groups": groups}


async def test_every_page_is_read_and_tracks_can_be_chosen(aiohttp_client) -> None:
    first = [_group(f"t{i:03}", f"4230.{i}.0") for i in range(PER_PAGE)]
    second = [_group("stable", "4230.2.1")]
    documents = dict((_page(1, first, PER_PAGE + 1), _page(2, second, PER_PAGE + 1)))
    async with serving(documents) as server:
        client, _ = await _bridge(aiohttp_client, server.url)
        status, every = await scrape_families(client, "flatcar")
        chosen, _ = await _bridge(aiohttp_client, server.url, 'tracks = ["stable"]\n')
        _, some = await scrape_families(chosen, "flatcar")
    assert status == 200 and len(every["os_release_newest_info"]) == PER_PAGE + 1
    assert some["os_release_newest_info"] == [({"os": "flatcar", "stream": "stable", "version": "4230.2.1"}, 1)]
    assert some["os_release_group_period_seconds"][0][1] == 900
    assert some["os_release_group_update_timeout_seconds"][0][1] == 3600


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"totalCount": 1, "count": 1}, "not a page of groups: no 'groups'"),
        ({"totalCount": 2, "count": 2, "groups": [_group("s", "1"), _group("s", "2")]}, "share track 's'"),
        ({"totalCount": 1, "count": 1, "groups": [{**_group("s", "1"), "policy_period_interval": "soon"}]}, "soon"),
    ],
)
async def test_a_wrong_shape_is_a_bad_payload(aiohttp_client, document: dict[str, Any], reason: str) -> None:
    async with serving({api.groups_path(api.FLATCAR_APP_ID): document}) as server:
        client, registry = await _bridge(aiohttp_client, server.url)
        async with client.get("/bridge?selector=flatcar") as response:
            assert response.status == 502
            text = await response.text()
    assert text.startswith("selector flatcar: bad_payload: GET ") and reason in text, text
    assert sample(registry, REQUESTS, selector="flatcar", outcome="bad_payload") == 1


@pytest.fixture
async def server() -> AsyncIterator[UpdateServer]:
    document = {"totalCount": 1, "count": 1, "groups": [_group("stable", "4230.2.1")]}
    async with serving({api.groups_path(api.FLATCAR_APP_ID): document}) as running:
        yield running


@pytest.mark.parametrize("failure", FIRST_READ_FAILURES, ids=[f[0] for f in FIRST_READ_FAILURES])
async def test_a_first_read_that_fails_gets_its_status(
    aiohttp_client, server: UpdateServer, failure: tuple[str, int, str, str]
) -> None:
    client, registry = await _bridge(aiohttp_client, failing(server, failure[0]), "max_bytes = 100000\n")
    await first_read_fails(client, registry, "flatcar", failure)


async def test_the_token_is_sent_and_the_last_good_answer_stands_in(
    aiohttp_client, server: UpdateServer, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    client, registry = await _bridge(aiohttp_client, server.url, f'cache_for = 0\nbearer_token_file = "{token}"\n')
    status, good = await scrape_families(client, "flatcar")
    assert status == 200 and server.requests[0][1]["Authorization"] == "Bearer s3cret"
    server.mode = "error"
    status, stood_in = await scrape_families(client, "flatcar")
    assert status == 200 and stood_in["os_release_newest_info"] == good["os_release_newest_info"]
    assert sample(registry, REQUESTS, selector="flatcar", outcome="last_good") == 1


async def test_an_unreadable_token_file_is_503(aiohttp_client, server: UpdateServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client, registry = await _bridge(aiohttp_client, server.url, f'bearer_token_file = "{tmp_path}/missing"\n')
    async with client.get("/bridge?selector=flatcar") as response:
        assert response.status == 503
        assert "bearer_token_file" in await response.text()
    assert not server.requests
    assert sample(registry, REQUESTS, selector="flatcar", outcome="unavailable") == 1


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ('url = "https://n.example"\napplication = ""', "application: must not be empty"),
        ('url = "https://n.example"\ntracks = "stable"', "tracks"),
        ("", "url: is required"),
    ],
)
def test_config_problems_name_the_key(lines: str, problem: str) -> None:
    text = f'[bridge.selectors.flatcar]\nkind = "nebraska"\n{lines}\n'
    with pytest.raises(config.ConfigError) as caught:
        config.parse(text, "c.toml")
    assert any("bridge.selectors.flatcar" in p and problem in p for p in caught.value.problems), caught.value.problems
