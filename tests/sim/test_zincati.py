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

    Timeline: start at T0; initialize, report steady (FleetLock steady-state) and the first two
    checks happen at once (each state change re-ticks immediately); then a check every 310 s
    (300 s + jitter), two failing with HTTP 503; an admin's rpm-ostree command stales the status
    cache once; the 12th check at T0+3100 offers NEXT, which is staged at once; the three
    finalization ticks at T0+3400/3700/4000 find the reboot semaphore full.
    """
    agent = ZincatiAgent(AWS, FLEET_LOCK)
    agent.start(T0)
    run_until(agent, T0, State.NO_NEW_UPDATE)
    assert agent.tick(T0) == REFRESH_PERIOD  # check 2, nothing new
    for k in range(1, 11):  # checks 3..12
        now = T0 + 310 * k
        if k == 5:
            agent.note_deployments_changed()
        env = (
            Environment(check_error="generic_http_503") if k in (3, 4) else Environment(offer=NEXT if k == 10 else None)
        )
        agent.tick(now, env)
    assert state(agent) is State.UPDATE_AVAILABLE
    assert agent.tick(T0 + 3100) == 0.0
    assert state(agent) is State.UPDATE_STAGED
    for now in (T0 + 3400, T0 + 3700, T0 + 4000):
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


def test_twelve_failed_deploys_abandon_the_release() -> None:
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
    agent.tick(T0 + 400, Environment(offer=NEXT))  # offered again: ignored
    assert state(agent) is State.NO_NEW_UPDATE
    assert agent.value("zincati_cincinnati_ignored_update_targets") == 1


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
