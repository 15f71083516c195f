"""A BundleConfig read from a TOML file: what `local-exporter bundle --config FILE` generates from.

The file's keys are BundleConfig's fields, and its tables the nested ones (`[receivers]`,
`[maintenance]`); a key left out keeps its default. It is read by the same strict reader as the
bridge's config (common/fields.py), so every unknown key, wrong type and bad value is reported at
once, each with its key and line. The checks below are what the generated files need of a value
(a duration Prometheus parses, a job name the scrape configs can carry, a URL Alertmanager can
post to): a value that passes them generates files promtool and amtool accept.
"""

from __future__ import annotations

import re
import string
import zoneinfo
from collections.abc import Callable
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlsplit

from local_exporter.bundle import scale_out
from local_exporter.bundle.alerts import alert_groups
from local_exporter.bundle.config import DURATION_SUFFIXES, SECONDS_SUFFIX, BundleConfig, MaintenanceWindow, job_of
from local_exporter.common.durations import parse_duration
from local_exporter.common.fields import Problems, ProblemsError, Table, file_text, toml_tables
from local_exporter.common.toml_lines import scan_with_arrays

#: A check returns what is wrong with a value, or None.
Check = Callable[[Any], "str | None"]


class BundleConfigError(ProblemsError):
    """The bundle config cannot be used; `problems` holds one rendered line per problem."""


def load(path: Path) -> BundleConfig:
    """The bundle config in `path`; BundleConfigError names the file and every problem."""
    return parse(file_text(path, "bundle config", BundleConfigError), str(path))


def parse(text: str, filename: str = "<bundle config>") -> BundleConfig:
    text = text.removeprefix("\ufeff")
    problems = Problems(key_lines=scan_with_arrays(text))
    raw = toml_tables(text, problems)
    if raw is None:
        raise BundleConfigError([p.render(filename) for p in problems.sorted()])
    config: BundleConfig = _read(Table(raw, (), problems), BundleConfig())
    if problems:
        raise BundleConfigError([p.render(filename) for p in problems.sorted()])
    return config


def _read(table: Table, defaults: Any) -> Any:
    """`defaults` with every key `table` sets, checked; nested dataclasses are tables."""
    hints = get_type_hints(type(defaults))
    changes: dict[str, Any] = {}
    for field in fields(defaults):
        kind, default = hints[field.name], getattr(defaults, field.name)
        if is_dataclass(kind):
            changes[field.name] = _read(table.table(field.name), default)
            continue
        value = _take(table, field.name, kind, default)
        problem = check_of(field.name)(value) if field.name in table.raw else None
        if problem is not None:
            table.problem(field.name, problem)
        else:
            changes[field.name] = value
    table.finish()
    result = replace(defaults, **changes)
    if isinstance(result, MaintenanceWindow) and result.start_time >= result.end_time:
        # Alertmanager refuses a time range that ends before it starts ("HH:MM" sorts by time).
        table.problem("end_time", f"must be after start_time {result.start_time!r}, got {result.end_time!r}")
    return result


def _take(table: Table, key: str, kind: Any, default: Any) -> Any:
    if kind is bool:
        return table.boolean(key, default)
    if kind is int:
        return table.integer(key, default, low=-(2**63), high=2**63 - 1)
    if kind is float:
        return table.finite(key, default)
    if kind is str:
        return table.string(key, default)
    strings = table.strings(key)
    return default if strings is None else tuple(strings)


# --- the checks ---------------------------------------------------------------------------------

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_MATCHER = r'\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*'
_MATCHERS = re.compile(rf"{_MATCHER}(?:,{_MATCHER})*,?\s*")
_HH_MM = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]|24:00")
WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
#: Grafana keeps a dashboard uid to 40 characters; the prefix leaves room for `-` and the longest
#: slug (tests/bundle/test_config_file.py checks against the dashboards).
UID_PREFIX_LIMIT = 30
#: The selectors whose job names the generated scrape configs carry (prometheus/prometheus.yml,
#: compose, Kubernetes): each must be one `job="NAME"` matcher.
JOB_SELECTORS = (
    "agent_selector",
    "flatcar_agent_selector",
    "bridge_selector",
    "release_feed_selector",
    "nebraska_selector",
    "airlock_selector",
)


def _duration(value: str) -> str | None:
    try:
        seconds = parse_duration(value)
    except ValueError:
        return f"must be a Prometheus duration like 30s, 5m or 1h30m, got {value!r}"
    return None if seconds > 0 else f"must be longer than 0, got {value!r}"


def _duration_or_zero(value: str) -> str | None:
    try:
        return None if parse_duration(value) == 0 else _duration(value)
    except ValueError:
        return _duration(value)


def _positive(value: float) -> str | None:
    return None if value > 0 else f"must be greater than 0, got {value!r}"


def _share(value: float) -> str | None:
    return None if 0 < value <= 1 else f"must be a share: greater than 0 and at most 1, got {value:g}"


def _job_selector(value: str) -> str | None:
    try:
        job_of(value)
    except ValueError:
        return f'must be one job matcher, job="NAME" (the scrape configs take their job names from it), got {value!r}'
    return None


def _matchers(value: str) -> str | None:
    if _MATCHERS.fullmatch(value):
        return None
    return f'must be PromQL label matchers without braces, like job="kured", got {value!r}'


def _label_name(value: str) -> str | None:
    return None if _LABEL_NAME.fullmatch(value) else f"must be a Prometheus label name, got {value!r}"


def _label_name_or_none(value: str) -> str | None:
    return None if value == "" else _label_name(value)


def _alert_prefix(value: str) -> str | None:
    # The mixin lint rules keep alert names within 40 characters.
    limit = 40 - max(
        len(rule["alert"])
        for group in alert_groups(replace(BundleConfig(), alert_prefix=""))
        for rule in group["rules"]
    )
    if re.fullmatch(r"[A-Z][A-Za-z0-9]*", value) and len(value) <= limit:
        return None
    return f"must be CamelCase letters and digits, at most {limit} (alert names stay within 40), got {value!r}"


def _runbook_pattern(value: str) -> str | None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as exc:
        return f"is not a valid pattern ({exc}): write braces as {{{{ and }}}}, got {value!r}"
    if "%s" in value:
        return f"holds %s: write {{runbook}} or {{alert}} where the alert goes, got {value!r}"
    if not names <= {"runbook", "alert"}:
        return f"may hold only {{runbook}} and {{alert}}, got {value!r}"
    return _url(value.replace("{runbook}", "x").replace("{alert}", "x"))


def _url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.hostname:
        return None
    return f"must be an http:// or https:// URL, got {value!r}"


def _image(value: str) -> str | None:
    if value and not re.search(r"\s", value):
        return None
    return f"must be a container image reference without spaces, got {value!r}"


def _group_id(value: int) -> str | None:
    # 0 would be root's group, and 4294967295 is (gid_t) -1, "no group".
    return None if 1 <= value <= 4294967294 else f"must be a group id from 1 to 4294967294, got {value}"


def _shards(value: int) -> str | None:
    return (
        None if 1 <= value <= scale_out.MAX_SHARDS else f"must be from 1 to {scale_out.MAX_SHARDS} shards, got {value}"
    )


def _non_empty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def _weekdays(value: tuple[str, ...]) -> str | None:
    for item in value:
        if not all(day in WEEKDAYS for day in item.split(":", 1)):
            return f"must be Alertmanager weekdays ({', '.join(WEEKDAYS)}) or ranges like monday:friday, got {item!r}"
    return None if value else "must name at least one day"


def _time_of_day(value: str) -> str | None:
    return None if _HH_MM.fullmatch(value) else f"must be a time HH:MM from 00:00 to 24:00, got {value!r}"


def _time_zone(value: str) -> str | None:
    # Alertmanager, like Go, knows "UTC" and "Local" without a time zone database.
    if value in ("UTC", "Local"):
        return None
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"must be an IANA time zone name like Europe/Berlin, got {value!r}"
    return None


def _dashboard_time_zone(value: str) -> str | None:
    return None if value in ("utc", "browser") else _time_zone(value)


def _uid_prefix(value: str) -> str | None:
    if re.fullmatch(r"[A-Za-z0-9_-]+", value) and len(value) <= UID_PREFIX_LIMIT:
        return None
    return f"must be letters, digits, - and _, at most {UID_PREFIX_LIMIT} (Grafana's uids), got {value!r}"


def _tags(value: tuple[str, ...]) -> str | None:
    # The first tag is what the dashboards' links menu lists them by.
    return None if value and all(tag.strip() for tag in value) else "must be at least one non-empty tag"


def _anything(value: object) -> str | None:
    return None


#: Checks by field name, where the name's ending does not already say what the value is.
CHECKS: dict[str, Check] = {
    **dict.fromkeys(JOB_SELECTORS, _job_selector),
    "kube_state_metrics_selector": _matchers,
    "kured_selector": _matchers,
    "cluster_label": _label_name,
    "group_label": _label_name_or_none,
    "alert_prefix": _alert_prefix,
    "runbook_url_pattern": _runbook_pattern,
    "behind_plan_margin": _share,
    "max_updating_ratio": _share,
    "image": _image,
    "agent_group_id": _group_id,
    "scale_out_shards": _shards,
    "name": _non_empty,
    "weekdays": _weekdays,
    "start_time": _time_of_day,
    "end_time": _time_of_day,
    "location": _time_zone,
    "dashboard_uid_prefix": _uid_prefix,
    "dashboard_tags": _tags,
    "dashboard_refresh": _duration,
    "group_wait": _duration_or_zero,
    "dashboard_timezone": _dashboard_time_zone,
    "dashboard_folder": _non_empty,
    "show_multi_cluster": _anything,
    "infer_phases": _anything,
}


def check_of(name: str) -> Check:
    """The check of the field `name`: by name, else by what its name ends with."""
    if name in CHECKS:
        return CHECKS[name]
    if name.endswith(DURATION_SUFFIXES):
        return _duration
    if name.endswith(SECONDS_SUFFIX):
        return _positive
    if name.endswith("_url"):
        return _url
    raise KeyError(f"BundleConfig.{name} has no check: add one to CHECKS")
