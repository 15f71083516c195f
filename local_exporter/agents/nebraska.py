"""Nebraska, Flatcar's update server, as its sources define it: its Prometheus metrics, the REST
API's channels and groups (a group's channel and rollout policy), and what it answers a host.

flatcar/nebraska 30a488d8, under backend/:
- pkg/metrics/metrics.go (the families, refreshed every NEBRASKA_METRICS_UPDATE_INTERVAL, 15 s
  by default) and pkg/api/internal/dbreads/metrics.go (what they count). Both are gauges set
  from SQL at each refresh:
  - instances per (application, version, channel): every instance's latest reported version of
    the application, by its group's channel; a combination no instance has any more keeps its
    last value (the gauge is set, never deleted);
  - failed updates per application: every error event (type 3, result 0) ever recorded, so it
    only grows.
- api/spec.yaml and pkg/handler (app.go, channels.go, groups.go): `GET /api/apps`,
  `/api/apps/{appIDorProductID}/channels` and `.../groups`, each a page
  `{"totalCount", "count", "applications"|"channels"|"groups"}` (`page` from 1, `perpage` at
  least 10 by the spec's validator, 10 by default; a page past the end lists `null`, as Go
  encodes an empty slice).
- pkg/api/internal/types (group.go, channel.go, package.go, application.go): the JSON field names
  (`Channel`, `Group` here); a group's policy values are the effective ones.
- pkg/api/updates.go: a host behind its group's channel's package (semver) is offered that
  package, within the group's rollout policy (`update_available`, `NO_LIMIT`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

INSTANCES_PER_CHANNEL = "nebraska_application_instances_per_channel"
FAILED_UPDATES = "nebraska_failed_updates"
#: The application Flatcar's update_engine asks for (its app id's name in Nebraska).
FLATCAR_APPLICATION = "Flatcar Container Linux"
#: Its id, the same in every Nebraska (db/migrations/0006_initial_application.sql;
#: pkg/api/applications.go `flatcarAppID`).
FLATCAR_APP_ID = "e96281a6-d1af-4bde-9a0a-97b76e56dc57"
#: The port Nebraska serves its API, the Omaha endpoint and /metrics on.
PORT = 8000

# --- the REST API -------------------------------------------------------------------------------

APPS_PATH = "/api/apps"


def channels_path(app: str) -> str:
    """`GET` a page of the application's channels (by its id or product id), by name."""
    return f"{APPS_PATH}/{app}/channels"


def groups_path(app: str) -> str:
    """`GET` a page of the application's groups, newest first."""
    return f"{APPS_PATH}/{app}/groups"


#: The page query parameters (spec.yaml: `page` at least 0, `perpage` at least 10; the handlers
#: default them to 1 and 10, and dbreads counts page 0 as 1).
PAGE, PER_PAGE = "page", "perpage"
DEFAULT_PAGE, DEFAULT_PER_PAGE, MIN_PER_PAGE = 1, 10, 10
#: A page's keys besides its list (handler `applicationPage`, `channelsPage`, `groupsPage`).
TOTAL_COUNT, COUNT = "totalCount", "count"
APPLICATIONS, CHANNELS, GROUPS = "applications", "channels", "groups"
#: A channel's `arch` (types/arch.go): 0 all, 1 amd64, 2 aarch64, 3 x86.
ARCHES = ("all", "amd64", "aarch64", "x86")
#: A `policy_max_updates_per_period` this large, with safe mode off, is no limit at all
#: (updates.go `maxParallelUpdates`).
NO_LIMIT = 900_000

#: The JSON fields of a channel and of a group the parsers read (types/channel.go, group.go);
#: others (`color`, `created_ts`, `description`, ...) are allowed and ignored.
CHANNEL_FIELDS = ("id", "name", "application_id", "package_id", "package", "arch")
GROUP_FIELDS = (
    "id",
    "name",
    "application_id",
    "channel_id",
    "channel",
    "track",
    "rollout_in_progress",
    "policy_updates_enabled",
    "policy_safe_mode",
    "policy_office_hours",
    "policy_timezone",
    "policy_period_interval",
    "policy_max_updates_per_period",
    "policy_update_timeout",
)


class ApiError(ValueError):
    """A document that is not the shape Nebraska's API serves; the message is one line."""


@dataclass(frozen=True)
class Channel:
    id: str
    name: str
    application_id: str
    #: types/arch.go: an index into ARCHES.
    arch: int
    #: The package the channel points to (its `package.version`), None without one.
    package_version: str | None
    package_id: str | None = None

    @property
    def arch_name(self) -> str:
        return ARCHES[self.arch] if 0 <= self.arch < len(ARCHES) else f"Arch({self.arch})"


@dataclass(frozen=True)
class Group:
    id: str
    name: str
    application_id: str
    channel_id: str | None
    #: The group's channel with its package (absent when the group has none).
    channel: Channel | None
    #: The Omaha track hosts ask for (update_engine's GROUP).
    track: str
    rollout_in_progress: bool
    policy_updates_enabled: bool
    policy_safe_mode: bool
    policy_office_hours: bool
    policy_timezone: str | None
    #: Postgres intervals, as stored ("60 minutes"): `period_seconds`, `update_timeout_seconds`.
    policy_period_interval: str
    policy_max_updates_per_period: int
    policy_update_timeout: str

    @property
    def period_seconds(self) -> float:
        return parse_interval(self.policy_period_interval)

    @property
    def update_timeout_seconds(self) -> float:
        return parse_interval(self.policy_update_timeout)

    @property
    def limited(self) -> bool:
        """Whether the policy limits grants at all (updates.go enforceRolloutPolicy)."""
        return self.policy_safe_mode or self.policy_max_updates_per_period < NO_LIMIT


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing: the items on it, and how many there are in all."""

    total_count: int
    items: tuple[T, ...]


def parse_channels(document: Any) -> Page[Channel]:
    """A page of `GET /api/apps/{app}/channels`, already decoded; ApiError when it is not one."""
    return _page(document, CHANNELS, _channel)


def parse_groups(document: Any) -> Page[Group]:
    """A page of `GET /api/apps/{app}/groups`, already decoded; ApiError when it is not one."""
    return _page(document, GROUPS, _group)


def _page(document: Any, key: str, item: Callable[[Any, str], T]) -> Page[T]:
    if not isinstance(document, dict):
        raise ApiError(f"not a page of {key}: a JSON {_kind(document)}")
    total = _field(document, TOTAL_COUNT, int, key)
    count = _field(document, COUNT, int, key)
    raw = document.get(key, _MISSING)
    if raw is _MISSING:
        raise ApiError(f"not a page of {key}: no {key!r}")
    if raw is None:
        raw = []  # an empty page: Go encodes the nil slice as null
    if not isinstance(raw, list):
        raise ApiError(f"{key}: a JSON {_kind(raw)}, not an array")
    if count != len(raw):
        raise ApiError(f"{key}: count is {count} but {len(raw)} are listed")
    if total < count:
        raise ApiError(f"{key}: totalCount {total} is below count {count}")
    return Page(total, tuple(item(entry, f"{key}[{index}]") for index, entry in enumerate(raw)))


def _channel(raw: Any, where: str) -> Channel:
    if not isinstance(raw, dict):
        raise ApiError(f"{where}: a JSON {_kind(raw)}, not an object")
    package = raw.get("package", _MISSING)
    if package is _MISSING:
        raise ApiError(f"{where}: no 'package'")
    version = None
    if package is not None:
        if not isinstance(package, dict):
            raise ApiError(f"{where}.package: a JSON {_kind(package)}, not an object")
        version = _field(package, "version", str, f"{where}.package")
    return Channel(
        _field(raw, "id", str, where),
        _field(raw, "name", str, where),
        _field(raw, "application_id", str, where),
        _field(raw, "arch", int, where),
        version,
        _field(raw, "package_id", str, where, nullable=True),
    )


def _group(raw: Any, where: str) -> Group:
    if not isinstance(raw, dict):
        raise ApiError(f"{where}: a JSON {_kind(raw)}, not an object")
    channel = raw.get("channel")  # `channel,omitempty`: absent without one
    period = _field(raw, "policy_period_interval", str, where)
    timeout = _field(raw, "policy_update_timeout", str, where)
    for name, value in (("policy_period_interval", period), ("policy_update_timeout", timeout)):
        try:
            parse_interval(value)
        except ApiError as exc:
            raise ApiError(f"{where}.{name}: {exc}") from None
    return Group(
        _field(raw, "id", str, where),
        _field(raw, "name", str, where),
        _field(raw, "application_id", str, where),
        _field(raw, "channel_id", str, where, nullable=True),
        _channel(channel, f"{where}.channel") if channel is not None else None,
        _field(raw, "track", str, where),
        _field(raw, "rollout_in_progress", bool, where),
        _field(raw, "policy_updates_enabled", bool, where),
        _field(raw, "policy_safe_mode", bool, where),
        _field(raw, "policy_office_hours", bool, where),
        _field(raw, "policy_timezone", str, where, nullable=True),
        period,
        _field(raw, "policy_max_updates_per_period", int, where),
        timeout,
    )


_MISSING = object()
_JSON_KINDS = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}


def _kind(value: Any) -> str:
    return "null" if value is None else _JSON_KINDS.get(type(value), type(value).__name__)


def _field(raw: Mapping[str, Any], name: str, kind: type, where: str, *, nullable: bool = False) -> Any:
    value = raw.get(name, _MISSING)
    if value is _MISSING:
        raise ApiError(f"{where}: no {name!r}")
    if value is None and nullable:
        return None
    # JSON has one number type: an integer field takes whole numbers only, never a boolean.
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = {str: "a string", int: "an integer", bool: "a boolean"}[kind]
        null = " or null" if nullable else ""
        raise ApiError(f"{where}.{name}: {expected}{null} expected, got a JSON {_kind(value)}")
    return value


# --- Postgres intervals --------------------------------------------------------------------------

#: Postgres' interval units (src/backend/utils/adt/datetime.c, deltatktbl), in seconds as
#: `EXTRACT(EPOCH FROM interval)` counts them: a month is 30 days, a year 365.25 days.
_DAY = 86400.0
_UNITS: dict[str, float] = {
    **dict.fromkeys(("microsecond", "microseconds", "us", "usec", "usecs"), 1e-6),
    **dict.fromkeys(("millisecond", "milliseconds", "ms", "msec", "msecs"), 1e-3),
    **dict.fromkeys(("second", "seconds", "s", "sec", "secs"), 1.0),
    **dict.fromkeys(("minute", "minutes", "m", "min", "mins"), 60.0),
    **dict.fromkeys(("hour", "hours", "h", "hr", "hrs"), 3600.0),
    **dict.fromkeys(("day", "days", "d"), _DAY),
    **dict.fromkeys(("week", "weeks", "w"), 7 * _DAY),
    **dict.fromkeys(("month", "months", "mon", "mons"), 30 * _DAY),
    **dict.fromkeys(("year", "years", "y", "yr", "yrs"), 365.25 * _DAY),
    **dict.fromkeys(("decade", "decades", "dec", "decs"), 3652.5 * _DAY),
    **dict.fromkeys(("century", "centuries", "c", "cent"), 36525 * _DAY),
    **dict.fromkeys(("millennium", "millennia", "mil", "mils"), 365250 * _DAY),
}
_TERM = re.compile(
    r"\s*(?:(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*(?P<unit>[a-z]+)"
    r"|(?P<clock>[+-]?\d+:\d{1,2}(?::\d{1,2}(?:\.\d+)?)?))\s*",
    re.IGNORECASE,
)


def parse_interval(text: str) -> float:
    """A Postgres interval in Nebraska's policy columns ("1 minutes", "60 minutes", "1 hours",
    "1 days"; also "1 hour 30 minutes", "90min", "01:30:00", "30", "@ 2 days ago") in seconds;
    ApiError when Postgres would not read it."""
    body = text.strip()
    if body.startswith("@"):
        body = body[1:]
    sign = 1.0
    if re.search(r"\s+ago$", body, re.IGNORECASE):
        body, sign = re.sub(r"\s+ago$", "", body, flags=re.IGNORECASE), -1.0
    if re.fullmatch(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)\s*", body):
        return sign * float(body)  # a bare number is seconds
    total, position, terms = 0.0, 0, 0
    while position < len(body):
        match = _TERM.match(body, position)
        if match is None or match.end() == position:
            raise ApiError(f"not an interval: {text!r}")
        if match["clock"]:
            negative = match["clock"].startswith("-")
            parts = [float(part) for part in match["clock"].lstrip("+-").split(":")]
            seconds = parts[0] * 3600 + parts[1] * 60 + (parts[2] if len(parts) > 2 else 0.0)
            total += -seconds if negative else seconds
        else:
            unit = _UNITS.get(match["unit"].lower())
            if unit is None:
                raise ApiError(f"not an interval: {text!r} (unknown unit {match['unit']!r})")
            total += float(match["number"]) * unit
        position, terms = match.end(), terms + 1
    if not terms:
        raise ApiError(f"not an interval: {text!r}")
    return sign * total


# --- what Nebraska answers a host (updates.go) ---------------------------------------------------

_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)


SemverKey = tuple[int, int, int, tuple[int, tuple[tuple[int, int, str], ...]]]


def semver_key(version: str) -> SemverKey:
    """blang/semver's order of `version` (semver 2.0: a pre-release sorts before its release,
    its numeric identifiers before alphanumeric ones; build metadata does not count); a version
    that does not parse is 0.0.0, as `semver.Make` returns it with the error updates.go ignores."""
    match = _SEMVER.fullmatch(version)
    if match is None:
        return (0, 0, 0, (1, ()))
    major, minor, patch, pre = match.groups()
    if pre is None:
        return (int(major), int(minor), int(patch), (1, ()))
    identifiers = tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in pre.split("."))
    return (int(major), int(minor), int(patch), (0, identifiers))


def update_available(instance_version: str, package_version: str) -> bool:
    """Whether Nebraska offers a host at `instance_version` its group's channel's package
    (updates.go GetUpdatePackage: only when the instance's semver is below the package's)."""
    return semver_key(instance_version) < semver_key(package_version)
