"""The Zincati model: its exact exposition, its lazily appearing families and its state machine."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from local_exporter.demo.example import example_payload
from local_exporter.sim.zincati import (
    MAX_DEPLOY_ATTEMPTS,
    MAX_FINALIZE_POSTPONEMENTS,
    POSTPONE_PERIOD,
    REFRESH_PERIOD,
    Environment,
    State,
    ZincatiAgent,
    ZincatiConfig,
    ZincatiIdentity,
    format_value,
)

T0 = 1735900000
BOOTED = "41.20250105.3.0"
NEXT = "41.20250119.3.0"
AWS = ZincatiIdentity(BOOTED, basearch="x86_64", stream="stable", platform="aws")
FLEET_LOCK = ZincatiConfig(strategy="fleet_lock")
BUSY = Environment(pre_reboot_error="failed_lock")


def families(agent: ZincatiAgent) -> dict[str, tuple[str, set[tuple[tuple[str, str], ...]]]]:
    """Exposed name -> (type, label sets of its samples), as a Prometheus parser reads the output.

    prometheus_client's parser names counter families without `_total` and adds `_total` to the
    samples of Zincati's `_total`-less counters, so the exposed names come from the `# TYPE` lines.
    """
    text = agent.render().decode()
    exposed = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    parsed = {}
    for family in text_string_to_metric_families(text):
        name = family.name if family.name in exposed else family.name + "_total"
        assert name in exposed
        labels = {tuple(sorted(sample.labels.items())) for sample in family.samples}
        parsed[name] = (family.type, labels)
    return parsed


def state(agent: ZincatiAgent) -> State:
    """The agent's state, read through a call so that mypy does not narrow it across ticks."""
    return agent.state


def run_until(agent: ZincatiAgent, now: float, state: State, env: Environment | None = None) -> float:
    """Tick at `now` until `state` is reached, as Zincati does after each state change."""
    for _ in range(10):
        if agent.state is state:
            return now
        agent.tick(now, env)
    raise AssertionError(f"stuck in {agent.state}")


def example_host() -> ZincatiAgent:
    """The host of examples/zincati.prom, built only through the public API.

    Timeline: start at T0; initialize, report steady (FleetLock steady-state) and check once, at
    once (each state change re-ticks immediately, except into NoNewUpdate); then a check every
    310 s (300 s + jitter), two failing with HTTP 503; the 12th check at T0+3410 offers NEXT,
    which is staged at once; the three finalization ticks at T0+3710/4010/4310 find the reboot
    semaphore full.
    """
    agent = ZincatiAgent(AWS, FLEET_LOCK)
    agent.start(T0)
    run_until(agent, T0, State.NO_NEW_UPDATE)
    for k in range(1, 12):  # checks 2..12
        env = (
            Environment(check_error="generic_http_503") if k in (3, 4) else Environment(offer=NEXT if k == 11 else None)
        )
        agent.tick(T0 + 310 * k, env)
    assert state(agent) is State.UPDATE_AVAILABLE
    assert agent.tick(T0 + 3410) == 0.0
    assert state(agent) is State.UPDATE_STAGED
    for now in (T0 + 3710, T0 + 4010, T0 + 4310):
        assert agent.tick(now, BUSY) == REFRESH_PERIOD
    return agent


def test_example_host_renders_the_bundled_example_byte_for_byte() -> None:
    assert example_host().render() == example_payload()


def test_fresh_process_exports_only_configuration() -> None:
    agent = ZincatiAgent(AWS, FLEET_LOCK)
    assert agent.render() == b""  # not started: like an encoder failure, nothing is written
    agent.start(T0)
    assert families(agent) == {
        "process_start_time_seconds": ("gauge", {()}),
        "zincati_identity_os_info": (
            "gauge",
            {(("basearch", "x86_64"), ("os_version", BOOTED), ("platform", "aws"), ("stream", "stable"))},
        ),
        "zincati_update_agent_latest_state_change_timestamp": ("gauge", {()}),
        # The identity's `rpm-ostree status --booted`, before the socket exists (src/identity/mod.rs).
        "zincati_rpm_ostree_status_attempts_total": ("counter", {()}),
        "zincati_update_agent_updates_allow_downgrade": ("gauge", {()}),
        "zincati_update_agent_updates_enabled": ("gauge", {()}),
        "zincati_updates_strategy_mode": ("gauge", {(("strategy", "fleet_lock"),)}),
    }
    run_until(agent, T0, State.NO_NEW_UPDATE)
    names = set(families(agent))
    for lazy in (
        "zincati_cincinnati_update_checks_errors_total",
        "zincati_rpm_ostree_deploy_attempts_total",
        "zincati_rpm_ostree_deploy_failures_total",
        "zincati_rpm_ostree_finalize_attempts_total",
        "zincati_rpm_ostree_status_failures_total",
        "zincati_update_agent_finalization_attempts",
        "zincati_updates_strategy_can_finalize_responses",
        "zincati_strategy_fleet_lock_errors_total",
        "zincati_identity_rollout_wariness",
        "zincati_updates_strategy_periodic_schedule_length_minutes",
    ):
        assert lazy not in names
    assert families(agent)["zincati_strategy_fleet_lock_requests_total"] == ("counter", {(("api", "steady-state"),)})


def test_families_appear_as_the_host_moves_and_reset_on_reboot() -> None:
    agent = ZincatiAgent(AWS, FLEET_LOCK)
    agent.start(T0)
    run_until(agent, T0, State.NO_NEW_UPDATE)
    agent.tick(T0 + 300, Environment(check_error="client_failed_request"))
    assert families(agent)["zincati_cincinnati_update_checks_errors_total"] == (
        "counter",
        {(("kind", "client_failed_request"),)},
    )
    agent.tick(T0 + 600, Environment(offer=NEXT))
    run_until(agent, T0 + 600, State.UPDATE_STAGED)
    parsed = families(agent)
    assert parsed["zincati_rpm_ostree_deploy_attempts_total"][0] == "counter"
    assert "zincati_rpm_ostree_deploy_failures_total" not in parsed
    agent.tick(T0 + 900)  # the lock is free: finalize
    assert state(agent) is State.UPDATE_FINALIZED
    parsed = families(agent)
    # Counters without `_total` still parse as counters under their own names.
    assert parsed["zincati_update_agent_finalization_successes"] == ("counter", {()})
    assert parsed["zincati_updates_strategy_can_finalize_responses"] == ("counter", {(("response", "allow"),)})
    agent.tick(T0 + 900)
    assert state(agent) is State.END

    agent.reboot(T0 + 1000)
    assert state(agent) is State.START
    assert agent.value("process_start_time_seconds") == T0 + 1000
    assert agent.value("zincati_identity_os_info", basearch="x86_64", os_version=NEXT, platform="aws", stream="stable")
    assert agent.value("zincati_update_agent_finalization_attempts") is None
    assert agent.value("zincati_cincinnati_update_checks_total") is None
    assert f'os_version="{NEXT}"' in agent.render().decode()
    assert BOOTED not in agent.render().decode()


def test_promtool_reports_exactly_zincatis_own_naming() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=example_host().render(), capture_output=True, check=False
    )
    # Zincati's real naming, which a faithful simulator keeps: two gauges ending in `_count` (promtool
    # reserves that for histograms/summaries) and two of the four `_total`-less counters (the other
    # two, finalization_successes and finalization_blocked_count, are absent from this host).
    # Exit status 3 means lint findings only, no parse error.
    assert result.returncode == 3
    findings = (result.stdout + result.stderr).decode().splitlines()
    assert sorted(findings) == [
        'zincati_cincinnati_graph_edges_count non-histogram and non-summary metrics should not have "_count" suffix',
        'zincati_cincinnati_graph_nodes_count non-histogram and non-summary metrics should not have "_count" suffix',
        'zincati_update_agent_finalization_attempts counter metrics should have "_total" suffix',
        'zincati_updates_strategy_can_finalize_responses counter metrics should have "_total" suffix',
    ]


def test_state_machine_walks_zincatis_states() -> None:
    agent = ZincatiAgent(AWS, ZincatiConfig(strategy="immediate"))
    agent.start(T0)
    seen = [agent.state]
    now: float = T0
    env = Environment()
    while agent.state is not State.END:
        if agent.state is State.NO_NEW_UPDATE:
            env = Environment(offer=NEXT)
        now += agent.tick(now, env)
        seen.append(agent.state)
    assert seen == [
        State.START,
        State.INITIALIZED,
        State.REPORTED_STEADY,
        State.NO_NEW_UPDATE,
        State.UPDATE_AVAILABLE,
        State.UPDATE_STAGED,
        State.UPDATE_FINALIZED,
        State.END,
    ]
    assert agent.value("zincati_strategy_fleet_lock_requests_total", api="steady-state") is None
    assert agent.value("zincati_update_agent_latest_state_change_timestamp") == now
    assert agent.value("zincati_update_agent_last_refresh_timestamp") == now


def test_updates_disabled_ends_at_once_and_ticks_rarely() -> None:
    agent = ZincatiAgent(AWS, ZincatiConfig(updates_enabled=False))
    agent.start(T0)
    assert agent.tick(T0) == 0.0
    assert state(agent) is State.END
    assert agent.tick(T0) > 3600
    assert agent.value("zincati_update_agent_updates_enabled") == 0


def test_twelve_failed_deploys_end_a_cycle_and_the_next_check_starts_another() -> None:
    # coreos/zincati be76c4aa, src/update_agent/mod.rs: update_abandoned only moves to
    # NoNewUpdate; the denylist is written at init and for a wrong stream (actor.rs), so the
    # release is offered, and deployed, again.
    agent = ZincatiAgent(AWS)
    agent.start(T0)
    run_until(agent, T0, State.NO_NEW_UPDATE)
    agent.tick(T0, Environment(offer=NEXT))
    failing = Environment(deploy_ok=False)
    for attempt in range(1, MAX_DEPLOY_ATTEMPTS):
        agent.tick(T0 + attempt, failing)
        assert state(agent) is State.UPDATE_AVAILABLE
    assert agent.tick(T0 + 100, failing) == 0.0
    assert state(agent) is State.NO_NEW_UPDATE
    assert agent.value("zincati_rpm_ostree_deploy_attempts_total") == MAX_DEPLOY_ATTEMPTS
    assert agent.value("zincati_rpm_ostree_deploy_failures_total") == MAX_DEPLOY_ATTEMPTS
    agent.tick(T0 + 101, Environment(offer=NEXT))  # offered again: a new cycle
    assert state(agent) is State.UPDATE_AVAILABLE
    assert agent.value("zincati_cincinnati_ignored_update_targets") == 0
    agent.tick(T0 + 102, failing)
    assert agent.value("zincati_rpm_ostree_deploy_failures_total") == MAX_DEPLOY_ATTEMPTS + 1


def staged(config: ZincatiConfig) -> ZincatiAgent:
    agent = ZincatiAgent(AWS, config)
    agent.start(T0)
    run_until(agent, T0, State.NO_NEW_UPDATE)
    agent.tick(T0, Environment(offer=NEXT))
    run_until(agent, T0, State.UPDATE_STAGED)
    return agent


def test_active_users_postpone_ten_times_then_finalize_anyway() -> None:
    agent = staged(ZincatiConfig())
    users = Environment(active_users=2)
    for n in range(1, MAX_FINALIZE_POSTPONEMENTS + 1):
        assert agent.tick(T0 + 60 * n, users) == POSTPONE_PERIOD
        assert state(agent) is State.UPDATE_STAGED
    assert agent.value("zincati_update_agent_postponed_finalizations_total") == MAX_FINALIZE_POSTPONEMENTS
    assert (
        agent.value("zincati_update_agent_finalization_blocked_count", reason="active_usersessions")
        == MAX_FINALIZE_POSTPONEMENTS
    )
    assert agent.value("zincati_update_agent_finalization_detected_active_users") == 2
    agent.tick(T0 + 3600, users)
    assert state(agent) is State.UPDATE_FINALIZED
    assert agent.value("zincati_update_agent_finalization_attempts") == MAX_FINALIZE_POSTPONEMENTS + 1
    assert agent.value("zincati_update_agent_finalization_successes") == 1


def test_busy_fleet_lock_is_an_error_never_a_denial() -> None:
    agent = staged(FLEET_LOCK)
    agent.tick(T0 + 300, Environment(pre_reboot_error="failed_lock"))
    agent.tick(T0 + 600, Environment(pre_reboot_error="lock_held"))
    assert state(agent) is State.UPDATE_STAGED
    assert agent.value("zincati_updates_strategy_can_finalize_responses", response="error") == 2
    assert agent.value("zincati_updates_strategy_can_finalize_responses", response="deny") is None
    assert agent.value("zincati_strategy_fleet_lock_errors_total", api="pre-reboot", kind="failed_lock") == 1
    assert agent.value("zincati_strategy_fleet_lock_errors_total", api="pre-reboot", kind="lock_held") == 1
    assert agent.value("zincati_strategy_fleet_lock_requests_total", api="pre-reboot") == 2
    assert agent.value("zincati_rpm_ostree_finalize_attempts_total") is None
    text = agent.render().decode()
    # Children are sorted by their label values.
    assert text.index('kind="failed_lock"') < text.index('kind="lock_held"')
    agent.tick(T0 + 900)
    assert state(agent) is State.UPDATE_FINALIZED
    assert agent.value("zincati_updates_strategy_can_finalize_responses", response="allow") == 1


def test_periodic_strategy_denies_outside_its_window() -> None:
    agent = staged(ZincatiConfig(strategy="periodic", periodic_schedule_minutes=120))
    agent.tick(T0 + 300, Environment(window_open=False))
    assert agent.value("zincati_updates_strategy_can_finalize_responses", response="deny") == 1
    assert agent.value("zincati_updates_strategy_periodic_schedule_length_minutes") == 120
    assert state(agent) is State.UPDATE_STAGED


def test_wariness_is_exported_only_when_configured_in_shortest_form() -> None:
    agent = ZincatiAgent(AWS, ZincatiConfig(rollout_wariness=0.25))
    agent.start(T0)
    assert b"\nzincati_identity_rollout_wariness 0.25\n" in agent.render()
    assert format_value(1.0) == "1"
    assert format_value(1e-7) == "0.0000001"
    assert format_value(1735904000) == "1735904000"


def test_configuration_is_validated() -> None:
    with pytest.raises(ValueError, match="periodic"):
        ZincatiConfig(strategy="periodic")
    with pytest.raises(ValueError, match="wariness"):
        ZincatiConfig(rollout_wariness=1.5)


def test_promtool_on_a_host_showing_every_optional_family() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed")
    agent = staged(ZincatiConfig(strategy="periodic", periodic_schedule_minutes=60, rollout_wariness=0.5))
    agent.tick(T0 + 60, Environment(active_users=1))
    agent.tick(T0 + 120)
    assert state(agent) is State.UPDATE_FINALIZED
    result = subprocess.run([promtool, "check", "metrics"], input=agent.render(), capture_output=True, check=False)
    assert result.returncode == 3
    # Beyond the example's four: the other two `_total`-less counters (blocked_count also ends in
    # `_count`) and the periodic schedule gauge's unit. All are the agent's names, kept as they are.
    assert sorted((result.stdout + result.stderr).decode().splitlines()) == [
        'zincati_cincinnati_graph_edges_count non-histogram and non-summary metrics should not have "_count" suffix',
        'zincati_cincinnati_graph_nodes_count non-histogram and non-summary metrics should not have "_count" suffix',
        'zincati_update_agent_finalization_attempts counter metrics should have "_total" suffix',
        'zincati_update_agent_finalization_blocked_count counter metrics should have "_total" suffix',
        'zincati_update_agent_finalization_blocked_count non-histogram and non-summary metrics should not have "_count" suffix',
        'zincati_update_agent_finalization_successes counter metrics should have "_total" suffix',
        'zincati_updates_strategy_can_finalize_responses counter metrics should have "_total" suffix',
        'zincati_updates_strategy_periodic_schedule_length_minutes use base unit "seconds" instead of "minutes"',
    ]


# --- Zincati's own behaviour, from coreos/zincati be76c4aa -------------------------------------


def test_the_first_check_without_an_update_waits_a_full_period() -> None:
    # src/update_agent/actor.rs: every state change re-ticks at once except ReportedSteady ->
    # NoNewUpdate, which waits the steady interval.
    agent = ZincatiAgent(AWS)
    agent.start(T0)
    assert agent.tick(T0) == 0.0  # StartState -> Initialized
    assert agent.tick(T0) == 0.0  # Initialized -> ReportedSteady
    assert agent.tick(T0) == REFRESH_PERIOD and state(agent) is State.NO_NEW_UPDATE
    assert agent.value("zincati_cincinnati_update_checks_total") == 1


def test_driver_registration_is_retried_inside_its_tick_with_backoff() -> None:
    # src/rpm_ostree/cli_deploy.rs deploy_register_driver: 1, 2, 4 ... 256 s between attempts,
    # each failure counted; the tick's timestamp stands still meanwhile (actor.rs).
    agent = ZincatiAgent(AWS)
    agent.start(T0)
    failing = Environment(register_driver_ok=False)
    now, delays = float(T0), []
    for _ in range(11):
        delays.append(agent.tick(now, failing))
        assert agent.exact_delay and state(agent) is State.START
        now += delays[-1]
    assert delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 256, 256]
    assert agent.value("zincati_rpm_ostree_register_driver_failures_total") == 11
    assert agent.value("zincati_update_agent_last_refresh_timestamp") == T0
    assert agent.tick(now) == 0.0 and state(agent) is State.INITIALIZED
    assert agent.value("zincati_update_agent_last_refresh_timestamp") == T0  # still the same tick


def test_updates_disabled_register_no_driver() -> None:
    agent = ZincatiAgent(AWS, ZincatiConfig(updates_enabled=False))
    agent.start(T0)
    agent.tick(T0, Environment(register_driver_ok=False))
    assert state(agent) is State.END
    assert agent.value("zincati_rpm_ostree_register_driver_failures_total") is None


def test_status_goes_through_the_cache_once_per_process() -> None:
    # src/rpm_ostree/cli_status.rs: only the StartState tick queries through the cache (a miss, the
    # cache being empty); the identity at start and the stream check after staging bypass it;
    # update checks do not call rpm-ostree at all.
    agent = ZincatiAgent(AWS)
    agent.start(T0)
    assert agent.value("zincati_rpm_ostree_status_attempts_total") == 1
    run_until(agent, T0, State.NO_NEW_UPDATE)
    for k in range(1, 6):
        agent.tick(T0 + 300 * k)
    assert agent.value("zincati_rpm_ostree_status_cache_requests_total") == 1
    assert agent.value("zincati_rpm_ostree_status_cache_misses_total") == 1
    assert agent.value("zincati_rpm_ostree_status_attempts_total") == 2
    agent.tick(T0 + 1800, Environment(offer=NEXT))
    agent.tick(T0 + 1800)
    assert state(agent) is State.UPDATE_STAGED
    assert agent.value("zincati_rpm_ostree_status_attempts_total") == 3


def test_a_deploy_blocks_its_tick_for_the_download() -> None:
    agent = ZincatiAgent(AWS)
    agent.start(T0)
    run_until(agent, T0, State.NO_NEW_UPDATE)
    agent.tick(T0 + 300, Environment(offer=NEXT))
    downloading = Environment(deploy_seconds=240)
    assert agent.tick(T0 + 300, downloading) == 240 and agent.exact_delay
    assert state(agent) is State.UPDATE_AVAILABLE
    assert agent.value("zincati_rpm_ostree_deploy_attempts_total") == 1  # counted as it starts
    assert agent.tick(T0 + 540, downloading) == 0.0 and state(agent) is State.UPDATE_STAGED
    assert agent.value("zincati_update_agent_last_refresh_timestamp") == T0 + 300
    assert agent.value("zincati_update_agent_latest_state_change_timestamp") == T0 + 540


def test_the_dead_end_flag_needs_the_booted_release_in_the_graph() -> None:
    # src/cincinnati/mod.rs find_update: a booted release missing from the graph is "no update",
    # with no error, and leaves the dead-end and ignored-targets gauges as they were.
    agent = ZincatiAgent(AWS)
    agent.start(T0)
    run_until(agent, T0, State.NO_NEW_UPDATE, Environment(booted_in_graph=False))
    assert agent.value("zincati_cincinnati_booted_release_is_deadend") is None
    assert agent.value("zincati_cincinnati_graph_nodes_count") == 18
    agent.tick(T0 + 300, Environment(booted_deadend=True))
    assert agent.value("zincati_cincinnati_booted_release_is_deadend") == 1
    agent.tick(T0 + 600, Environment(booted_deadend=False, booted_in_graph=False))
    assert agent.value("zincati_cincinnati_booted_release_is_deadend") == 1


def test_postponed_finalizations_wait_60_s_flat_and_count_users_to_the_last_tick() -> None:
    # mod.rs: UpdateStaged with postponements used re-ticks after 60 s without jitter; the
    # active-users gauge is set on every tick the strategy allows (usersessions_can_finalize).
    agent = ZincatiAgent(AWS)
    agent.start(T0)
    run_until(agent, T0, State.NO_NEW_UPDATE)
    agent.tick(T0 + 300, Environment(offer=NEXT))
    agent.tick(T0 + 300)
    users = Environment(active_users=2)
    now = T0 + 600.0
    for _ in range(10):
        assert agent.tick(now, users) == 60 and agent.exact_delay
        now += 60
    assert agent.value("zincati_update_agent_postponed_finalizations_total") == 10
    agent.tick(now, users)  # the 11th: finalized anyway
    assert state(agent) is State.UPDATE_FINALIZED
    assert agent.value("zincati_update_agent_finalization_detected_active_users") == 2
