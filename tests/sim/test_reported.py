"""A backfilled host's os_update selector (sim/reported.py): the bridge's judging step run
in-process on the simulated agent and rpm-ostree state, read by read."""

from __future__ import annotations

import re

from local_exporter.sim.fleet import Fleet
from local_exporter.sim.reported import Reporter, settings
from local_exporter.sim.scenario import FaultSpec, FleetSpec, ReleaseSpec, Scenario

OLD, NEW = "40.20240504.3.0", "40.20240519.3.0"
READ_EVERY = 15.0
DOWN = 3


def _phases(hours: float = 3.0) -> dict[int, list[tuple[float, str, dict[str, str]]]]:
    """Each host's (time, phase, {family: label value}) at each read."""
    # One reboot slot and every host offered the release at once: they queue for the slot.
    fleet_spec = FleetSpec(hosts=4, version=OLD, strategy="fleet_lock", groups=(("default", 1),))
    scenario = Scenario(
        "reported",
        "",
        duration=hours * 3600,
        fleet=fleet_spec,
        releases=(ReleaseSpec(NEW, 1800.0),),
        faults=(FaultSpec("agent_down", (DOWN,), 600.0, 1200.0),),
        reboot=60.0,
    )
    fleet = Fleet(scenario, lambda t: 1_700_000_000 + t)
    selector = settings(READ_EVERY)
    reporters = [Reporter(host, "stable", selector) for host in fleet.hosts]
    seen: dict[int, list[tuple[float, str, dict[str, str]]]] = {host.index: [] for host in fleet.hosts}
    t = 0.0
    while t <= scenario.duration:
        fleet.advance(t)
        for host in fleet.hosts:
            text = reporters[host.index].render(host, fleet.render(host.index), 1_700_000_000 + t).decode()
            phases = re.findall(r'^os_update_phase\{[^}]*\bphase="(\w+)"[^}]*\} 1', text, re.M)
            assert len(phases) == 1, text  # exactly one phase at every read
            details = dict(
                re.findall(
                    r'^os_update_(target|waiting|failure)_info\{[^}]*\b(?:version|reason|kind)="([^"]+)"', text, re.M
                )
            )
            seen[host.index].append((t, phases[0], details))
        t += READ_EVERY
    return seen


def test_a_throttled_rollout_read_by_read() -> None:
    seen = _phases()
    for host, reads in seen.items():
        before = {phase for t, phase, _ in reads if t < 1800.0 and not (host == DOWN and 600.0 <= t < 1300.0)}
        assert before == {"idle"}, (host, before)
        # Every host ends on the new release, rebooted into it (a real reboot, not a restart).
        rebooted = [details for _, phase, details in reads if phase == "rebooted"]
        assert rebooted and rebooted[0].get("target") == NEW, host
    # One slot for four hosts: some host waited for it, staged, with the target known.
    waiting = [details for reads in seen.values() for _, phase, details in reads if details.get("waiting")]
    assert waiting and all(d["waiting"] == "reboot_lock" and d["target"] == NEW for d in waiting)
    # The host whose agent was gone for ten minutes shows agent_down meanwhile, and an agent
    # restart is not a reboot: it comes back idle, not rebooted.
    down = [(t, phase) for t, phase, _ in seen[DOWN] if 600.0 <= t < 1800.0]
    assert {phase for t, phase in down if 800.0 <= t < 1200.0} == {"agent_down"}
    assert {phase for t, phase in down if t >= 1300.0} == {"idle"}
