"""Scenario files, table-driven: each bad file maps to the exact problem lines it produces.

Every case pins the complete rendered output (file, line, dotted location, message), so a wrong
line number, a missing problem or an extra cascading one fails the test. The presets must all
parse, and say what their names promise.
"""

from __future__ import annotations

import textwrap
from importlib import resources
from pathlib import Path

import pytest

from local_exporter.common import durations
from local_exporter.sim import scenario, scenario_file
from local_exporter.sim.scenario import (
    FAULT_KINDS,
    FEDORA_COREOS,
    FLATCAR,
    FaultSpec,
    FlatcarFleetSpec,
    FleetSpec,
    ReleaseSpec,
    Scenario,
)
from local_exporter.sim.scenario_file import ScenarioError


def toml(text: str) -> str:
    """A test file: dedented, line 1 is the first line after the opening quotes."""
    return textwrap.dedent(text).lstrip("\n")


def problems_of(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        scenario_file.parse(toml(text), "s.toml")
    return info.value.problems


KINDS = "must be one of " + ", ".join(repr(kind) for kind in FAULT_KINDS)
DURATION = 'must be a number of seconds or a duration like "90s", "15m", "1h30m"'

BAD: list[tuple[str, str, list[str]]] = [
    (
        "invalid-toml",
        """
        name = "x"
        duration = 3h
        """,
        ["s.toml:2: invalid TOML: Expected newline or end of document after a statement (at line 2, column 13)"],
    ),
    (
        "missing-required-keys",
        """
        description = "nothing else"
        """,
        ["s.toml: duration: is required", "s.toml: fleet: is required", "s.toml: name: is required"],
    ),
    (
        "missing-required-fleet-and-release-keys",
        """
        name = "x"
        duration = "1h"
        [fleet]
        stream = "stable"
        [[releases]]
        rollout = "1h"
        [[faults]]
        hosts = 1
        """,
        [
            "s.toml:3: fleet.hosts: is required",
            "s.toml:3: fleet.version: is required",
            "s.toml:5: releases[0].at: is required",
            "s.toml:5: releases[0].version: is required",
            "s.toml:7: faults[0].kind: is required",
        ],
    ),
    (
        "unknown-keys-at-every-level",
        """
        name = "x"
        duraton = "1h"
        duration = "1h"
        [fleet]
        hosts = 2
        version = "40.1"
        strategy = "immediate"
        hostprefix = "a"
        [[releases]]
        version = "40.2"
        at = 0
        rolout = "1h"
        [[faults]]
        kind = "stale"
        [faults.options]
        x = 1
        """,
        [
            "s.toml:2: duraton: unknown key",
            "s.toml:8: fleet.hostprefix: unknown key",
            "s.toml:12: releases[0].rolout: unknown key",
            "s.toml:15: faults[0].options: unknown key",
        ],
    ),
    (
        "wrong-types",
        """
        name = 7
        duration = true
        start = "2026-11-01"
        [fleet]
        hosts = "30"
        version = 40
        wariness = "high"
        groups = 2
        [[faults]]
        kind = "stale"
        hosts = 1.5
        names = "host-0001"
        """,
        [
            "s.toml:1: name: must be a string, got integer 7",
            f"s.toml:2: duration: {DURATION}, got boolean true",
            "s.toml:3: start: must be an offset date-time like 2026-11-01T00:00:00Z, got string '2026-11-01'",
            "s.toml:5: fleet.hosts: must be an integer, got string '30'",
            "s.toml:6: fleet.version: must be a string, got integer 40",
            "s.toml:7: fleet.wariness: must be a number, got string 'high'",
            "s.toml:8: fleet.groups: must be a table, got integer 2",
            "s.toml:11: faults[0].hosts: must be an integer, got float 1.5",
            "s.toml:12: faults[0].names: give only one of hosts, share, names (already given hosts)",
            "s.toml:12: faults[0].names: must be an array of host names, got string 'host-0001'",
        ],
    ),
    (
        "arrays-of-the-wrong-shape",
        """
        name = "x"
        duration = "1h"
        releases = "40.2"
        faults = [1, { kind = "stale", bogus = 1 }]
        [fleet]
        hosts = 2
        version = "40.1"
        """,
        [
            "s.toml:3: releases: must be an array of tables ([[releases]]), got string '40.2'",
            "s.toml:4: faults[0]: must be a table",
            "s.toml:4: faults[1].bogus: unknown key",
        ],
    ),
    (
        "bad-values",
        """
        name = "Fleet_Lock"
        duration = 0
        reboot = -1
        start = 2026-11-01T00:00:00
        [fleet]
        hosts = 1_000_001
        version = ""
        strategy = "fleetlock"
        wariness = 1.5
        seed = -1
        host_prefix = "Host"
        """,
        [
            "s.toml:1: name: must be 1 or more lowercase letters, digits and '-', got 'Fleet_Lock'",
            "s.toml:2: duration: must be greater than 0, got 0",
            "s.toml:3: reboot: must be at least 0, got -1",
            "s.toml:4: start: must have a UTC offset (like 2026-11-01T00:00:00Z), got 2026-11-01T00:00:00",
            "s.toml:6: fleet.hosts: must be between 1 and 1000000, got 1000001",
            "s.toml:7: fleet.version: must not be empty",
            "s.toml:8: fleet.strategy: must be one of 'immediate', 'fleet_lock', got 'fleetlock'",
            "s.toml:9: fleet.wariness: must be at least 0 and at most 1, got 1.5",
            "s.toml:10: fleet.seed: must be between 0 and 9223372036854775807, got -1",
            "s.toml:11: fleet.host_prefix: must be 1 or more lowercase letters, digits and '-', got 'Host'",
        ],
    ),
    (
        "bad-durations",
        """
        name = "x"
        duration = "3 hours"
        reboot = "-90s"
        [fleet]
        hosts = 2
        version = "40.1"
        [[releases]]
        version = "40.2"
        at = "1h30"
        rollout = "1.5h"
        [[faults]]
        kind = "stale"
        start = "m"
        end = inf
        """,
        [
            f"s.toml:2: duration: {DURATION}, got '3 hours'",
            f"s.toml:3: reboot: {DURATION}, got '-90s'",
            f"s.toml:9: releases[0].at: {DURATION}, got '1h30'",
            f"s.toml:10: releases[0].rollout: {DURATION}, got '1.5h'",
            f"s.toml:13: faults[0].start: {DURATION}, got 'm'",
            "s.toml:14: faults[0].end: must be at least 0, got inf",
        ],
    ),
    (
        "fault-window",
        """
        name = "x"
        duration = "2h"
        [fleet]
        hosts = 2
        version = "40.1"
        [[faults]]
        kind = "agent_down"
        start = "1h"
        end = "1h"
        [[faults]]
        kind = "agent_down"
        start = "2h"
        [[faults]]
        kind = "updates_disabled"
        start = 0
        end = "1h"
        """,
        [
            "s.toml:9: faults[0].end: must be after start (1h), got 1h",
            "s.toml:12: faults[1].start: must be before the scenario ends (duration 2h), got 2h",
            "s.toml:15: faults[2].start: not for updates_disabled faults: they are the hosts' configuration for the run",
            "s.toml:16: faults[2].end: not for updates_disabled faults: they are the hosts' configuration for the run",
        ],
    ),
    (
        "host-selection",
        """
        name = "x"
        duration = "2h"
        [fleet]
        hosts = 10
        version = "40.1"
        host_prefix = "fcos"
        [[faults]]
        kind = "stale"
        share = 0
        [[faults]]
        kind = "stale"
        share = 1.01
        [[faults]]
        kind = "stale"
        hosts = 11
        [[faults]]
        kind = "stale"
        names = ["fcos-0001", "fcos-0010", "host-0002", "fcos-2", "fcos-0001"]
        [[faults]]
        kind = "stale"
        names = []
        [[faults]]
        kind = "stale"
        names = ["fcos-0001", 2]
        """,
        [
            "s.toml:9: faults[0].share: must be greater than 0 and at most 1, got 0",
            "s.toml:12: faults[1].share: must be greater than 0 and at most 1, got 1.01",
            "s.toml:15: faults[2].hosts: must be between 1 and 10, got 11",
            "s.toml:18: faults[3].names: no host is named 'fcos-0010' (names run fcos-0000 to fcos-0009)",
            "s.toml:18: faults[3].names: no host is named 'host-0002' (names run fcos-0000 to fcos-0009)",
            "s.toml:18: faults[3].names: no host is named 'fcos-2' (names run fcos-0000 to fcos-0009)",
            "s.toml:18: faults[3].names: 'fcos-0001' is listed twice",
            "s.toml:21: faults[4].names: must name at least one host",
            "s.toml:24: faults[5].names: must be an array of host names: strings only",
        ],
    ),
    (
        "fleet-lock-only-things-with-immediate",
        """
        name = "x"
        duration = "2h"
        [fleet]
        hosts = 4
        version = "40.1"
        [fleet.groups]
        default = 2
        [[faults]]
        kind = "keeps_slot"
        hosts = 1
        """,
        [
            's.toml:6: fleet.groups: only with strategy = "fleet_lock": the immediate strategy takes no reboot slots',
            's.toml:9: faults[0].kind: keeps_slot needs fleet.strategy = "fleet_lock": only FleetLock has slots to keep',
        ],
    ),
    (
        "bad-groups",
        """
        name = "x"
        duration = "2h"
        [fleet]
        hosts = 4
        version = "40.1"
        strategy = "fleet_lock"
        [fleet.groups]
        "a b" = 1
        workers = 0
        canary = "1"
        """,
        [
            "s.toml:8: fleet.groups.\"a b\": group names are 1 or more letters, digits, '_', '.' or '-', got 'a b'",
            "s.toml:9: fleet.groups.workers: must be between 1 and 1000000, got 0",
            "s.toml:10: fleet.groups.canary: must be an integer, got string '1'",
        ],
    ),
    (
        "empty-groups",
        """
        name = "x"
        duration = "2h"
        [fleet]
        hosts = 4
        version = "40.1"
        strategy = "fleet_lock"
        [fleet.groups]
        """,
        ["s.toml:7: fleet.groups: must name at least one group"],
    ),
    (
        "kind-specific-keys-of-another-kind",
        """
        name = "x"
        duration = "2h"
        [fleet]
        hosts = 4
        version = "40.1"
        [[faults]]
        kind = "deploy_failures"
        error = "generic_http_503"
        users = 2
        version = "40.1"
        [[faults]]
        kind = "check_errors"
        error = "timeout"
        [[faults]]
        kind = "finalize_blocked"
        users = 0
        [[faults]]
        kind = "deadend"
        version = "39.1"
        """,
        [
            "s.toml:8: faults[0].error: only for check_errors faults",
            "s.toml:9: faults[0].users: only for finalize_blocked faults",
            "s.toml:10: faults[0].version: only for deadend faults",
            "s.toml:13: faults[1].error: must be one of 'generic_http_503', 'client_failed_request', got 'timeout'",
            "s.toml:16: faults[2].users: must be between 1 and 1000, got 0",
            "s.toml:19: faults[3].version: must be fleet.version or a release's version, got '39.1'",
        ],
    ),
    (
        "unknown-kind-reports-only-the-kind",
        """
        name = "x"
        duration = "2h"
        [fleet]
        hosts = 4
        version = "40.1"
        [[faults]]
        kind = "disk_full"
        users = 3
        """,
        [f"s.toml:7: faults[0].kind: {KINDS}, got 'disk_full'"],
    ),
    (
        "releases",
        """
        name = "x"
        duration = "2h"
        [fleet]
        hosts = 4
        version = "40.1"
        [[releases]]
        version = "40.2"
        at = "2h"
        [[releases]]
        version = "40.1"
        at = "1h"
        [[releases]]
        version = "40.2"
        at = "1h"
        [[releases]]
        version = "40.2"
        at = "1h"
        stream = "testing"
        [[releases]]
        version = "40.3"
        at = -1
        """,
        [
            "s.toml:8: releases[0].at: must be before the scenario ends (duration 2h), got 2h",
            "s.toml:10: releases[1].version: must differ from fleet.version '40.1': the fleet already runs it",
            "s.toml:13: releases[2].version: '40.2' is already released on stream 'stable' by releases[0]",
            "s.toml:21: releases[4].at: must be at least 0, got -1",
        ],
    ),
    (
        "several-problems-in-line-order",
        """
        name = "x"
        duration = "1h"
        colour = "red"
        [[faults]]
        kind = "stale"
        end = "1m"
        start = "2m"
        [fleet]
        version = "40.1"
        hosts = 0
        """,
        [
            "s.toml:3: colour: unknown key",
            "s.toml:6: faults[0].end: must be after start (2m), got 1m",
            "s.toml:10: fleet.hosts: must be between 1 and 1000000, got 0",
        ],
    ),
    (
        "key-lookalikes-inside-a-multiline-string",
        '''
        name = "x"
        description = """
        duration = 5
        """
        duration = "1h"
        [fleet]
        hosts = 1
        version = "40.1"
        bogus = 1
        ''',
        ["s.toml:9: fleet.bogus: unknown key"],
    ),
    (
        "fleet-not-a-table",
        """
        name = "x"
        duration = "1h"
        fleet = 3
        """,
        ["s.toml:3: fleet: must be a table, got integer 3"],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_scenario_reports_exactly(text: str, expected: list[str]) -> None:
    assert problems_of(text) == expected


def test_error_message_is_all_problems() -> None:
    with pytest.raises(ScenarioError) as info:
        scenario_file.parse('name = "x"\n', "s.toml")
    assert str(info.value) == "s.toml: duration: is required\ns.toml: fleet: is required"


def test_full_scenario() -> None:
    parsed = scenario_file.parse(
        toml(
            """
            name = "full"
            description = "every key"
            duration = "3h"
            reboot = 30
            start = 2026-11-01T01:00:00+01:00
            [fleet]
            hosts = 30
            version = "40.20240504.3.0"
            stream = "testing"
            platform = "aws"
            basearch = "aarch64"
            strategy = "fleet_lock"
            wariness = 0.5
            seed = 7
            host_prefix = "fcos"
            [fleet.groups]
            workers = 3
            default = 1
            [[releases]]
            version = "40.20240602.3.0"
            at = "1h"
            [[releases]]
            version = "40.20240519.3.0"
            at = "10m"
            rollout = "1h"
            [[faults]]
            kind = "check_errors"
            names = ["fcos-0007", "fcos-0002"]
            start = "30m"
            end = 3600.5
            error = "client_failed_request"
            [[faults]]
            kind = "finalize_blocked"
            users = 2
            hosts = 1
            [[faults]]
            kind = "deadend"
            version = "40.20240519.3.0"
            share = 0.5
            [[faults]]
            kind = "keeps_slot"
            """
        )
    )
    assert parsed == Scenario(
        name="full",
        description="every key",
        duration=10800.0,
        fleet=FleetSpec(
            hosts=30,
            version="40.20240504.3.0",
            stream="testing",
            platform="aws",
            basearch="aarch64",
            strategy="fleet_lock",
            groups=(("workers", 3), ("default", 1)),
            wariness=0.5,
            seed=7,
            host_prefix="fcos",
        ),
        # Sorted by `at`; a release's stream defaults to the fleet's.
        releases=(
            ReleaseSpec("40.20240519.3.0", 600.0, 3600.0, "testing"),
            ReleaseSpec("40.20240602.3.0", 3600.0, 0.0, "testing"),
        ),
        faults=(
            FaultSpec("check_errors", (2, 7), 1800.0, 3600.5, error="client_failed_request"),
            FaultSpec("finalize_blocked", scenario.pick_hosts(7, 1, 1, 30), users=2),
            FaultSpec("deadend", scenario.pick_hosts(7, 2, 15, 30), version="40.20240519.3.0"),
            FaultSpec("keeps_slot", tuple(range(30))),
        ),
        reboot=30.0,
        start=1793491200.0,  # 2026-11-01T00:00:00Z
    )


def test_defaults() -> None:
    parsed = scenario_file.parse('name = "x"\nduration = 60\n[fleet]\nhosts = 3\nversion = "40.1"\n')
    assert parsed == Scenario("x", "", 60.0, FleetSpec(hosts=3, version="40.1"), reboot=60.0, start=None)
    assert parsed.fleet.groups == (("default", 1),)


def test_number_durations() -> None:
    parsed = scenario_file.parse('name = "x"\nduration = 5400\nreboot = 0.5\n[fleet]\nhosts = 1\nversion = "a"\n')
    assert (parsed.duration, parsed.reboot) == (durations.parse_duration("1h30m"), 0.5)


def test_host_selection_is_deterministic_and_in_range() -> None:
    for seed in range(20):
        for index in range(5):
            picked = scenario.pick_hosts(seed, index, 7, 50)
            assert picked == scenario.pick_hosts(seed, index, 7, 50)
            assert picked == tuple(sorted(set(picked)))
            assert len(picked) == 7 and all(0 <= host < 50 for host in picked)
    # The fault index takes part: two faults of the same size need not hit the same hosts.
    assert len({scenario.pick_hosts(1, index, 3, 100) for index in range(10)}) > 1
    assert scenario.pick_hosts(1, 0, 5, 5) == (0, 1, 2, 3, 4)


def test_share_rounds_to_at_least_one_host() -> None:
    text = 'name = "x"\nduration = 60\n[fleet]\nhosts = 40\nversion = "a"\nseed = 3\n'
    text += '[[faults]]\nkind = "stale"\nshare = 0.001\n[[faults]]\nkind = "stale"\nshare = 0.25\n'
    text += '[[faults]]\nkind = "stale"\nshare = 1\n'
    tiny, quarter, every = scenario_file.parse(text).faults
    assert tiny.hosts == scenario.pick_hosts(3, 0, 1, 40)
    assert quarter.hosts == scenario.pick_hosts(3, 1, 10, 40)
    assert every.hosts == tuple(range(40))
    # The same file selects the same hosts every time.
    assert scenario_file.parse(text).faults == (tiny, quarter, every)


def test_names_use_the_fleets_host_names() -> None:
    text = 'name = "x"\nduration = 60\n[fleet]\nhosts = 12345\nversion = "a"\nhost_prefix = "n"\n'
    text += '[[faults]]\nkind = "stale"\nnames = ["n-12344", "n-00000", "n-00042"]\n'
    fleet = scenario_file.parse(text).fleet
    assert scenario_file.parse(text).faults[0].hosts == (0, 42, 12344)
    assert [fleet.host_name(i) for i in (0, 42, 12344)] == ["n-00000", "n-00042", "n-12344"]


PRESET_FACTS = {
    # name: (hosts, strategy, groups, fault kinds)
    "rollout": (20, "immediate", (("default", 1),), []),
    "fleet-lock": (30, "fleet_lock", (("default", 3),), []),
    "stalled": (12, "fleet_lock", (("default", 1),), ["keeps_slot"]),
    "faults": (
        40,
        "immediate",
        (("default", 1),),
        [
            "check_errors",
            "check_errors",
            "deploy_failures",
            "finalize_blocked",
            "updates_disabled",
            "agent_down",
            "stale",
            "deadend",
            "driver_registration",
        ],
    ),
    "demo": (
        24,
        "fleet_lock",
        (("default", 2),),
        ["check_errors", "agent_down", "check_errors", "finalize_blocked", "agent_down", "stale", "deadend"],
    ),
    "mixed": (
        16,
        "fleet_lock",
        (("default", 2),),
        ["check_errors", "deploy_failures", "finalize_blocked", "agent_down", "finalize_blocked"],
    ),
}


def test_preset_names_match_the_shipped_files() -> None:
    shipped = {entry.name for entry in (resources.files("local_exporter.sim") / "presets").iterdir()}
    assert shipped == {f"{name}.toml" for name in scenario_file.PRESETS}
    assert set(PRESET_FACTS) == set(scenario_file.PRESETS)


@pytest.mark.parametrize("name", scenario_file.PRESETS)
def test_preset_parses_with_its_facts(name: str) -> None:
    parsed = scenario_file.preset(name)
    hosts, strategy, groups, kinds = PRESET_FACTS[name]
    assert parsed.name == name
    assert (parsed.fleet.hosts, parsed.fleet.strategy, parsed.fleet.groups) == (hosts, strategy, groups)
    assert [fault.kind for fault in parsed.faults] == kinds
    assert parsed.fleet.stream == "stable" and parsed.fleet.version == "40.20240504.3.0"
    assert [release.version for release in parsed.releases if release.os == FEDORA_COREOS] == ["40.20240519.3.0"]
    flatcar = parsed.flatcar.hosts if parsed.flatcar is not None else 0
    assert all(
        0 <= host < (hosts if fault.os == FEDORA_COREOS else flatcar) for fault in parsed.faults for host in fault.hosts
    )
    # The text users copy is the text the preset is: it parses to the same scenario.
    assert scenario_file.parse(scenario_file.preset_text(name)) == parsed
    assert scenario_file.preset_text(name).startswith("#")


def test_faults_preset_covers_every_kind_but_the_fleet_lock_ones_on_separate_hosts() -> None:
    faults = scenario_file.preset("faults").faults
    assert {fault.kind for fault in faults} == set(FAULT_KINDS) - {"keeps_slot", "steady_state_errors"}
    assert {fault.error for fault in faults if fault.kind == "check_errors"} == set(scenario.CHECK_ERROR_KINDS)
    assert next(fault for fault in faults if fault.kind == "finalize_blocked").users == 2
    down = next(fault for fault in faults if fault.kind == "agent_down")
    assert (down.start, down.end) == (3600.0, 7200.0)
    assert next(fault for fault in faults if fault.kind == "stale").start == 5400.0
    targeted = [fault.hosts for fault in faults if fault.kind != "deadend"]
    assert sum(map(len, targeted)) == len(set().union(*targeted))


def test_stalled_preset_keeps_the_only_slot() -> None:
    parsed = scenario_file.preset("stalled")
    (fault,) = parsed.faults
    assert fault.kind == "keeps_slot" and len(fault.hosts) == 1 and fault.start == 0 and fault.end is None


def test_unknown_preset() -> None:
    with pytest.raises(ScenarioError, match="unknown preset 'nope': choose one of rollout, fleet-lock"):
        scenario_file.preset("nope")


def test_load_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(scenario_file.preset_text("demo"), encoding="utf-8")
    assert scenario_file.load(path) == scenario_file.preset("demo")


def test_load_names_the_file_in_problems(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\nduration = "1h"\n[fleet]\nhosts = 0\nversion = "a"\n', encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        scenario_file.load(path)
    assert info.value.problems == [f"{path}:4: fleet.hosts: must be between 1 and 1000000, got 0"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (None, "cannot read scenario: No such file or directory"),
        (b'name = "\xff"\n', "scenario is not UTF-8 text (byte 8)"),
        ("name = [\n", "invalid TOML"),
    ],
    ids=["missing", "not-utf8", "invalid-toml"],
)
def test_load_unusable_file_is_one_clear_line(tmp_path: Path, make: bytes | str | None, message: str) -> None:
    path = tmp_path / "s.toml"
    if isinstance(make, bytes):
        path.write_bytes(make)
    elif isinstance(make, str):
        path.write_text(make, encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        scenario_file.load(path)
    (line,) = info.value.problems
    assert line.startswith(str(path)) and message in line


def test_crlf_and_byte_order_mark() -> None:
    text = '\ufeffname = "x"\r\nduration = "1h"\r\n[fleet]\r\nhosts = 2\r\nversion = "a"\r\nbogus = 1\r\n'
    with pytest.raises(ScenarioError) as info:
        scenario_file.parse(text, "s.toml")
    assert info.value.problems == ["s.toml:6: fleet.bogus: unknown key"]


def test_download_is_a_duration_that_blocks_the_deploy() -> None:
    parsed = scenario_file.parse('name = "x"\nduration = "1h"\ndownload = "2m"\n[fleet]\nhosts = 1\nversion = "a"\n')
    assert parsed.download == 120.0
    with pytest.raises(ScenarioError) as caught:
        scenario_file.parse(
            'name = "x"\nduration = "1h"\ndownload = "soon"\n[fleet]\nhosts = 1\nversion = "a"\n', "s.toml"
        )
    assert any(p.startswith("s.toml:3: download: ") for p in caught.value.problems), caught.value.problems


def test_a_mixed_fleet_has_flatcar_hosts_with_their_own_releases_and_faults() -> None:
    parsed = scenario_file.preset("mixed")
    assert parsed.flatcar == FlatcarFleetSpec(hosts=8, version="4152.2.0", locks=(("default", 2),))
    assert parsed.flatcar.host_name(7) == "flatcar-0007" and parsed.flatcar.stream == "stable"
    flatcar = [release for release in parsed.releases if release.os == FLATCAR]
    assert [(r.version, r.stream) for r in flatcar] == [("4230.2.1", "stable")]
    assert [f.kind for f in parsed.faults if f.os == FLATCAR] == [
        "check_errors",
        "deploy_failures",
        "finalize_blocked",
        "agent_down",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'name = "x"\nduration = "1h"\n[fleet]\nhosts = 1\nversion = "1"\n[[releases]]\nos = "flatcar"\nversion = "2"\nat = "1m"\n',
            ["s.toml:7: releases[0].os: needs a [flatcar] fleet"],
        ),
        (
            'name = "x"\nduration = "1h"\n[fleet]\nhosts = 1\nversion = "1"\n[flatcar]\nhosts = 2\nversion = "9"\n'
            '[[faults]]\nos = "flatcar"\nkind = "stale"\n',
            [
                "s.toml:11: faults[0].kind: a Flatcar host has no stale fault: one of check_errors, deploy_failures, "
                "finalize_blocked, updates_disabled, agent_down, keeps_slot"
            ],
        ),
        (
            'name = "x"\nduration = "1h"\n[fleet]\nhosts = 1\nversion = "1"\n[flatcar]\nhosts = 2\nversion = "9"\n'
            '[[releases]]\nos = "flatcar"\nversion = "9"\nat = "1m"\n',
            ["s.toml:11: releases[0].version: must differ from flatcar.version '9': the fleet already runs it"],
        ),
        (
            'name = "x"\nduration = "1h"\n[fleet]\nhosts = 1\nversion = "1"\n[flatcar]\nversion = "9"\n'
            'strategy = "reboot"\n[flatcar.locks]\na = 1\n',
            [
                "s.toml:6: flatcar.hosts: is required",
                's.toml:9: flatcar.locks: only with strategy = "etcd-lock": only locksmith\'s etcd lock has slots',
            ],
        ),
    ],
)
def test_bad_flatcar_scenarios_report_exactly(text: str, expected: list[str]) -> None:
    with pytest.raises(ScenarioError) as info:
        scenario_file.parse(text, "s.toml")
    assert info.value.problems == expected
