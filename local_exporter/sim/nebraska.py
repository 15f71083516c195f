"""A simulated Nebraska (agents/nebraska.py) for the simulated Flatcar hosts: its /metrics and the
REST API's applications, channels and groups, one app serving both.

/metrics: what the real one would count of the hosts. Each host's latest version per channel,
and every error event its update_engine sent (a failed install; a failed check's event goes to
the same failing server and is not counted). Stale combinations keep their last value, as
Nebraska's gauges do.

The API (`GET /api/apps`, `/api/apps/{app}/channels`, `/api/apps/{app}/groups`, paged): the
Flatcar application (its real id) with a channel and a group for each Flatcar group the scenario
uses (the hosts' and its releases'). Groups and channels named like Nebraska's stock ones
(`stable`, `beta`, `alpha`, `edge`) keep their ids and names (db/migrations 0006-0009, amd64);
others get ids of their own. A channel's package is the newest Flatcar release out on the group
(`Fleet.flatcar_channel`, the answer the hosts get), before any the version the hosts booted.
A group's policy: updates enabled, safe mode and office hours off, UTC, a 60-minute update
timeout, and the rate of its channel's rollout: for a release with a `rollout` window, the
group's hosts per window (in wall time, rounded up to whole minutes), otherwise Nebraska's stock
"no limit" (999999 a minute). The hosts are let through spread over the window
(`Fleet.flatcar_offer`), so the limit holds without binding: Nebraska's first-come-first-served
count per period is not modelled.
`rollout_in_progress` is true from the first host let through until every host of the group
runs the channel's version.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import math
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from local_exporter.agents import nebraska as api
from local_exporter.sim.flatcar import PAYLOAD_BYTES
from local_exporter.sim.fleet import Fleet
from local_exporter.sim.scenario import FLATCAR, ReleaseSpec

#: Nebraska's stock Flatcar channels and groups (amd64): channel id and color, created; group id,
#: name and description, created (db/migrations/0006_initial_application.sql, 0008, 0009).
_STOCK: dict[str, tuple[str, str, str, str, str, str, str]] = {
    "stable": (
        "e06064ad-4414-4904-9a6e-fd465593d1b2", "#14b9d6", "2015-09-19T05:09:34.261241Z",
        "9a2deb70-37be-4026-853f-bfdd6b347bbe", "Stable (AMD64)", "For production clusters (AMD64)",
        "2015-09-19T05:09:34.269062Z",
    ),
    "beta": (
        "128b8c29-5058-4643-8e67-a1a0e3c641c9", "#fc7f33", "2015-09-19T05:09:34.264334Z",
        "3fe10490-dd73-4b49-b72a-28ac19acfcdc", "Beta (AMD64)",
        "Promoted alpha releases, to catch bugs specific to your configuration (AMD64)",
        "2015-09-19T05:09:34.273244Z",
    ),
    "alpha": (
        "a87a03ad-4984-47a1-8dc4-3507bae91ee1", "#1fbb86", "2015-09-19T05:09:34.265754Z",
        "5b810680-e36a-4879-b98a-4f989e80b899", "Alpha (AMD64)",
        "Tracks current development work and is released frequently (AMD64)",
        "2015-09-19T05:09:34.274911Z",
    ),
    "edge": (
        "72834a2b-ad86-4d6d-b498-e08a19ebe54e", "#f44e3b", "2015-09-19T05:09:34.265754Z",
        "72834a2b-ad86-4d6d-b498-e08a19ebe54e", "Edge (AMD64)", "Experimental features and patches (AMD64)",
        "2018-04-10T10:25:39.677359Z",
    ),
}  # fmt: skip
#: The stock application's description and creation time stand in for its row.
_APPLICATION = ("Linux for massive server deployments", "2019-09-05T10:41:09.265687Z")
_AMD64 = 1
_NAMESPACE = uuid.UUID(api.FLATCAR_APP_ID)
#: A group's policy with no limit, as Nebraska's stock groups have it.
_UNLIMITED = ("1 minutes", 999_999)
_UPDATE_TIMEOUT = "60 minutes"
_TIMEZONE = "UTC"


def go_time(unix: float) -> str:
    """A timestamptz as Nebraska's JSON has it (Go's RFC 3339 with nanoseconds, trailing zeros
    dropped, Postgres' microseconds)."""
    moment = datetime.datetime.fromtimestamp(round(unix, 6), datetime.UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + "Z"


@dataclass(frozen=True)
class PageQuery:
    page: int
    per_page: int


class PageError(Exception):
    """A request the API refuses: its status and its JSON body."""

    def __init__(self, status: int, body: Mapping[str, str]) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = dict(body)


def read_page_query(query: Mapping[str, str]) -> PageQuery:
    """`page` and `perpage` as Nebraska takes them: the spec's validator first (integers, page at
    least 0, perpage at least 10: else 400 `{"message"}`), then the handler's defaults (1, 10) and
    dbreads' (page 0 is page 1)."""
    values: dict[str, int] = {}
    for name, default, low in ((api.PAGE, api.DEFAULT_PAGE, 0), (api.PER_PAGE, api.DEFAULT_PER_PAGE, api.MIN_PER_PAGE)):
        text = query.get(name)
        if text is None:
            values[name] = default
            continue
        try:
            number = int(text)
        except ValueError:
            message = f'parameter "{name}" in query has an error: value {text}: an invalid integer: invalid syntax'
            raise PageError(400, {"message": message}) from None
        if number < low:
            message = f'parameter "{name}" in query has an error: number must be at least {low}'
            raise PageError(400, {"message": message})
        values[name] = number
    return PageQuery(max(values[api.PAGE], 1), values[api.PER_PAGE])


def page_document(items: Sequence[Any], key: str, query: PageQuery) -> dict[str, Any]:
    """One page of `items` (handler channelsPage, groupsPage, applicationPage): an empty page's
    list is null, as Go encodes a nil slice."""
    start = (query.page - 1) * query.per_page
    listed = list(items[start : start + query.per_page])
    return {api.TOTAL_COUNT: len(items), api.COUNT: len(listed), key: listed or None}


class NebraskaMetrics:
    """The simulated Nebraska: /metrics and the API, at the fleet's current time."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.registry = CollectorRegistry()
        # prometheus_client names a gauge as given: the real names, no suffix added.
        self._instances = Gauge(
            api.INSTANCES_PER_CHANNEL,
            "Number of applications from specific channel running on instances",
            ["application", "version", "channel"],
            registry=self.registry,
        )
        self._failed = Gauge(
            api.FAILED_UPDATES, "Number of failed updates of an application", ["application"], registry=self.registry
        )
        scenario = fleet.scenario
        names = [scenario.flatcar.group] if scenario.flatcar is not None else []
        names += [release.stream for release in scenario.releases if release.os == FLATCAR]
        #: Nebraska's groups, one per Flatcar group the scenario uses, each with its channel.
        self.group_names = tuple(dict.fromkeys(names))

    # --- /metrics -------------------------------------------------------------------------------

    def refresh(self) -> None:
        counts: dict[tuple[str, str], int] = {}
        failed = 0
        for host in self.fleet.flatcar:
            key = (host.agent.version, host.agent.config.group)
            counts[key] = counts.get(key, 0) + 1
            failed += host.agent.install_failures
        # A combination no host has any more keeps its last value: set, never removed.
        for (version, channel), count in counts.items():
            self._instances.labels(api.FLATCAR_APPLICATION, version, channel).set(count)
        self._failed.labels(api.FLATCAR_APPLICATION).set(failed)

    # --- the API --------------------------------------------------------------------------------

    def channel(self, name: str, t: float) -> dict[str, Any]:
        """The channel `name` at scenario time `t`, as Nebraska's JSON has it (types/channel.go)."""
        channel_id, color, created = self._stock_channel(name)
        release = self.fleet.flatcar_channel(name, t)
        package = self._package(release) if release is not None else None
        return {
            "id": channel_id,
            "name": name,
            "color": color,
            "created_ts": created,
            "application_id": api.FLATCAR_APP_ID,
            "package_id": package["id"] if package is not None else None,
            "package": package,
            "arch": _AMD64,
        }

    def group(self, name: str, t: float) -> dict[str, Any]:
        """The group `name` (its track) at scenario time `t` (types/group.go), with its channel."""
        channel = self.channel(name, t)
        group_id, title, description, created = self._stock_group(name)
        period, most = self.policy(name, t)
        return {
            "id": group_id,
            "name": title,
            "description": description,
            "created_ts": created,
            "rollout_in_progress": self.rollout_in_progress(name, t),
            "application_id": api.FLATCAR_APP_ID,
            "channel_id": channel["id"],
            "policy_updates_enabled": True,
            "policy_safe_mode": False,
            "policy_office_hours": False,
            "policy_timezone": _TIMEZONE,
            "policy_period_interval": period,
            "policy_max_updates_per_period": most,
            "policy_update_timeout": _UPDATE_TIMEOUT,
            "channel": channel,
            "track": name,
        }

    def policy(self, name: str, t: float) -> tuple[str, int]:
        """The group's `policy_period_interval` and `policy_max_updates_per_period` at `t`: its
        channel's rollout as a rate, the group's hosts per rollout window (wall time, whole
        minutes, at least one); Nebraska's stock "no limit" without a window."""
        release = self.fleet.flatcar_channel(name, t)
        if release is None or release.rollout <= 0:
            return _UNLIMITED
        clock = self.fleet.clock
        wall = clock(release.at + release.rollout) - clock(release.at)
        return f"{max(1, math.ceil(round(wall / 60, 6)))} minutes", max(1, len(self._hosts(name)))

    def rollout_in_progress(self, name: str, t: float) -> bool:
        release = self.fleet.flatcar_channel(name, t)
        if release is None:
            return False
        hosts = self._hosts(name)
        behind = any(api.update_available(host.agent.version, release.version) for host in hosts)
        started = any(self.fleet.flatcar_offer(host, t) is not None or host.agent.installed for host in hosts)
        return behind and started

    def application(self, t: float) -> dict[str, Any]:
        """The Flatcar application (types/application.go), its groups and channels in full."""
        description, created = _APPLICATION
        return {
            "id": api.FLATCAR_APP_ID,
            "product_id": None,
            "name": api.FLATCAR_APPLICATION,
            "description": description,
            "created_ts": created,
            "groups": self.groups(t),
            "channels": self.channels(t),
            "instances": {"count": len(self.fleet.flatcar)},
        }

    def channels(self, t: float) -> list[dict[str, Any]]:
        """Every channel, by name (dbreads channelsQuery)."""
        return [self.channel(name, t) for name in sorted(self.group_names)]

    def groups(self, t: float) -> list[dict[str, Any]]:
        """Every group, newest first (dbreads groupsQuery)."""
        groups = [self.group(name, t) for name in self.group_names]
        return sorted(groups, key=lambda group: group["created_ts"], reverse=True)

    def _hosts(self, name: str) -> list[Any]:
        return [host for host in self.fleet.flatcar if host.agent.config.group == name]

    def _stock_channel(self, name: str) -> tuple[str, str, str]:
        stock = _STOCK.get(name)
        if stock is not None:
            return stock[0], stock[1], stock[2]
        return str(uuid.uuid5(_NAMESPACE, f"channel:{name}")), "#777777", go_time(self.fleet.clock(0.0))

    def _stock_group(self, name: str) -> tuple[str, str, str, str]:
        stock = _STOCK.get(name)
        if stock is not None:
            return stock[3], stock[4], stock[5], stock[6]
        title = f"{name.capitalize()} (AMD64)"
        return str(uuid.uuid5(_NAMESPACE, f"group:{name}")), title, "", go_time(self.fleet.clock(0.0))

    def _package(self, release: ReleaseSpec) -> dict[str, Any]:
        """The Flatcar update package of `release` (types/package.go), with its postinstall action."""
        version = release.version
        package_id = str(uuid.uuid5(_NAMESPACE, f"package:{version}"))
        created = go_time(self.fleet.clock(max(release.at, 0.0)))
        # The payload's SHA-1 and SHA-256, base64, as Nebraska stores them.
        payload = f"flatcar_production_update.gz {version}".encode()
        sha1 = base64.b64encode(hashlib.sha1(payload).digest()).decode()
        sha256 = base64.b64encode(hashlib.sha256(payload).digest()).decode()
        return {
            "id": package_id,
            "type": 1,  # PkgTypeFlatcar
            "version": version,
            "url": f"https://update.release.flatcar-linux.net/amd64-usr/{version}/",
            "filename": "flatcar_production_update.gz",
            "description": f"Flatcar Container Linux {version}",
            "size": str(PAYLOAD_BYTES),
            "hash": sha1,
            "created_ts": created,
            "channels_blacklist": None,
            "application_id": api.FLATCAR_APP_ID,
            "flatcar_action": {
                "id": str(uuid.uuid5(_NAMESPACE, f"action:{version}")),
                "event": "postinstall",
                "chromeos_version": "",
                "sha256": sha256,
                "needs_admin": False,
                "is_delta": False,
                "disable_payload_backoff": True,
                "metadata_signature_rsa": "",
                "metadata_size": "",
                "deadline": "",
                "created_ts": created,
            },
            "arch": _AMD64,
            "extra_files": None,
            "floor_reason": None,
        }

    # --- serving ----------------------------------------------------------------------------------

    def answer(self, listing: str, app: str | None, query: Mapping[str, str], t: float) -> tuple[int, Any]:
        """`GET /api/apps` (`listing` "applications") or `/api/apps/{app}/{listing}` ("channels",
        "groups") with `query` at scenario time `t`: the status and the JSON body. The page
        parameters are validated first (the spec's validator), then the app looked up."""
        try:
            page = read_page_query(query)
        except PageError as refused:
            return refused.status, refused.body
        if listing == api.APPLICATIONS:
            return 200, page_document([self.application(t)], api.APPLICATIONS, page)
        if app is None or _app_id(app) != api.FLATCAR_APP_ID:
            return 400, {"message": f"App not found for :{app}"}
        if listing == api.CHANNELS:
            return 200, page_document(self.channels(t), api.CHANNELS, page)
        return 200, page_document(self.groups(t), api.GROUPS, page)

    def app(self, now: Callable[[], float] | None = None) -> web.Application:
        """/metrics and the API, at scenario time `now()` (the fleet's current time by default)."""
        clock = now or (lambda: self.fleet.now)

        async def metrics(_: web.Request) -> web.Response:
            self.refresh()
            return web.Response(body=generate_latest(self.registry), content_type="text/plain", charset="utf-8")

        def listing(name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
            async def handle(request: web.Request) -> web.Response:
                status, body = self.answer(name, request.match_info.get("app"), request.query, clock())
                # echo's ctx.JSON (v4.15): compact JSON and a newline, `application/json`.
                text = json.dumps(body, separators=(",", ":"), ensure_ascii=False) + "\n"
                return web.Response(status=status, body=text.encode(), content_type="application/json")

            return handle

        application = web.Application()
        application.router.add_get("/metrics", metrics)
        application.router.add_get(api.APPS_PATH, listing(api.APPLICATIONS))
        # Any path segment, braces included (GetAppID strips them).
        application.router.add_get(api.channels_path("{app:[^/]+}"), listing(api.CHANNELS))
        application.router.add_get(api.groups_path("{app:[^/]+}"), listing(api.GROUPS))
        return application


def _app_id(given: str) -> str:
    """dbreads GetAppID: spaces and surrounding braces trimmed, case-insensitive (the product id
    would do too, but the Flatcar application has none)."""
    text = given.strip()
    if len(text) > 2 and text[0] == "{" and text[-1] == "}":
        text = text[1:-1].strip()
    return text.lower()
