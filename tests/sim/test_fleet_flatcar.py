"""A mixed fleet's Flatcar hosts in motion (the `mixed` preset): they check, download, wait for
locksmith's etcd lock two at a time, reboot into the new release and give the slot back; the
faults do what they say."""

from __future__ import annotations

from local_exporter.agents import locksmith
from local_exporter.agents import update_engine as api
from local_exporter.sim import scenario_file
from local_exporter.sim.fleet import Fleet

START = 1_700_000_000.0


def _fleet() -> Fleet:
    return Fleet(scenario_file.preset("mixed"), lambda t: START + t)


def test_the_flatcar_hosts_roll_out_two_at_a_time_and_the_faults_hold_theirs_back() -> None:
    fleet = _fleet()
    assert [h.name for h in fleet.flatcar[:2]] == ["flatcar-0000", "flatcar-0001"]
    scenario = fleet.scenario
    faults = {f.kind: f.hosts for f in scenario.faults if f.os == "flatcar"}
    most_rebooting = 0
    operations: set[str] = set()
    for minute in range(int(scenario.duration // 60) + 60):
        fleet.advance(minute * 60.0)
        most_rebooting = max(most_rebooting, len(fleet.locks.holders("default")))
        for host in fleet.flatcar:
            operations.update(change.operation for change in host.agent.take_changes())
    # locksmith's etcd lock: never more holders than slots, and every slot given back.
    assert most_rebooting == 2 and fleet.locks.holders("default") == ()
    versions = {host.name: host.agent.version for host in fleet.flatcar}
    failing = {fleet.flatcar[i].name for i in faults["deploy_failures"]}
    assert {name for name, version in versions.items() if version != "4230.2.1"} == failing
    # The statuses a real update_engine broadcasts, the error event included; never VERIFYING.
    assert operations == set(api.STATUSES) - {api.VERIFYING}
    for host in fleet.flatcar:
        assert host.boots == (0 if host.name in failing else 1)
        assert host.agent.coordinator in (locksmith.RUNNING, locksmith.REBOOT_PLANNED)


def test_a_stopped_update_engine_comes_back_where_it_was() -> None:
    fleet = _fleet()
    down = next(f for f in fleet.scenario.faults if f.os == "flatcar" and f.kind == "agent_down")
    host = fleet.flatcar[down.hosts[0]]
    fleet.advance(down.start + 1)
    assert not host.up
    fleet.advance(down.end or 0)
    assert host.up
