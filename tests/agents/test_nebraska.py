"""Nebraska's API as flatcar/nebraska 30a488d8 defines it (backend/): the pages of
pkg/handler (app.go, channels.go, groups.go), the JSON fields of pkg/api/internal/types
(channel.go, group.go, package.go), the Postgres intervals of a group's policy
(db/migrations/0001_initial.sql, 0006_initial_application.sql), and what pkg/api/updates.go offers
a host."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from local_exporter.agents import nebraska as api

STABLE_CHANNEL = "e06064ad-4414-4904-9a6e-fd465593d1b2"


def _channel(version: str | None = "4230.2.1") -> dict[str, Any]:
    """A channel as types/channel.go serializes it, its package as types/package.go does."""
    package = None
    if version is not None:
        package = {
            "id": "84b4c599-9b6b-44a8-b13c-d4263fff0403",
            "type": 1,
            "version": version,
            "url": f"https://update.release.flatcar-linux.net/amd64-usr/{version}/",
            "filename": "flatcar_production_update.gz",
            "description": None,
            "size": "465881871",
            "hash": "r3nufcxgMTZaxYEqL+x2zIoeClk=",
            "created_ts": "2019-09-05T10:41:09.265687Z",
            "channels_blacklist": None,
            "application_id": api.FLATCAR_APP_ID,
            "flatcar_action": None,
            "arch": 1,
            "extra_files": None,
            "floor_reason": None,
        }
    return {
        "id": STABLE_CHANNEL,
        "name": "stable",
        "color": "#14b9d6",
        "created_ts": "2015-09-19T05:09:34.261241Z",
        "application_id": api.FLATCAR_APP_ID,
        "package_id": package["id"] if package else None,
        "package": package,
        "arch": 1,
    }


def _group(**changes: Any) -> dict[str, Any]:
    """The stock Stable group (migration 0006) as types/group.go serializes it."""
    group = {
        "id": "9a2deb70-37be-4026-853f-bfdd6b347bbe",
        "name": "Stable (AMD64)",
        "description": "For production clusters (AMD64)",
        "created_ts": "2015-09-19T05:09:34.269062Z",
        "rollout_in_progress": False,
        "application_id": api.FLATCAR_APP_ID,
        "channel_id": STABLE_CHANNEL,
        "policy_updates_enabled": True,
        "policy_safe_mode": False,
        "policy_office_hours": False,
        "policy_timezone": "Europe/Berlin",
        "policy_period_interval": "1 minutes",
        "policy_max_updates_per_period": 999999,
        "policy_update_timeout": "60 minutes",
        "channel": _channel(),
        "track": "stable",
    }
    group.update(changes)
    return group


def test_handler_groups_go_a_page_of_groups_with_their_channel_and_policy() -> None:
    page = api.parse_groups({"totalCount": 1, "count": 1, "groups": [_group()]})
    assert page.total_count == 1
    (group,) = page.items
    assert (group.id, group.name, group.track, group.channel_id) == (
        "9a2deb70-37be-4026-853f-bfdd6b347bbe",
        "Stable (AMD64)",
        "stable",
        STABLE_CHANNEL,
    )
    assert group.channel is not None and group.channel.package_version == "4230.2.1"
    assert group.channel.arch_name == "amd64"
    assert group.policy_updates_enabled and not group.policy_safe_mode and not group.policy_office_hours
    assert (group.policy_timezone, group.period_seconds, group.update_timeout_seconds) == ("Europe/Berlin", 60, 3600)
    # The stock groups' 999999 with safe mode off is no limit at all (updates.go maxParallelUpdates).
    assert not group.limited
    assert (
        api.parse_groups({"totalCount": 1, "count": 1, "groups": [_group(policy_max_updates_per_period=2)]})
        .items[0]
        .limited
    )


def test_types_group_go_a_group_without_a_channel() -> None:
    # `channel,omitempty`: absent; channel_id and policy_timezone are null.String: null.
    raw = _group(channel_id=None, policy_timezone=None)
    del raw["channel"]
    (group,) = api.parse_groups({"totalCount": 1, "count": 1, "groups": [raw]}).items
    assert group.channel is None and group.channel_id is None and group.policy_timezone is None


def test_handler_channels_go_a_page_of_channels_and_a_channel_without_a_package() -> None:
    page = api.parse_channels({"totalCount": 2, "count": 2, "channels": [_channel(), _channel(None)]})
    assert [(c.name, c.package_version, c.package_id) for c in page.items] == [
        ("stable", "4230.2.1", "84b4c599-9b6b-44a8-b13c-d4263fff0403"),
        ("stable", None, None),
    ]


def test_handler_a_page_past_the_end_lists_null() -> None:
    # Go encodes the empty (nil) slice of a page past the end as null.
    assert api.parse_channels({"totalCount": 1, "count": 0, "channels": None}) == api.Page(1, ())
    assert api.parse_groups({"totalCount": 0, "count": 0, "groups": []}) == api.Page(0, ())


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ([], "not a page of groups: a JSON array"),
        ({"count": 1, "groups": []}, "groups: no 'totalCount'"),
        ({"totalCount": 1, "count": 1}, "no 'groups'"),
        ({"totalCount": 1, "count": 1, "groups": {}}, "groups: a JSON object, not an array"),
        ({"totalCount": 2, "count": 2, "groups": [_group()]}, "count is 2 but 1 are listed"),
        ({"totalCount": 0, "count": 1, "groups": [_group()]}, "totalCount 0 is below count 1"),
        (
            {"totalCount": 1, "count": 1, "groups": [_group(policy_safe_mode="false")]},
            r"groups\[0\].policy_safe_mode: a boolean",
        ),
        ({"totalCount": 1, "count": 1, "groups": [_group(policy_max_updates_per_period=True)]}, "an integer expected"),
        ({"totalCount": 1, "count": 1, "groups": [_group(policy_max_updates_per_period=1.5)]}, "an integer expected"),
        ({"totalCount": 1, "count": 1, "groups": [_group(channel_id=3)]}, "a string or null expected"),
        ({"totalCount": 1, "count": 1, "groups": [_group(policy_period_interval="soon")]}, "not an interval: 'soon'"),
        ({"totalCount": 1, "count": 1, "groups": [_group(channel={"id": "x"})]}, r"groups\[0\].channel: no 'package'"),
        ({"totalCount": 1, "count": 1, "groups": ["x"]}, r"groups\[0\]: a JSON string, not an object"),
    ],
)
def test_a_group_page_of_the_wrong_shape_says_what_is_wrong_in_one_line(document: Any, reason: str) -> None:
    with pytest.raises(api.ApiError, match=reason) as raised:
        api.parse_groups(copy.deepcopy(document))
    assert "\n" not in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_a_channel_page_of_the_wrong_shape() -> None:
    broken = _channel()
    broken["package"] = {"id": "x"}
    with pytest.raises(api.ApiError, match=r"channels\[0\].package: no 'version'"):
        api.parse_channels({"totalCount": 1, "count": 1, "channels": [broken]})
    armless = {key: value for key, value in _channel().items() if key != "arch"}
    with pytest.raises(api.ApiError, match=r"channels\[0\]: no 'arch'"):
        api.parse_channels({"totalCount": 1, "count": 1, "channels": [armless]})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        # What Nebraska's groups hold (migration 0006) and what its UI writes.
        ("1 minutes", 60),
        ("60 minutes", 3600),
        ("1 hours", 3600),
        ("1 days", 86400),
        ("15 minutes", 900),
        # What Postgres reads besides.
        ("1 hour", 3600),
        ("2 weeks", 14 * 86400),
        ("1 hour 30 minutes", 5400),
        ("90min", 5400),
        ("1.5 hours", 5400),
        ("01:30:00", 5400),
        ("00:01", 60),
        ("30", 30),
        ("1 mon", 30 * 86400),
        ("1 year", 365.25 * 86400),
        ("@ 2 DAYS", 2 * 86400),
    ],
)
def test_postgres_intervals_in_seconds(text: str, seconds: float) -> None:
    assert api.parse_interval(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "minutes", "5 fortnights", "soon", "1 minutes and", "1:2:3:4"])
def test_what_postgres_would_not_read_is_an_api_error(text: str) -> None:
    with pytest.raises(api.ApiError, match="not an interval"):
        api.parse_interval(text)


def test_the_flatcar_application_and_the_api_paths() -> None:
    # db/migrations/0006_initial_application.sql and pkg/api/applications.go flatcarAppID.
    assert api.FLATCAR_APP_ID == "e96281a6-d1af-4bde-9a0a-97b76e56dc57"
    assert api.channels_path(api.FLATCAR_APP_ID) == f"/api/apps/{api.FLATCAR_APP_ID}/channels"
    assert api.groups_path("io.example.App") == "/api/apps/io.example.App/groups"
    # spec.yaml: page from 0, perpage at least 10; the handlers default them to 1 and 10.
    assert (api.PAGE, api.PER_PAGE, api.DEFAULT_PAGE, api.DEFAULT_PER_PAGE, api.MIN_PER_PAGE) == (
        "page",
        "perpage",
        1,
        10,
        10,
    )


@pytest.mark.parametrize(
    ("instance", "package", "offered"),
    [
        ("4152.2.0", "4230.2.1", True),
        ("4230.2.1", "4230.2.1", False),
        ("4230.2.1", "4152.2.0", False),  # never a downgrade
        ("4152.10.0", "4152.9.0", False),  # numeric, not lexical
        ("4230.2.1-rc1", "4230.2.1", True),  # a pre-release sorts before its release
        ("4230.2.1+build", "4230.2.1", False),  # build metadata does not count
        ("garbage", "4230.2.1", True),  # an unparsable version is 0.0.0 (the error is ignored)
    ],
)
def test_updates_go_a_host_behind_its_channel_is_offered_the_package(
    instance: str, package: str, offered: bool
) -> None:
    assert api.update_available(instance, package) is offered
