"""The fleet engine: rollouts, the reboot semaphore and every fault, through each host's own metrics."""

from __future__ import annotations

import dataclasses

from prometheus_client.parser import text_string_to_metric_families

from local_exporter.sim.fleet import Fleet, Host
from local_exporter.sim.scenario import FaultSpec, FleetSpec, ReleaseSpec, Scenario
from local_exporter.sim.scenario_file import PRESETS, preset
from local_exporter.sim.zincati import MAX_DEPLOY_ATTEMPTS, MAX_FINALIZE_POSTPONEMENTS, State
from tests.support.fleet import first_on

START = 1_800_000_000.0
OLD, NEW = "40.20240504.3.0", "40.20240519.3.0"
HOUR = 3600.0


def scenario(
    hosts: int = 10,
    *,
    strategy: str = "immediate",
    slots: int = 1,
    faults: tuple[FaultSpec, ...] = (),
    at: float = 600.0,
    rollout: float = HOUR,
    duration: float = 6 * HOUR,
    seed: int = 1,
) -> Scenario:
    fleet = FleetSpec(hosts=hosts, version=OLD, strategy=strategy, groups=(("default", slots),), seed=seed)  # type: ignore[arg-type]
    return Scenario("test", "", duration, fleet, (ReleaseSpec(NEW, at, rollout),), faults)


def make(s: Scenario) -> Fleet:
    return Fleet(s, lambda t: START + t)


def version(host: Host) -> str:
    return host.agent.identity.os_version


def value(host: Host, name: str, **labels: str) -> float:
    found = host.agent.value(name, **labels)
    return 0 if found is None else found


def test_a_healthy_rollout_reaches_every_host_no_sooner_than_its_wariness_allows() -> None:
    fleet = make(scenario(hosts=20))
    first_seen = first_on(fleet, NEW, 6 * HOUR, 60)
    assert all(version(host) == NEW for host in fleet.hosts)
    for host in fleet.hosts:
        # Offered at `at + w * rollout`, picked up at the next refresh (300 s + up to 10 %).
        reached = 600 + host.wariness * HOUR
        assert reached <= first_seen[host.name] <= reached + 330 + 60, host.name
    # Phased: the rollout took most of its window, not one refresh.
    assert max(first_seen.values()) - min(first_seen.values()) > HOUR / 2


def test_a_reboot_into_the_new_release_is_a_new_process() -> None:
    fleet = make(scenario(hosts=1, at=HOUR, rollout=0))
    host = fleet.hosts[0]
    fleet.advance(HOUR - 1)
    assert version(host) == OLD and host.agent.state is State.NO_NEW_UPDATE
    before = value(host, "zincati_cincinnati_update_checks_total")
    assert before >= 1
    fleet.advance(3 * HOUR)
    assert version(host) == NEW
    assert value(host, "process_start_time_seconds") > START + HOUR
    assert value(host, "zincati_identity_os_info", basearch="x86_64", os_version=NEW, platform="metal", stream="stable")
    # Counters start over; the finalization of the old process is gone with it.
    assert host.agent.value("zincati_update_agent_finalization_successes") is None
    assert host.agent.value("zincati_rpm_ostree_deploy_attempts_total") is None


def test_fleet_lock_never_reboots_more_hosts_than_slots_and_a_full_group_is_failed_lock() -> None:
    fleet = make(scenario(hosts=12, strategy="fleet_lock", slots=2, rollout=0))
    most = 0
    refused = 0.0
    for t in range(0, int(6 * HOUR) + 1, 10):
        fleet.advance(t)
        most = max(most, sum(host.rebooting for host in fleet.hosts))
        assert len(fleet.semaphores.holders("default")) <= 2
        refused = max(
            refused,
            *(
                value(h, "zincati_strategy_fleet_lock_errors_total", api="pre-reboot", kind="failed_lock")
                for h in fleet.hosts
            ),
        )
    assert most == 2
    assert all(version(host) == NEW for host in fleet.hosts)
    assert fleet.semaphores.holders("default") == ()  # every slot given back after boot
    assert refused > 0


def test_a_host_that_keeps_its_slot_stalls_the_rollout() -> None:
    # The bad host is the least wary, so it takes the only slot first.
    probe = make(scenario(hosts=8, strategy="fleet_lock"))
    bad = min(probe.hosts, key=lambda h: h.wariness).index
    fleet = make(scenario(hosts=8, strategy="fleet_lock", faults=(FaultSpec("keeps_slot", (bad,)),)))
    fleet.advance(6 * HOUR)
    host = fleet.hosts[bad]
    assert fleet.semaphores.holders("default") == (host.client_id,)
    assert host.agent.state is State.UPDATE_STAGED and version(host) == OLD
    assert value(host, "zincati_rpm_ostree_finalize_failures_total") > 10
    others = [h for h in fleet.hosts if h.index != bad]
    assert all(version(h) == OLD and h.agent.state is State.UPDATE_STAGED for h in others)
    assert all(
        value(h, "zincati_strategy_fleet_lock_errors_total", api="pre-reboot", kind="failed_lock") for h in others
    )


def test_update_check_errors_count_by_kind_and_hold_the_update_back_until_they_end() -> None:
    fault = FaultSpec("check_errors", (0,), 0.0, 3 * HOUR, error="client_failed_request")
    fleet = make(scenario(hosts=2, at=0, rollout=0, faults=(fault,)))
    fleet.advance(3 * HOUR - 1)
    host = fleet.hosts[0]
    errors = value(host, "zincati_cincinnati_update_checks_errors_total", kind="client_failed_request")
    assert errors == value(host, "zincati_cincinnati_update_checks_total") >= 30
    assert version(host) == OLD and version(fleet.hosts[1]) == NEW
    fleet.advance(4 * HOUR)
    assert version(host) == NEW


def test_deploy_failures_repeat_in_cycles_of_twelve_while_the_release_is_offered() -> None:
    # coreos/zincati be76c4aa, src/update_agent/mod.rs record_failed_deploy: after 12 failures in a
    # row the agent goes back to NoNewUpdate without denylisting the release; the check that
    # follows at once offers it again, and another cycle starts. About one cycle an hour.
    fleet = make(scenario(hosts=1, at=0, rollout=0, faults=(FaultSpec("deploy_failures", (0,)),)))
    fleet.advance(6 * HOUR)
    host = fleet.hosts[0]
    failures = value(host, "zincati_rpm_ostree_deploy_failures_total")
    assert failures is not None and failures >= 4 * MAX_DEPLOY_ATTEMPTS
    assert value(host, "zincati_rpm_ostree_deploy_attempts_total") == failures
    assert value(host, "zincati_cincinnati_ignored_update_targets") == 0
    assert version(host) == OLD and host.agent.state is State.UPDATE_AVAILABLE


def test_logged_in_users_postpone_finalization_a_bounded_number_of_times() -> None:
    fleet = make(scenario(hosts=1, at=0, rollout=0, faults=(FaultSpec("finalize_blocked", (0,), users=2),)))
    host = fleet.hosts[0]
    postponed_before_reboot = 0.0
    for t in range(0, int(3 * HOUR), 30):
        fleet.advance(t)
        if version(host) == OLD:
            postponed_before_reboot = value(host, "zincati_update_agent_postponed_finalizations_total")
            blocked = value(host, "zincati_update_agent_finalization_blocked_count", reason="active_usersessions")
            assert blocked == postponed_before_reboot
            if postponed_before_reboot:
                assert value(host, "zincati_update_agent_finalization_detected_active_users") == 2
    assert postponed_before_reboot == MAX_FINALIZE_POSTPONEMENTS
    assert version(host) == NEW  # finalized anyway once the postponements ran out


def test_updates_disabled_hosts_stay_put_without_checking() -> None:
    fleet = make(scenario(hosts=2, at=0, rollout=0, faults=(FaultSpec("updates_disabled", (1,)),)))
    fleet.advance(3 * HOUR)
    host = fleet.hosts[1]
    assert version(host) == OLD and host.agent.state is State.END
    assert value(host, "zincati_update_agent_updates_enabled") == 0
    assert host.agent.value("zincati_cincinnati_update_checks_total") is None
    assert version(fleet.hosts[0]) == NEW


def test_a_down_agent_serves_nothing_and_comes_back_as_a_new_process() -> None:
    fault = FaultSpec("agent_down", (0,), HOUR, 2 * HOUR)
    fleet = make(scenario(hosts=1, at=10 * HOUR, faults=(fault,), duration=12 * HOUR))
    fleet.advance(HOUR - 1)
    checks = value(fleet.hosts[0], "zincati_cincinnati_update_checks_total")
    assert checks > 5 and fleet.render(0) is not None
    fleet.advance(HOUR)
    assert fleet.render(0) is None and not fleet.hosts[0].up
    fleet.advance(2 * HOUR)
    body = fleet.render(0)
    assert body is not None
    assert value(fleet.hosts[0], "process_start_time_seconds") == START + 2 * HOUR
    assert value(fleet.hosts[0], "zincati_cincinnati_update_checks_total") < checks


def test_a_stale_agent_stops_refreshing_but_still_serves_its_last_values() -> None:
    fault = FaultSpec("stale", (0,), HOUR, 2 * HOUR)
    fleet = make(scenario(hosts=1, at=10 * HOUR, faults=(fault,), duration=12 * HOUR))
    fleet.advance(HOUR)
    frozen = fleet.render(0)
    refreshed = value(fleet.hosts[0], "zincati_update_agent_last_refresh_timestamp")
    fleet.advance(2 * HOUR - 1)
    assert fleet.render(0) == frozen
    assert START + HOUR - 330 <= refreshed <= START + HOUR
    fleet.advance(2 * HOUR + 1)
    assert value(fleet.hosts[0], "zincati_update_agent_last_refresh_timestamp") >= START + 2 * HOUR


def test_a_dead_end_release_is_reported_by_hosts_booted_on_it_and_has_no_update_while_marked() -> None:
    # graph.rs/policy.rs: a dead-end loses its outgoing edges, so a newer release is not offered
    # to the hosts on it until the marking is lifted (the fault's end).
    fleet = make(
        scenario(hosts=1, at=2 * HOUR, rollout=0, faults=(FaultSpec("deadend", (0,), 0.0, 3 * HOUR, version=OLD),))
    )
    fleet.advance(HOUR)
    assert value(fleet.hosts[0], "zincati_cincinnati_booted_release_is_deadend") == 1
    fleet.advance(2.9 * HOUR)
    assert version(fleet.hosts[0]) == OLD and fleet.hosts[0].agent.state is State.NO_NEW_UPDATE
    assert value(fleet.hosts[0], "zincati_cincinnati_booted_release_is_deadend") == 1
    assert value(fleet.hosts[0], "zincati_cincinnati_graph_nodes_count") == 2
    assert value(fleet.hosts[0], "zincati_cincinnati_graph_edges_count") == 0
    fleet.advance(4 * HOUR)
    assert version(fleet.hosts[0]) == NEW
    assert value(fleet.hosts[0], "zincati_cincinnati_booted_release_is_deadend") == 0


def test_the_same_scenario_gives_the_same_fleet_and_another_seed_another() -> None:
    def run(s: Scenario) -> list[bytes | None]:
        fleet = make(s)
        fleet.advance(3 * HOUR)
        return [fleet.render(host.index) for host in fleet.hosts]

    base = scenario(hosts=6, strategy="fleet_lock")
    assert run(base) == run(base)
    reseeded = dataclasses.replace(base, fleet=dataclasses.replace(base.fleet, seed=2))
    assert run(reseeded) != run(base)


# --- every host's output against the golden Zincati exposition ---------------------------------

Shape = dict[str, tuple[str, str, frozenset[str]]]


def shape(text: str) -> Shape:
    """Family -> (type, help, label names), as prometheus-client's parser reads an exposition."""
    return {
        family.name: (
            family.type,
            family.documentation,
            frozenset(name for sample in family.samples for name in sample.labels),
        )
        for family in text_string_to_metric_families(text)
    }


def test_every_host_of_every_preset_has_the_golden_zincati_shape(zincati_payload: bytes) -> None:
    golden = shape(zincati_payload.decode())
    # Families the golden host never moved; Zincati creates them lazily, with these shapes.
    lazy = {
        "zincati_cincinnati_update_checks_errors": ("counter", frozenset({"kind"})),
        "zincati_rpm_ostree_deploy_failures": ("counter", frozenset()),
        "zincati_rpm_ostree_finalize_attempts": ("counter", frozenset()),
        "zincati_rpm_ostree_finalize_failures": ("counter", frozenset()),
        "zincati_rpm_ostree_register_driver_failures": ("counter", frozenset()),
        "zincati_update_agent_finalization_successes": ("counter", frozenset()),
        "zincati_update_agent_postponed_finalizations": ("counter", frozenset()),
        "zincati_update_agent_finalization_blocked_count": ("counter", frozenset({"reason"})),
        "zincati_update_agent_finalization_detected_active_users": ("gauge", frozenset()),
        "zincati_strategy_fleet_lock_errors": ("counter", frozenset({"api", "kind"})),
        "zincati_identity_rollout_wariness": ("gauge", frozenset()),
    }
    seen: set[str] = set()
    for name in PRESETS:
        fleet = make(preset(name))
        for t in (0.0, 1800.0, 3 * HOUR):
            fleet.advance(t)
            for host in fleet.hosts:
                body = fleet.render(host.index)
                if body is None:
                    continue
                for family, (kind, help_text, labels) in shape(body.decode()).items():
                    seen.add(family)
                    if family in golden:
                        assert (kind, help_text, labels) == golden[family], (name, host.name, family)
                    else:
                        assert (kind, labels) == lazy[family], (name, host.name, family)
    # The presets move every family of the golden exposition and every lazy one but two: no
    # preset configures a wariness, and a successful finalization is followed at once by the
    # reboot that resets it (a scrape in between is the rare case it is on real hosts too).
    assert set(golden) <= seen
    assert set(lazy) - seen == {"zincati_identity_rollout_wariness", "zincati_update_agent_finalization_successes"}
