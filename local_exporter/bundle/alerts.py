"""Alerting rules: page when a rollout goes wrong, not for noise.

Every alert: the bundle's CamelCase prefix, `severity` critical/warning/info, a static `summary`,
a templated `description`, and a `runbook_url` to its section of docs/runbooks.md. Gauges are
read through `*_over_time` so that one failed scrape neither fires nor resolves an alert; error
counters through `increase`/`rate`, which are absent (not zero) while a family has never moved
and which handle the reset of every counter at a reboot. Per-host alerts carry `instance` so
that Alertmanager can inhibit them while that host's agent or bridge is down.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from local_exporter.bundle import names, rules
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.rules import by, on, selected

SEVERITIES = ("critical", "warning", "info")
#: Phases of a host in the middle of an update: what a rolling-update budget counts.
UPDATING_PHASES = ("staging", "staged", "rebooted")
#: Zincati's periodic strategy reboots only in its weekly maintenance windows: a host of that
#: strategy may wait up to a week for one before its staged update is overdue.
PERIODIC_WAIT_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    expr: str
    summary: str
    description: str
    for_: str = "0m"
    #: Keep firing this long after the expression stops matching: for alerts whose expression
    #: reads an instant gauge that one failed scrape removes (its staleness marker).
    keep_firing_for: str = "0m"

    def rule(self, config: BundleConfig) -> dict[str, Any]:
        name = config.alert_prefix + self.name
        rule: dict[str, Any] = {"alert": name, "expr": self.expr}
        if self.for_ != "0m":
            rule["for"] = self.for_
        if self.keep_firing_for != "0m":
            rule["keep_firing_for"] = self.keep_firing_for
        rule["labels"] = {"severity": self.severity}
        rule["annotations"] = {
            "summary": self.summary,
            "description": self.description,
            "runbook_url": config.runbook_url_pattern % name.lower(),
        }
        return rule


def alert_groups(config: BundleConfig) -> list[dict[str, Any]]:
    return [
        {"name": "os-update-bridge", "rules": [a.rule(config) for a in _bridge(config)]},
        {"name": "os-update-agents", "rules": [a.rule(config) for a in _agents(config)]},
        {"name": "os-update-rollout", "rules": [a.rule(config) for a in _rollout(config)]},
        {"name": "os-update-meta", "rules": [a.rule(config) for a in _meta(config)]},
    ]


def _bridge(config: BundleConfig) -> list[Alert]:
    host = config.host_labels
    bridge = config.bridge_selector
    requests = names.BRIDGE_REQUESTS
    failures = selected(requests, bridge, 'outcome!~"success|cancelled"')
    window = config.selector_failing_window
    failed = f"sum {by((*host, 'selector'))} (rate({failures}[{window}]))"
    total = f"sum {by((*host, 'selector'))} (rate({selected(requests, bridge)}[{window}]))"
    return [
        Alert(
            "BridgeDown",
            "critical",
            f"max_over_time({selected(names.UP, bridge)}[{config.down_window}]) == 0",
            "A host's bridge cannot be scraped.",
            "The bridge on {{ $labels.instance }} has not answered a scrape for "
            f"{config.down_window}: "
            "nothing is known of that host's updates.",
            config.bridge_down_for,
        ),
        Alert(
            "BridgeSelectorFailing",
            "warning",
            f"{failed} / {on((*host, 'selector'))} {total} > 0.5",
            "A bridge selector fails most scrapes.",
            "Selector {{ $labels.selector }} on {{ $labels.instance }} failed {{ $value | humanizePercentage }} "
            f"of its scrapes over {window}, for {config.selector_failing_for} now.",
            config.selector_failing_for,
        ),
        Alert(
            "BridgeConfigRefused",
            "warning",
            f"max_over_time({selected(names.BRIDGE_RELOAD_SUCCESSFUL, bridge)}[{config.gauge_window}]) == 0 or "
            f"max_over_time({selected(names.BRIDGE_WEB_CONFIG_RELOAD_SUCCESSFUL, bridge)}[{config.gauge_window}]) == 0",
            "A bridge refused its changed config and serves the previous one.",
            "The bridge on {{ $labels.instance }} refused a changed config or web config file "
            "(SIGHUP, POST /-/reload, or a web config change): it still serves the previous one, "
            "and will not pick the change up until the file is fixed.",
            config.reload_failed_for,
        ),
    ]


def _agents(config: BundleConfig) -> list[Alert]:
    host = config.host_labels
    agent = config.agent_selector
    phase = rules.PHASE

    def increase(metric: str, window: str, extra: str = "") -> str:
        return f"sum {by(host)} (increase({selected(metric, agent, extra)}[{window}]))"

    def rate(metric: str, window: str) -> str:
        return f"sum {by(host)} (rate({selected(metric, agent)}[{window}]))"

    return [
        Alert(
            "AgentDown",
            "warning",
            f"max_over_time({selected(names.UP, agent)}[{config.down_window}]) == 0",
            "A host's update agent cannot be read.",
            "The bridge on {{ $labels.instance }} answers, but not with Zincati's metrics "
            "(agent stopped, socket gone, or the exposition is broken).",
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
            f"{rate(names.CHECKS, config.checks_failing_window)} > 0.5",
            "Update checks are failing on a host.",
            "{{ $value | humanizePercentage }} of the update checks on {{ $labels.instance }} failed "
            f"in the last {config.checks_failing_window}: the host cannot see new releases.",
            config.checks_failing_for,
        ),
        Alert(
            "DeployFailing",
            "warning",
            f"{increase(names.DEPLOY_FAILURES, config.failures_window)} >= 3",
            "Deploying an update fails repeatedly on a host.",
            'rpm-ostree failed to deploy the update {{ printf "%.0f" $value }} times in the last '
            f"{config.failures_window} "
            "on {{ $labels.instance }}; "
            "Zincati abandons a release after 12 failures.",
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
            "RebootPending",
            "warning",
            _reboot_pending(config),
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
            f"max_over_time({selected(names.UPDATES_ENABLED, agent)}[{config.gauge_window}]) == 0",
            "Automatic updates are disabled on a host.",
            "Zincati's updates are disabled on {{ $labels.instance }}: it will not follow rollouts.",
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
    agent = config.agent_selector
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


def _rollout(config: BundleConfig) -> list[Alert]:
    fleet = config.fleet_labels
    stream = (*fleet, "stream")
    ratio = rules.NEWEST_RATIO
    updating = "|".join(UPDATING_PHASES)
    # Progress is a host reaching the newest version (phase `rebooted`), not a move of the share:
    # one failed scrape changes the share (the host drops out of both counts) without progress.
    arrived = f'{rules.HOSTS_BY_PHASE_VERSION}{{phase="rebooted"}}'
    # The share of updating hosts over the last 10 minutes: a host rebooting (or failing one
    # scrape) is `down` for a moment, which must not resolve the alert.
    share = (
        f'sum {by(fleet)} ({rules.HOSTS_BY_PHASE}{{phase=~"{updating}"}})\n'
        f"  / {on(fleet)} sum {by(fleet)} ({rules.HOSTS_BY_PHASE})"
    )
    return [
        Alert(
            "RolloutStalled",
            "warning",
            f"min_over_time({ratio}[{config.gauge_window}]) < 1\n"
            f"and {on(stream)} ({ratio} offset {config.stalled_for})\n"
            f"unless {on(stream)} max_over_time({arrived}[{config.stalled_for}])",
            "A rollout has stopped making progress.",
            "{{ $value | humanizePercentage }} of the {{ $labels.stream }} hosts run the newest version and no host "
            f"has reached it for {config.stalled_for}.",
            config.confirm_for,
        ),
        Alert(
            "RebootLockContended",
            "warning",
            f'sum {by(fleet)} (min_over_time({rules.HOSTS_BY_PHASE}{{phase="waiting_lock"}}[{config.gauge_window}]))\n'
            f'unless {on(fleet)} max_over_time({rules.HOSTS_BY_PHASE}{{phase="rebooted"}}[{config.gauge_window}])',
            "Hosts wait for a reboot slot and no host reboots.",
            "{{ $value }} hosts have been refused a reboot slot and no host has rebooted for "
            f"{config.lock_contended_for}: the slots are held by hosts that do not finish their update.",
            config.lock_contended_for,
        ),
        Alert(
            "TooManyUpdating",
            "warning",
            f"max_over_time((\n  {share}\n)[{config.gauge_window}:]) > {config.max_updating_ratio}",
            "Too many hosts are updating at once.",
            "{{ $value | humanizePercentage }} of the hosts are staging, staged or rebooting at once, over the "
            f"rolling-update budget of {config.max_updating_ratio:.0%}.",
            config.confirm_for,
        ),
        Alert(
            "VersionSkew",
            "info",
            f"count {by(stream)} (max_over_time({rules.HOSTS_BY_VERSION}[{config.gauge_window}])) > 1",
            "Hosts of one stream run different versions for days.",
            f"The {{{{ $labels.stream }}}} hosts have run {{{{ $value }}}} different versions for {config.skew_for}.",
            config.skew_for,
        ),
    ]


def _meta(config: BundleConfig) -> list[Alert]:
    return [
        Alert(
            "Heartbeat",
            "info",
            "vector(1)",
            "The alerting pipeline is alive.",
            "Always firing: a dead man's switch receiver pages when it stops arriving.",
        ),
    ]
