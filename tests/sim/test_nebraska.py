"""The simulated Nebraska (flatcar/nebraska 30a488d8, backend/).

/metrics counts as the real one's SQL does (pkg/api/internal/dbreads/metrics.go): instances by
version and channel, failed updates as every error event; a version no instance runs any more
keeps its last count.

The API over real HTTP (pkg/handler app.go, channels.go, groups.go; api/spec.yaml's validator):
the Flatcar application, its channel pointing at the newest release out, its group's policy, the
pages, and what the Flatcar hosts are offered (pkg/api/updates.go): their channel's package."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import aiohttp
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from local_exporter.agents import nebraska as api
from local_exporter.sim import scenario_file
from local_exporter.sim.fleet import Fleet
from local_exporter.sim.nebraska import NebraskaMetrics, go_time
from local_exporter.sim.scenario import FLATCAR, FlatcarFleetSpec, FleetSpec, ReleaseSpec, Scenario
from tests.support.update_servers import serving_app

START = 1_700_000_000
OLD, NEW = "4152.2.0", "4230.2.1"
RELEASE_AT, ROLLOUT = 300.0, 1800.0


def _samples(metrics: NebraskaMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    metrics.refresh()
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_instances_per_version_and_channel_and_failed_installs() -> None:
    fleet = Fleet(scenario_file.preset("mixed"), lambda t: 1_700_000_000 + t)
    metrics = NebraskaMetrics(fleet)
    app = (("application", api.FLATCAR_APPLICATION),)
    before = _samples(metrics)
    assert before[(api.INSTANCES_PER_CHANNEL, (*app, ("channel", "stable"), ("version", "4152.2.0")))] == 8
    assert before[(api.FAILED_UPDATES, app)] == 0
    fleet.advance(fleet.scenario.duration)
    after = _samples(metrics)
    # Every host but the one whose postinstall fails moved on; the old version keeps its count
    # of those still on it (one), and its failed installs were error events.
    assert after[(api.INSTANCES_PER_CHANNEL, (*app, ("channel", "stable"), ("version", "4230.2.1")))] == 7
    assert after[(api.INSTANCES_PER_CHANNEL, (*app, ("channel", "stable"), ("version", "4152.2.0")))] == 1
    assert after[(api.FAILED_UPDATES, app)] >= 1


# --- the API ------------------------------------------------------------------------------------------


def _mixed() -> Fleet:
    return Fleet(scenario_file.preset("mixed"), lambda t: START + t)


def _serving(nebraska: NebraskaMetrics) -> contextlib.AbstractAsyncContextManager[str]:
    return serving_app(nebraska.app())


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url) as response:
        assert response.headers["Content-Type"] == "application/json"
        return response.status, json.loads(await response.read())


async def test_the_api_lists_the_flatcar_application_its_channel_and_group() -> None:
    fleet = _mixed()
    nebraska = NebraskaMetrics(fleet)
    async with _serving(nebraska) as base, aiohttp.ClientSession() as session:
        status, apps = await _get(session, base + api.APPS_PATH)
        assert status == 200 and (apps["totalCount"], apps["count"]) == (1, 1)
        (app,) = apps["applications"]
        assert (app["id"], app["name"], app["product_id"]) == (api.FLATCAR_APP_ID, api.FLATCAR_APPLICATION, None)
        assert app["instances"] == {"count": 8} and len(app["groups"]) == len(app["channels"]) == 1

        # Before the release: the stable channel points at the version the hosts booted.
        status, document = await _get(session, base + api.channels_path(api.FLATCAR_APP_ID))
        channels = api.parse_channels(document)
        (channel,) = channels.items
        assert (status, channels.total_count) == (200, 1)
        # Nebraska's stock stable channel (db/migrations/0006), amd64.
        assert (channel.id, channel.name, channel.arch_name, channel.package_version) == (
            "e06064ad-4414-4904-9a6e-fd465593d1b2",
            "stable",
            "amd64",
            OLD,
        )
        assert set(document["channels"][0]) == {
            "id", "name", "color", "created_ts", "application_id", "package_id", "package", "arch",
        }  # fmt: skip
        package = document["channels"][0]["package"]
        assert package["type"] == 1 and package["flatcar_action"]["event"] == "postinstall"

        _, document = await _get(session, base + api.groups_path(api.FLATCAR_APP_ID))
        (group,) = api.parse_groups(document).items
        assert (group.id, group.name, group.track) == (
            "9a2deb70-37be-4026-853f-bfdd6b347bbe",
            "Stable (AMD64)",
            "stable",
        )
        assert group.channel == channel and group.channel_id == channel.id
        assert group.policy_updates_enabled and not group.policy_safe_mode and not group.policy_office_hours
        assert (group.policy_timezone, group.policy_update_timeout) == ("UTC", "60 minutes")
        # No rollout yet: Nebraska's stock "no limit".
        assert (group.policy_period_interval, group.policy_max_updates_per_period) == ("1 minutes", 999999)
        assert not group.limited and not group.rollout_in_progress

        # During the rollout: the channel points at the release, the policy states its rate
        # (the group's 8 hosts over the 30-minute window), a rollout is in progress.
        fleet.advance(RELEASE_AT + 900)
        _, document = await _get(session, base + api.groups_path(api.FLATCAR_APP_ID))
        (group,) = api.parse_groups(document).items
        assert group.channel is not None and group.channel.package_version == NEW
        assert (group.policy_period_interval, group.policy_max_updates_per_period) == ("30 minutes", 8)
        assert group.limited and group.rollout_in_progress
        assert document["groups"][0]["channel"]["package"]["created_ts"] == go_time(START + RELEASE_AT)

        # Once every host but the one whose installs fail runs it, still in progress; the
        # failing host is what keeps it so, as in Nebraska until every instance succeeded.
        fleet.advance(fleet.scenario.duration)
        _, document = await _get(session, base + api.groups_path(api.FLATCAR_APP_ID))
        assert document["groups"][0]["rollout_in_progress"] is True


@pytest.mark.parametrize(
    ("query", "status", "listed"),
    [
        ("", 200, 1),
        ("?page=1&perpage=10", 200, 1),
        ("?page=0", 200, 1),  # dbreads: page 0 is page 1
        ("?page=2", 200, None),  # past the end: count 0, the list null
        ("?perpage=50", 200, 1),
        ("?perpage=9", 400, 'parameter "perpage" in query has an error: number must be at least 10'),
        ("?page=-1", 400, 'parameter "page" in query has an error: number must be at least 0'),
        ("?page=x", 400, 'parameter "page" in query has an error: value x: an invalid integer: invalid syntax'),
    ],
)
async def test_pages_as_nebraska_pages(query: str, status: int, listed: int | str | None) -> None:
    nebraska = NebraskaMetrics(_mixed())
    async with _serving(nebraska) as base, aiohttp.ClientSession() as session:
        for path, key in (
            (api.channels_path(api.FLATCAR_APP_ID), api.CHANNELS),
            (api.groups_path(api.FLATCAR_APP_ID), api.GROUPS),
        ):
            got_status, document = await _get(session, base + path + query)
            assert got_status == status
            if isinstance(listed, str):
                assert document == {"message": listed}
                continue
            assert document["totalCount"] == 1 and document["count"] == (listed or 0)
            assert (document[key] is None) is (listed is None)
            parser = api.parse_channels if key == api.CHANNELS else api.parse_groups
            assert len(parser(document).items) == (listed or 0)


async def test_the_app_is_found_by_its_id_in_any_case_and_braces_else_400() -> None:
    nebraska = NebraskaMetrics(_mixed())
    async with _serving(nebraska) as base, aiohttp.ClientSession() as session:
        for given in (api.FLATCAR_APP_ID.upper(), "{" + api.FLATCAR_APP_ID + "}"):
            status, _ = await _get(session, base + api.channels_path(given))
            assert status == 200
        status, document = await _get(session, base + api.groups_path("io.example.nothing"))
        assert (status, document) == (400, {"message": "App not found for :io.example.nothing"})


def _two_channels() -> Fleet:
    """Flatcar hosts on `stable`, and a release on `beta` nobody follows."""
    scenario = Scenario(
        "channels",
        "",
        4 * 3600.0,
        FleetSpec(hosts=1, version="40.20240504.3.0"),
        (
            ReleaseSpec(NEW, RELEASE_AT, ROLLOUT, "stable", FLATCAR),
            ReleaseSpec("4264.0.0", 2 * 3600.0, 0.0, "beta", FLATCAR),
        ),
        flatcar=FlatcarFleetSpec(hosts=20, version=OLD),
    )
    return Fleet(scenario, lambda t: START + t)


def test_a_channel_per_group_each_its_newest_release_out() -> None:
    fleet = _two_channels()
    nebraska = NebraskaMetrics(fleet)
    assert nebraska.group_names == ("stable", "beta")
    listed = nebraska.channels(0.0)
    channels = api.parse_channels({"totalCount": 2, "count": 2, "channels": listed})
    # By name; beta has no package until its release is out.
    assert [(c.name, c.package_version) for c in channels.items] == [("beta", None), ("stable", OLD)]
    assert listed[0]["id"] == "128b8c29-5058-4643-8e67-a1a0e3c641c9"  # Nebraska's stock beta
    later = api.parse_channels({"totalCount": 2, "count": 2, "channels": nebraska.channels(2 * 3600.0)})
    assert [(c.name, c.package_version) for c in later.items] == [("beta", "4264.0.0"), ("stable", NEW)]
    # Groups newest first: the stock Stable was created before the stock Beta.
    assert [g["track"] for g in nebraska.groups(0.0)] == ["beta", "stable"]
    # The stable group's 20 hosts over the 30-minute window...
    assert nebraska.policy("stable", RELEASE_AT) == ("30 minutes", 20)
    # ...and a release without a window on a group nobody follows: no limit.
    assert nebraska.policy("beta", 2 * 3600.0) == ("1 minutes", 999999)


def test_flatcar_hosts_are_offered_their_channels_package_within_the_policys_rate() -> None:
    fleet = _two_channels()
    nebraska = NebraskaMetrics(fleet)
    granted: list[float] = []
    for t in range(0, 4 * 3600, 30):
        fleet.advance(float(t))
        channel = fleet.flatcar_channel("stable", t)
        assert channel is not None
        for host in fleet.flatcar:
            offer = fleet.flatcar_offer(host, t)
            # Nebraska's answer is the channel's package or nothing, never another version...
            assert offer in (None, channel.version)
            # ...and nothing to a host already on it.
            if host.agent.version == channel.version:
                assert offer is None
        granted.append(sum(fleet.flatcar_offer(h, t) is not None or h.agent.version == NEW for h in fleet.flatcar))
    assert all(host.agent.version == NEW for host in fleet.flatcar)
    # Let through over the window, never more than the policy's hosts per period.
    period, most = nebraska.policy("stable", RELEASE_AT)
    assert (period, most) == ("30 minutes", 20)
    times = list(range(0, 4 * 3600, 30))
    first = [next(t for t, count in zip(times, granted, strict=True) if count > k) for k in range(most)]
    assert RELEASE_AT <= first[0] < RELEASE_AT + ROLLOUT / 4
    assert first[-1] > RELEASE_AT + 3 * ROLLOUT / 4
    assert first[-1] <= RELEASE_AT + ROLLOUT + 30
    window = api.parse_interval(period)
    assert all(sum(1 for other in first if t <= other < t + window) <= most for t in first)
