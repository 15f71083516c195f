"""Group os-update-agents: one host's update agent (down, stuck, failing to update or reboot)."""

from __future__ import annotations

from dataclasses import replace

from local_exporter.bundle import names, rules
from local_exporter.bundle.alerts.alert import Alert
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.rules import by, on, selected

#: Zincati's periodic strategy reboots only in its weekly maintenance windows: a host of that
#: strategy may wait up to a week for one before its staged update is overdue.
PERIODIC_WAIT_SECONDS = 7 * 24 * 3600
# What hosts reporting their own state say, selected by label.
CHECK_FAILURES, DEPLOY_FAILURES = 'kind="update_check"', 'kind="deploy"'
FAILING, DISABLED, STAGED = 'phase="failing"', 'phase="updates_disabled"', 'phase="staged"'
REBOOT_LOCK, MAINTENANCE_WINDOW = 'reason="reboot_lock"', 'reason="maintenance_window"'


def alerts(config: BundleConfig) -> list[Alert]:
    if not config.infer_phases:
        return _reported_alerts(config)
    host = config.host_labels
    agent = config.agents_selector
    phase = rules.PHASE

    def increase(metric: str, window: str, extra: str = "") -> str:
        return f"sum {by(host)} (increase({selected(metric, agent, extra)}[{window}]))"

    def rate(metric: str, window: str) -> str:
        return f"sum {by(host)} (rate({selected(metric, agent)}[{window}]))"

    def reported(family: str, matchers: str) -> str:
        return _reported(config, family, matchers)

    return [
        Alert(
            "AgentDown",
            "warning",
            f"max_over_time({selected(names.UP, agent)}[{config.down_window}]) == 0\n"
            # A host reporting its own phase answers its scrapes even when its agent does not.
            "or max without (source) (max_over_time("
            + selected(names.OS_UPDATE_SOURCE_UP, agent, 'source="agent"')
            + f"[{config.down_window}])) == 0",
            "A host's update agent cannot be read.",
            "The bridge on {{ $labels.instance }} answers, but cannot read the update agent (Zincati's metrics, "
            "or update_engine on the bus): the agent stopped, its socket is gone, or what it serves is broken.",
            config.agent_down_for,
        ),
        Alert(
            "AgentStale",
            "warning",
            f'max_over_time({phase}{{phase="stale"}}[{config.gauge_window}]) == 1',
            "A host's update agent stopped refreshing.",
            "Zincati on {{ $labels.instance }} has not refreshed for longer than its refresh period allows: "
            "its update loop is stuck.",
            config.agent_down_for,
        ),
        Alert(
            "ChecksFailing",
            "warning",
            f"{rate(names.CHECK_ERRORS, config.checks_failing_window)} / {on(host)} "
            f"{rate(names.CHECKS, config.checks_failing_window)} > 0.5\n"
            # A reporting host: every check since the last good one failed (value 1: 100 %).
            f"or {on(host)} {reported(names.OS_UPDATE_FAILURE, CHECK_FAILURES)}",
            "Update checks are failing on a host.",
            "{{ $value | humanizePercentage }} of the update checks on {{ $labels.instance }} failed "
            f"in the last {config.checks_failing_window}: the host cannot see new releases.",
            config.checks_failing_for,
        ),
        Alert(
            "DeployFailing",
            "warning",
            f"{increase(names.DEPLOY_FAILURES, config.failures_window)} >= 3\n"
            # A reporting host: its last attempt to download and install failed, and it has
            # been failing for the whole window (update_engine tries once per check).
            f"or {on(host)} (\n"
            f"  {reported(names.OS_UPDATE_FAILURE, DEPLOY_FAILURES)}\n"
            f"  and {on(host)} time() - {reported(names.OS_UPDATE_PHASE_START, FAILING)}"
            f" > {rules.seconds(config.failures_window)}\n"
            ")",
            "Deploying an update fails repeatedly on a host.",
            "Downloading and installing the update keeps failing on {{ $labels.instance }} "
            f"(Zincati: at least 3 failed deploys in {config.failures_window}; update_engine: every attempt for "
            f"{config.failures_window}); the agent retries for as long as the update is offered.",
        ),
        Alert(
            "FinalizeFailing",
            "warning",
            f"{increase(names.FINALIZE_FAILURES, config.failures_window)} >= 3",
            "Finalizing a staged update fails repeatedly on a host.",
            'rpm-ostree failed to finalize the staged update {{ printf "%.0f" $value }} times in the last '
            f"{config.failures_window} "
            "on {{ $labels.instance }}; under FleetLock the host keeps its reboot slot, which stalls the rollout.",
        ),
        Alert(
            "RebootSlotNotReleased",
            "warning",
            # Zincati retries steady-state on every tick (~5 min) until it succeeds, staying in
            # Initialized: errors moving within the window mean the slot is still held.
            increase(names.LOCK_ERRORS, config.phase_window, 'api="steady-state"') + " > 0",
            "A host rebooted but cannot release its reboot slot.",
            "{{ $labels.instance }}"
            + (f" (FleetLock group {{{{ $labels.{config.group_label} }}}})" if config.group_label else "")
            + " rebooted but its FleetLock steady-state request keeps failing: it still holds a reboot slot, "
            "which the rest of its group waits for, and checks for no update until it is released.",
            config.confirm_for,
        ),
        Alert(
            "RebootPending",
            "warning",
            # A reporting host (any OS): the age of its staged phase; else Zincati's last transition.
            f"{_reported_reboot_pending(config)}\nor {on(host)} (\n{_reboot_pending(config)}\n)",
            "A host has an update staged but does not reboot.",
            "{{ $labels.instance }} has had an update staged for {{ $value | humanizeDuration }} without "
            "rebooting (logged-in users, a failing finalization, or its strategy).",
            config.confirm_for,
            keep_firing_for=config.gauge_window,
        ),
        Alert(
            "BootedDeadEnd",
            "warning",
            f"max_over_time({selected(names.DEADEND, agent)}[{config.gauge_window}]) == 1",
            "A host runs a dead-end release.",
            "{{ $labels.instance }} is booted into a release marked as a dead end: it needs a manual update path.",
            config.confirm_for,
        ),
        Alert(
            "UpdatesDisabled",
            "info",
            f"max_over_time({selected(names.UPDATES_ENABLED, agent)}[{config.gauge_window}]) == 0\n"
            f"or {on(host)} {reported(names.OS_UPDATE_PHASE, DISABLED)}",
            "Automatic updates are disabled on a host.",
            "Automatic updates are disabled on {{ $labels.instance }} (Zincati's config; on Flatcar "
            "SERVER=disabled or /usr/.noupdate): it will not follow rollouts.",
            config.disabled_for,
        ),
    ]


def _reboot_pending(config: BundleConfig) -> str:
    """Hosts staged longer than `staged_for` (a week longer under the periodic strategy).

    Only hosts in phase `staged`: a host waiting for a reboot slot is throttled by design, and a
    lock that stops turning is the fleet-level OSUpdateRebootLockContended; an alert per waiting
    host would page thousands of times in a slow rollout. Zincati stamps real state transitions
    only (not postponements), so while a host is staged the age of its last state change is how
    long it has been staged: instant vectors, cheap at 100,000 hosts (docs/benchmarks.md).
    """
    host = config.host_labels
    agent = config.agents_selector
    overdue = rules.seconds(config.staged_for)
    staged_age = f"max {by(host)} (time() - {selected(names.LATEST_STATE_CHANGE, agent)})"
    periodic = selected(names.STRATEGY, agent, 'strategy="periodic"')
    return (
        f"{staged_age} > {overdue}\n"
        f'and {on(host)} max_over_time({rules.PHASE}{{phase="staged"}}[{config.gauge_window}])\n'
        f"unless {on(host)} (\n"
        f"  {staged_age} < {overdue + PERIODIC_WAIT_SECONDS}\n"
        f"  and {on(host)} {periodic}\n"
        ")"
    )


def _reported(config: BundleConfig, family: str, matchers: str) -> str:
    """What hosts reporting their own state (any OS: the only way a Flatcar host reports) say,
    by label, per host: a series of the hosts in question only."""
    return f"max {by(config.host_labels)} ({selected(family, config.agents_selector, matchers)})"


def _reported_reboot_pending(config: BundleConfig) -> str:
    """Hosts staged (their own phase) longer than `staged_for`, but those waiting for a reboot
    slot (throttling by design: OSUpdateRebootLockContended) and those waiting for their
    maintenance window within a week."""
    host = config.host_labels
    agent = config.agents_selector

    def own(family: str, matchers: str) -> str:
        return _reported(config, family, matchers)

    overdue = rules.seconds(config.staged_for)
    staged_age = f"time() - {own(names.OS_UPDATE_PHASE_START, STAGED)}"
    window = f"{own(names.OS_UPDATE_WAITING, MAINTENANCE_WINDOW)} or {on(host)} " + selected(
        names.STRATEGY, agent, 'strategy="periodic"'
    )
    return (
        f"{staged_age} > {overdue}\n"
        f"unless {on(host)} {own(names.OS_UPDATE_WAITING, REBOOT_LOCK)}\n"
        f"unless {on(host)} (\n"
        f"  {staged_age} < {overdue + PERIODIC_WAIT_SECONDS}\n"
        f"  and {on(host)} ({window})\n"
        ")"
    )


def _reported_alerts(config: BundleConfig) -> list[Alert]:
    """The same alerts where every host reports its own state (`infer_phases = false`).

    Each reads a series that exists only for the hosts in question (a phase, a failure kind, a
    strategy, selected by label), never a gauge of every host filtered by value: at 100,000
    hosts that is milliseconds instead of seconds per evaluation (docs/benchmarks.md). The
    bridge judged the phase from its own reads, so no window of counter movement is needed.
    """

    def own(family: str, matchers: str) -> str:
        return _reported(config, family, matchers)

    def in_phase(phase: str) -> str:
        return own(names.OS_UPDATE_PHASE, f'phase="{phase}"')

    kept = {alert.name: alert for alert in alerts(replace(config, infer_phases=True))}
    return [
        replace(
            kept["AgentDown"],
            # The host reports agent_down. A bridge that does not answer at all is
            # OSUpdateBridgeDown's.
            expr=in_phase("agent_down"),
            description="The bridge on {{ $labels.instance }} cannot read the update agent (Zincati, or "
            "update_engine on the bus): the agent stopped or stopped ticking, or its socket is gone.",
        ),
        replace(
            kept["ChecksFailing"],
            expr=own(names.OS_UPDATE_FAILURE, 'kind="update_check"'),
            description="Every update check on {{ $labels.instance }} has failed since the last good one, for "
            f"{config.checks_failing_for}: the host cannot see new releases.",
        ),
        kept["DeployFailing"],
        kept["FinalizeFailing"],
        kept["RebootSlotNotReleased"],
        replace(kept["RebootPending"], expr=_reported_reboot_pending(config)),
        replace(kept["BootedDeadEnd"], expr=in_phase("dead_end")),
        replace(kept["UpdatesDisabled"], expr=in_phase("updates_disabled")),
    ]
