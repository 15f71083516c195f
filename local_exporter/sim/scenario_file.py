"""Scenario files: strict TOML -> `scenario.Scenario`, and the built-in presets.

Strict, like the config loader: unknown keys, wrong types and bad values are all collected
with their dotted location and line, then raised together as one ScenarioError. Array-of-table
entries are named `faults[2]` (0-based, the index the fault's host selection is seeded with).
The presets (`presets/*.toml`) double as the commented reference of the format.
"""

from __future__ import annotations

import datetime
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import cast

from local_exporter.agents import locksmith
from local_exporter.common.durations import parse_duration, show
from local_exporter.common.fields import Problem, Problems, ProblemsError, Table, dotted, file_text, toml_tables
from local_exporter.common.toml_lines import ArrayIndex, array_index, scan_with_arrays
from local_exporter.sim.scenario import (
    CHECK_ERROR_KINDS,
    FAULT_KINDS,
    FEDORA_COREOS,
    FLATCAR,
    FLATCAR_FAULT_KINDS,
    OSES,
    FaultKind,
    FaultSpec,
    FlatcarFleetSpec,
    FleetSpec,
    ReleaseSpec,
    Scenario,
    pick_hosts,
)

PRESETS: tuple[str, ...] = ("rollout", "fleet-lock", "stalled", "faults", "demo", "mixed")
DEFAULT_REBOOT = 60.0
MAX_HOSTS = 1_000_000
NAME = re.compile(r"^[a-z0-9-]+$")
GROUP_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_DURATION_RULE = 'a number of seconds or a duration like "90s", "15m", "1h30m"'
_NAME_RULE = "lowercase letters, digits and '-'"
_ALL_FLEET_KEYS = frozenset({"hosts", "version", "stream", "strategy", "seed", "host_prefix"})
# The keys only one fault kind takes.
_KIND_KEYS: dict[str, FaultKind] = {"error": "check_errors", "users": "finalize_blocked", "version": "deadend"}


class ScenarioError(ProblemsError):
    """The scenario cannot be used; `problems` holds one rendered line per problem."""


def load(path: Path) -> Scenario:
    """A scenario file; an unreadable or invalid one raises ScenarioError naming the file."""
    return parse(file_text(path, "scenario", ScenarioError), str(path))


def preset_text(name: str) -> str:
    """The TOML source of a built-in preset, comments and all."""
    if name not in PRESETS:
        raise ScenarioError([f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}"])
    return (resources.files("local_exporter.sim") / "presets" / f"{name}.toml").read_text(encoding="utf-8")


def preset(name: str) -> Scenario:
    """A built-in scenario by name (one of PRESETS)."""
    return parse(preset_text(name), f"{name}.toml")


def parse(text: str, filename: str = "<scenario>") -> Scenario:
    """Scenario TOML -> Scenario, or ScenarioError with every problem, each as `file:line: key: message`."""
    text = text.removeprefix("\ufeff")
    problems = Problems(key_lines=scan_with_arrays(text))
    raw = toml_tables(text, problems)
    if raw is None:
        raise ScenarioError([_render(p, filename) for p in problems.sorted()])
    scenario = _read(_Reader(raw, (), problems))
    if problems or scenario is None:
        raise ScenarioError([_render(p, filename) for p in problems.sorted()])
    return scenario


def _render(problem: Problem, filename: str) -> str:
    where = f"{filename}:{problem.line}" if problem.line else filename
    if not problem.location:
        return f"{where}: {problem.message}"
    path = ""
    for part in problem.location:
        path += part if isinstance(part, ArrayIndex) else ("." if path else "") + dotted((part,))
    return f"{where}: {path}: {problem.message}"


class _Reader(Table):
    """`Table` plus the value shapes scenarios have: durations, date-times, arrays of tables."""

    def sub(self, key: str) -> _Reader:
        table = self.table(key)
        return _Reader(table.raw, table.location, self.problems)

    def valid(self, key: str) -> bool:
        """No problem has been reported at `key` (or inside it)."""
        at = self.at(key)
        return not any(p.location[: len(at)] == at for p in self.problems.items)

    def required(self, key: str) -> bool:
        if key in self.raw:
            return True
        self._taken.add(key)
        self.problem(key, "is required")
        return False

    def name(self, key: str, default: str | None, pattern: re.Pattern[str], rule: str) -> str | None:
        value = self.string(key, default, required=default is None)
        if value is not None and not pattern.match(value):
            self.problem(key, f"must be 1 or more {rule}, got {value!r}")
            return default
        return value

    def text(self, key: str, default: str | None = None) -> str | None:
        """A non-empty string."""
        value = self.string(key, default, required=default is None)
        if value == "":
            self.problem(key, "must not be empty")
            return default
        return value

    def duration(self, key: str, default: float | None, *, positive: bool = False) -> float | None:
        value = self._take(key, (int, float, str), default is None, _DURATION_RULE)
        if value is None:
            return default
        if isinstance(value, str):
            try:
                seconds = parse_duration(value)
            except ValueError:
                self.problem(key, f"must be {_DURATION_RULE}, got {value!r}")
                return default
        else:
            seconds = float(value)
        if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
            self.problem(key, f"must be {'greater than 0' if positive else 'at least 0'}, got {value!r}")
            return default
        return seconds

    def timestamp(self, key: str) -> float | None:
        """An offset date-time as unix seconds; a local one is ambiguous, so a problem."""
        value = self._take(key, (datetime.datetime,), False, "an offset date-time like 2026-11-01T00:00:00Z")
        if value is None:
            return None
        if value.tzinfo is None:
            self.problem(key, f"must have a UTC offset (like 2026-11-01T00:00:00Z), got {value.isoformat()}")
            return None
        return float(value.timestamp())

    def array_of_tables(self, key: str) -> list[_Reader]:
        value = self._take(key, (list,), False, f"an array of tables ([[{key}]])")
        readers = []
        for number, item in enumerate(value or ()):
            at = (*self.at(key), array_index(number))
            if isinstance(item, dict):
                readers.append(_Reader(item, at, self.problems))
            else:
                self.problems.add(at, "must be a table")
        return readers

    def skip(self, key: str) -> None:
        """Take `key` without reading it: its presence is the problem, already reported."""
        self._taken.add(key)


@dataclass(frozen=True)
class _Known:
    """What releases and faults are checked against; `bad` names the values not to check against."""

    fleet: FleetSpec | FlatcarFleetSpec
    duration: float
    bad: frozenset[str]
    flatcar: FlatcarFleetSpec | None = None
    flatcar_bad: frozenset[str] = frozenset()

    def of(self, table: _Reader) -> _Known | None:
        """What a release or fault table (by its `os` key) is checked against; None when it
        names the Flatcar fleet and there is none (the problem is reported)."""
        os = table.choice("os", OSES, FEDORA_COREOS)
        if os != FLATCAR:
            return self
        if self.flatcar is None:
            table.problem("os", "needs a [flatcar] fleet")
            return None
        return _Known(self.flatcar, self.duration, self.flatcar_bad | (self.bad & {"duration"}))


def _read(top: _Reader) -> Scenario | None:
    name = top.name("name", None, NAME, _NAME_RULE)
    description = top.string("description", "")
    duration = top.duration("duration", None, positive=True)
    reboot = top.duration("reboot", DEFAULT_REBOOT)
    download = top.duration("download", 0.0)
    start = top.timestamp("start")
    fleet, bad = _read_fleet(top)
    flatcar, flatcar_bad = _read_flatcar(top)
    no_duration = {"duration"} if duration is None else set()
    known = _Known(fleet, duration or 0.0, bad | no_duration, flatcar, flatcar_bad | no_duration)
    releases = _read_releases(top.array_of_tables("releases"), known)
    faults = _read_faults(top.array_of_tables("faults"), known, releases)
    top.finish()
    if top.problems or name is None or description is None or duration is None or reboot is None or download is None:
        return None
    return Scenario(name, description, duration, fleet, releases, faults, reboot, start, download, flatcar)


def _read_fleet(top: _Reader) -> tuple[FleetSpec, frozenset[str]]:
    """The fleet, with placeholders for bad values, and the keys whose values are bad."""
    if not isinstance(top.raw.get("fleet"), dict):
        if top.required("fleet"):
            top.sub("fleet")  # reports the wrong type
        return FleetSpec(hosts=1, version=""), _ALL_FLEET_KEYS
    table = top.sub("fleet")
    hosts = table.integer("hosts", 1, low=1, high=MAX_HOSTS) if table.required("hosts") else 1
    version = table.text("version")
    defaults = FleetSpec(hosts=1, version="")
    strategy = table.choice("strategy", ("immediate", "fleet_lock"), defaults.strategy)
    if not table.valid("strategy"):
        strategy = None
    wariness = table.number("wariness", 0.0, low=0, high=1, zero_ok=True) if "wariness" in table.raw else None
    spec = FleetSpec(
        hosts=hosts,
        version=version or "",
        stream=table.text("stream", defaults.stream) or defaults.stream,
        platform=table.text("platform", defaults.platform) or defaults.platform,
        basearch=table.text("basearch", defaults.basearch) or defaults.basearch,
        strategy="fleet_lock" if strategy == "fleet_lock" else "immediate",
        groups=_read_groups(table, strategy) or defaults.groups,
        wariness=wariness if table.valid("wariness") else None,
        seed=table.integer("seed", defaults.seed, low=0, high=2**63 - 1),
        host_prefix=table.name("host_prefix", defaults.host_prefix, NAME, _NAME_RULE) or defaults.host_prefix,
    )
    table.finish()
    return spec, frozenset(key for key in _ALL_FLEET_KEYS if not table.valid(key))


def _read_groups(fleet: _Reader, strategy: str | None) -> tuple[tuple[str, int], ...]:
    if "groups" not in fleet.raw:
        return ()
    table = fleet.sub("groups")
    if strategy == "immediate" and fleet.valid("groups"):
        fleet.problem("groups", 'only with strategy = "fleet_lock": the immediate strategy takes no reboot slots')
        table.subtables()  # one problem for the table, not one per group
        return ()
    return _read_slots(fleet, "groups", table)


def _read_slots(owner: _Reader, key: str, table: _Reader) -> tuple[tuple[str, int], ...]:
    """A table of lock groups and their slots (`name = slots`), at least one."""
    if not table.raw and owner.valid(key):
        owner.problem(key, "must name at least one group")
    groups = []
    for name, _ in list(table.subtables()):
        if not GROUP_NAME.match(name):
            table.problem(name, f"group names are 1 or more letters, digits, '_', '.' or '-', got {name!r}")
            continue
        # `subtables` marked the key taken; `integer` reads it again with its type and range.
        slots = table.integer(name, 1, low=1, high=MAX_HOSTS)
        groups.append((name, slots))
    return tuple(groups)


def _read_flatcar(top: _Reader) -> tuple[FlatcarFleetSpec | None, frozenset[str]]:
    """The Flatcar hosts of a mixed fleet, if the scenario has a [flatcar] table."""
    if "flatcar" not in top.raw:
        return None, frozenset()
    table = top.sub("flatcar")
    hosts = table.integer("hosts", 1, low=1, high=MAX_HOSTS) if table.required("hosts") else 1
    version = table.text("version") if table.required("version") else None
    defaults = FlatcarFleetSpec(hosts=1, version="")
    strategy = table.choice("strategy", locksmith.STRATEGIES, defaults.strategy) or defaults.strategy
    locks = defaults.locks
    if "locks" in table.raw:
        slots = table.sub("locks")
        if strategy != locksmith.ETCD_LOCK and table.valid("locks"):
            table.problem("locks", 'only with strategy = "etcd-lock": only locksmith\'s etcd lock has slots')
            slots.subtables()
        else:
            locks = _read_slots(table, "locks", slots) or locks
    wariness = table.number("wariness", 0.0, low=0, high=1, zero_ok=True) if "wariness" in table.raw else None
    spec = FlatcarFleetSpec(
        hosts=hosts,
        version=version or "",
        group=table.text("group", defaults.group) or defaults.group,
        strategy=strategy,
        locks=locks,
        wariness=wariness if table.valid("wariness") else None,
        seed=table.integer("seed", defaults.seed, low=0, high=2**63 - 1),
        host_prefix=table.name("host_prefix", defaults.host_prefix, NAME, _NAME_RULE) or defaults.host_prefix,
    )
    table.finish()
    keys = ("hosts", "version", "group", "strategy", "seed", "host_prefix")
    return spec, frozenset(key for key in keys if not table.valid(key))


def _read_releases(tables: list[_Reader], known: _Known) -> tuple[ReleaseSpec, ...]:
    releases: list[ReleaseSpec] = []
    seen: dict[tuple[str, str, str], str] = {}
    outer = known
    for table in tables:
        known = outer.of(table) or outer
        os = FLATCAR if known is not outer else FEDORA_COREOS
        version = table.text("version")
        at = table.duration("at", None)
        if at is not None and "duration" not in known.bad and at >= known.duration:
            table.problem("at", f"must be before the scenario ends (duration {show(known.duration)}), got {show(at)}")
        rollout = table.duration("rollout", 0.0) or 0.0
        stream = table.text("stream", known.fleet.stream) or known.fleet.stream
        here = f"releases{table.location[-1]}"
        if version and "version" not in known.bad and version == known.fleet.version:
            fleet = "flatcar" if os == FLATCAR else "fleet"
            table.problem("version", f"must differ from {fleet}.version {version!r}: the fleet already runs it")
        elif version and table.valid("stream"):
            first = seen.setdefault((os, stream, version), here)
            if first != here:
                table.problem("version", f"{version!r} is already released on stream {stream!r} by {first}")
        table.finish()
        if version is not None and at is not None:
            releases.append(ReleaseSpec(version, at, rollout, stream, os))
    return tuple(sorted(releases, key=lambda release: release.at))


def _read_faults(tables: list[_Reader], known: _Known, releases: tuple[ReleaseSpec, ...]) -> tuple[FaultSpec, ...]:
    faults = []
    outer = known
    for number, table in enumerate(tables):
        known = outer.of(table) or outer
        os = FLATCAR if known is not outer else FEDORA_COREOS
        kind = table.choice("kind", FAULT_KINDS)
        if os == FLATCAR and kind is not None and kind not in FLATCAR_FAULT_KINDS:
            table.problem("kind", f"a Flatcar host has no {kind} fault: one of {', '.join(FLATCAR_FAULT_KINDS)}")
        if os == FLATCAR and kind == "keeps_slot" and known.fleet.strategy != locksmith.ETCD_LOCK:
            table.problem("kind", 'keeps_slot needs flatcar.strategy = "etcd-lock": only its etcd lock has slots')
        elif (
            os != FLATCAR
            and kind in ("keeps_slot", "steady_state_errors")
            and "strategy" not in known.bad
            and known.fleet.strategy != "fleet_lock"
        ):
            table.problem("kind", f'{kind} needs fleet.strategy = "fleet_lock": only FleetLock has slots to keep')
        hosts = _select_hosts(table, number, known)
        start, end = _read_window(table, kind, known)
        for key, owner in _KIND_KEYS.items():
            # Without a valid kind, which keys belong is unknown: the kind is the problem.
            if key in table.raw and kind != owner:
                table.skip(key)
                if kind is not None:
                    table.problem(key, f"only for {owner} faults")
        error = table.choice("error", CHECK_ERROR_KINDS, CHECK_ERROR_KINDS[0]) if kind == "check_errors" else None
        users = table.integer("users", 1, low=1, high=1000) if kind == "finalize_blocked" else 1
        version = table.string("version", "") if kind == "deadend" else None
        if version and "version" not in known.bad:
            versions = [known.fleet.version, *(release.version for release in releases)]
            if version not in versions:
                table.problem("version", f"must be fleet.version or a release's version, got {version!r}")
        table.finish()
        if kind is not None and hosts is not None and start is not None:
            faults.append(
                FaultSpec(
                    cast(FaultKind, kind), hosts, start, end, error or CHECK_ERROR_KINDS[0], users, version or "", os
                )
            )
    return tuple(faults)


def _read_window(table: _Reader, kind: str | None, known: _Known) -> tuple[float | None, float | None]:
    if kind == "updates_disabled":
        for key in ("start", "end"):
            if key in table.raw:
                table.skip(key)
                table.problem(key, "not for updates_disabled faults: they are the hosts' configuration for the run")
        return 0.0, None
    start = table.duration("start", 0.0)
    if start is not None and "duration" not in known.bad and start >= known.duration:
        table.problem("start", f"must be before the scenario ends (duration {show(known.duration)}), got {show(start)}")
    end = table.duration("end", None) if "end" in table.raw else None
    if end is not None and start is not None and table.valid("start") and end <= start:
        table.problem("end", f"must be after start ({show(start)}), got {show(end)}")
    return start, end


def _select_hosts(table: _Reader, number: int, known: _Known) -> tuple[int, ...] | None:
    """The fault's hosts from at most one of `hosts`, `share`, `names`; none given: every host."""
    given = [key for key in ("hosts", "share", "names") if key in table.raw]
    for key in given[1:]:
        table.problem(key, f"give only one of hosts, share, names (already given {given[0]})")
    size = None if "hosts" in known.bad else known.fleet.hosts
    count = table.integer("hosts", 1, low=1, high=size or MAX_HOSTS) if "hosts" in given else None
    share = table.number("share", 1.0, low=0, high=1) if "share" in given else None
    names = _host_names(table, known) if "names" in given else None
    if size is None or len(given) > 1 or not all(table.valid(key) for key in given):
        return None
    if names is not None:
        return names
    if share is not None:
        count = max(1, round(share * size))
    if count is not None:
        return pick_hosts(known.fleet.seed, number, count, size)
    return tuple(range(size))


def _host_names(table: _Reader, known: _Known) -> tuple[int, ...] | None:
    names = table.strings("names", "host names")
    if names is None:
        return None
    if not names:
        table.problem("names", "must name at least one host")
    if not known.bad.isdisjoint({"hosts", "host_prefix"}):
        return None
    found: set[int] = set()
    for name in names:
        index = _host_index(known.fleet, name)
        if index is None:
            table.problem("names", f"no host is named {name!r} (names run {_host_range(known.fleet)})")
        elif index in found:
            table.problem("names", f"{name!r} is listed twice")
        else:
            found.add(index)
    return tuple(sorted(found))


def _host_index(fleet: FleetSpec | FlatcarFleetSpec, name: str) -> int | None:
    """The index `fleet.host_name` gives `name`, or None: parsed, not looked up, for large fleets."""
    prefix, _, digits = name.rpartition("-")
    if prefix != fleet.host_prefix or not digits.isascii() or not digits.isdigit():
        return None
    index = int(digits)
    return index if index < fleet.hosts and fleet.host_name(index) == name else None


def _host_range(fleet: FleetSpec | FlatcarFleetSpec) -> str:
    return f"{fleet.host_name(0)} to {fleet.host_name(fleet.hosts - 1)}"
