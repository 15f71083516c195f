"""Recording rules: each host's update phase, and the fleet-level signals built on it.

A host whose bridge runs the `os_update` selector (as its agent job's selector, with the agent's
metrics beside) reports its phase itself (`os_update_phase`, judged on the host from the agent,
rpm-ostree and the boot record: docs/metrics.md); it is mapped onto the phases below, the idle
ones split by version. Only for a host that exposes Zincati's socket alone is the phase
inferred here: Zincati exports no state, so it is derived from what moved in the last
`phase_window`, by priority, first match wins:

    down        the bridge answered, but not with the agent's metrics (`up` 0)
    error       an update check, deploy, finalize, status query, driver registration or FleetLock
                call failed (a busy lock before the reboot is not an error: it is waiting_lock;
                after it, at steady-state, it is)
    stale       no refresh for `stale_after_seconds` (`disabled_stale_after_seconds` when disabled)
    disabled    auto-updates are off
    waiting_lock  finalization refused because every reboot slot is taken
    staged      finalization attempted (update staged, waiting to reboot: users, lock, strategy)
    staging     a deploy attempted (downloading and deploying the update)
    rebooted    the agent started within the window, on the newest version
    up_to_date  on the newest version of its stream
    checking    behind the newest version, idle: checking for updates

A counter "moved" within the window when it is higher now than a window ago, or exists now and
did not then (families appear lazily, at their first move), or the agent restarted within the
window and the counter is above zero (a new process counts from zero). Only two points of each
series are read, and only the current process's families count: after a reboot the old
process's counters are gone, so they cannot keep a host `staged`.

The newest version of a stream is the update server's, where a release feed is scraped (a
bridge with the `cincinnati` or `nebraska` kind, `release_feed_selector`); for a stream without
one, the highest version its hosts report by their version rank (`os_update_booted_version_rank`:
PromQL cannot order version strings, so `os_update` serves a number that orders them). Hosts
known from Zincati's socket alone report no rank: their streams need a feed to have a newest
version. Neither depends on when a host booted or started its agent.
"""

from __future__ import annotations

from typing import Any

from local_exporter.agents import kubernetes
from local_exporter.agents import os_update as host_state
from local_exporter.bundle import names
from local_exporter.bundle.config import BundleConfig
from local_exporter.common.durations import parse_duration

Rule = dict[str, Any]
Group = dict[str, Any]

#: The window of every recorded rate (their names say `rate5m`).
RATE_WINDOW = "5m"

# Recording rule names, `level:metric:operations`; the bundle's own metrics carry its name.
PHASE = "instance:local_exporter_update_phase:info"
ON_NEWEST = "instance:local_exporter_on_newest_os_version:bool"
VERSION_RANK = "cluster_os_stream_os_version:os_update_booted_version_rank:max"
#: What the release feeds say, where they are scraped: each stream's newest release (no fleet
#: labels: releases are the same for every fleet), the share of a stream's hosts the server
#: offers it to by now, and the hosts booted on a release the server marks a dead-end.
FEED_NEWEST = "os_stream_os_version:os_release_newest_info:max"
PLANNED_SHARE = "cluster_os_stream:os_release_rollout_planned_share:max"
HOSTS_ON_DEADEND = "cluster_os_stream_os_version:local_exporter_hosts_on_deadend_release:sum"
NEWEST = "cluster_os_stream:local_exporter_newest_os_version:info"
HOSTS_BY_VERSION = "cluster_os_stream_os_version:local_exporter_hosts:count"
HOSTS_BY_STREAM = "cluster_os_stream:local_exporter_hosts:count"
HOSTS_ON_NEWEST = "cluster_os_stream:local_exporter_on_newest_os_version:sum"
NEWEST_RATIO = "cluster_os_stream:local_exporter_on_newest_os_version:ratio"
HOSTS_BY_PHASE = "cluster_os_phase:local_exporter_update_phase:count"
HOSTS_BY_PHASE_VERSION = "cluster_os_phase_os_version:local_exporter_update_phase:count"
CHECKS_RATE = "cluster:zincati_cincinnati_update_checks:rate5m"
CHECK_ERRORS_RATE = "cluster_kind:zincati_cincinnati_update_checks_errors:rate5m"
DEPLOY_FAILURES_RATE = "cluster:zincati_rpm_ostree_deploy_failures:rate5m"
FINALIZE_FAILURES_RATE = "cluster:zincati_rpm_ostree_finalize_failures:rate5m"
LOCK_ERRORS_RATE = "cluster_api_kind:zincati_strategy_fleet_lock_errors:rate5m"
BRIDGE_REQUESTS_RATE = "cluster_selector_outcome:local_exporter_bridge_requests:rate5m"
#: Bridges whose /metrics answered their last scrape, and all bridges scraped (`up` of their job).
#: What hosts that report their own state say (os_update): empty where phases are inferred.
WAITING_BY_REASON = "cluster_os_reason:os_update_waiting_info:count"
FAILING_BY_KIND = "cluster_os_kind:os_update_failure_info:count"
TARGETS_BY_VERSION = "cluster_os_version:os_update_target_info:count"
#: Where every host reports (`infer_phases = false`): hosts per phase in their own words (and
#: staged ones waiting for a reboot slot, with `reason`), per stream and version.
OWN_PHASES = "cluster_os_phase_os_version:os_update_phase:count"
#: Nebraska's own view, where it is scraped: instances per application, channel and version,
#: and the error events it recorded over `nebraska_failed_window`.
NEBRASKA_INSTANCES = "cluster_application_channel_version:nebraska_application_instances_per_channel:sum"
NEBRASKA_FAILED = "cluster_application:nebraska_failed_updates:delta"
#: Flatcar Kubernetes nodes by FLUO's annotations (reboot needed, reboot in progress), and the
#: nodes Kured says need a reboot, where they are scraped.
FLUO_NODES = "cluster_state:kube_node_annotations:count"
KURED_REQUIRED = "cluster:kured_reboot_required:sum"
BRIDGES_UP = "cluster:local_exporter_bridge_up:sum"
BRIDGES = "cluster:local_exporter_bridge_up:count"

PHASES = (
    "down",
    "error",
    "stale",
    "disabled",
    "waiting_lock",
    "staged",
    "staging",
    "rebooted",
    "up_to_date",
    "checking",
)


def by(labels: tuple[str, ...]) -> str:
    return f"by ({', '.join(labels)})"


def on(labels: tuple[str, ...]) -> str:
    return f"on ({', '.join(labels)})"


#: The fleet's OS: every fleet breakdown keeps it (both OSes have a stream called "stable").
#: Zincati runs on Fedora CoreOS only, so a host known from Zincati's families alone is that.
ZINCATI_OS = host_state.FEDORA_COREOS


def streams(config: BundleConfig) -> tuple[str, ...]:
    """The labels of a stream: the fleet's, the OS and the stream."""
    return (*config.fleet_labels, "os", "stream")


def versions(config: BundleConfig) -> tuple[str, ...]:
    """The labels of a version: a stream's and the version."""
    return (*streams(config), "os_version")


def zincati_os(expr: str) -> str:
    """`expr` with the OS label of a host known from Zincati's families alone."""
    return f'label_replace({expr}, "os", "{ZINCATI_OS}", "", "")'


def host_info(config: BundleConfig) -> str:
    """Each host's OS, stream and booted version: its own report where it makes one, else
    Zincati's identity (`or` keeps the left side for every host it has)."""
    agent = config.agents_selector
    return (
        f"{selected(names.OS_UPDATE_INFO, agent)}\n"
        f"  or {on(config.host_labels)} {zincati_os(selected(names.OS_INFO, agent))}"
    )


def selected(metric: str, selector: str, extra: str = "") -> str:
    matchers = ", ".join(m for m in (selector, extra) if m)
    return f"{metric}{{{matchers}}}"


def recording_rules(config: BundleConfig) -> list[Group]:
    if not config.infer_phases:
        return [
            *_reported_phase_groups(config),
            _release_group(config),
            _error_group(config),
            _reported_group(config),
        ]
    # One group for everything the phase depends on, in dependency order: rules of a group are
    # evaluated one after the other, groups concurrently (a rule reading another group's
    # output would see it one evaluation late).
    versions, phases = _version_rules(config), _phase_rules(config)
    return [
        {
            "name": "local-exporter-rollout",
            "interval": config.rollout_rules_interval,
            "rules": versions[:5] + phases + versions[5:],
        },
        _release_group(config),
        _error_group(config),
        _reported_group(config),
    ]


def _reported_phase_groups(config: BundleConfig) -> list[Group]:
    """The rollout rules where every host reports its phase (`infer_phases = false`).

    Nothing is recorded per host: the host's own `os_update_phase` is its phase series (the
    host dashboard maps it onto PHASES at query time, `reported_host_phase`). The phases are
    counted in the hosts' own words, per version, in one query, so the counts are one
    snapshot of the TSDB (a rule of its own per phase read a host that changed phase in between
    twice); the bundle's phases are then mapped from that small vector. The phase and the boot
    time carry the booted version and stream, so nothing joins every host's series with
    another. A host whose bridge does not answer reports nothing: it has no phase, and is the
    bridge alerts' and panels' business (OSUpdateBridgeDown). Each group stays within a second
    at 100,000 hosts (docs/benchmarks.md); a group reading another's output sees it one
    evaluation late, a minute at most, for values that change once per release.
    """
    fleet, agent = config.fleet_labels, config.agents_selector
    stream, version = streams(config), versions(config)
    waiting = selected(names.OS_UPDATE_WAITING, agent, 'reason="reboot_lock"')
    own_counts = (
        f"count {by((*version, 'phase'))} ({selected(names.OS_UPDATE_PHASE, agent)})\n"
        # Staged hosts waiting for a reboot slot, apart: the reason is a series of its own.
        f"or label_replace(count {by((*version, 'reason'))} ({waiting}), "
        '"phase", "staged", "", "")'
    )

    def reported(phases: str) -> str:
        return f'sum {by(version)} ({OWN_PHASES}{{phase=~"{phases}", reason=""}})'

    def phase(name: str, expr: str) -> str:
        return f'label_replace({expr}, "phase", "{name}", "", "")'

    waiting_lock = f'sum {by(version)} ({OWN_PHASES}{{reason="reboot_lock"}})'
    staged = reported("staged|rebooting")
    mapped = [
        # The one-to-one mappings, as in the union rule (REPORTED_PHASES).
        *(phase(mapped, reported(own)) for own, mapped in REPORTED_PHASES.items()),
        phase("waiting_lock", waiting_lock),
        # Rebooting is still staged; the waiting ones are among the staged (one snapshot).
        phase("staged", f"({staged} - ({waiting_lock} or {staged} * 0)) > 0"),
        phase("up_to_date", f"{reported('idle|dead_end')} and {on(version)} {NEWEST}"),
        phase("checking", f"{reported('idle|dead_end')} unless {on(version)} {NEWEST}"),
    ]
    interval = config.rollout_rules_interval
    return [
        {
            "name": "local-exporter-versions",
            "interval": interval,
            "rules": [
                # Every host reports: its own info, with its OS.
                {"record": HOSTS_BY_VERSION, "expr": f"count {by(version)} ({selected(names.OS_UPDATE_INFO, agent)})"},
                {"record": HOSTS_BY_STREAM, "expr": f"sum {by(stream)} ({HOSTS_BY_VERSION})"},
            ],
        },
        {
            "name": "local-exporter-newest",
            "interval": interval,
            "rules": [
                *_newest_rules(config),
            ],
        },
        {
            "name": "local-exporter-phase",
            "interval": interval,
            "rules": [
                {"record": OWN_PHASES, "expr": own_counts},
                {"record": HOSTS_BY_PHASE_VERSION, "expr": "\nor ".join(mapped)},
                {"record": HOSTS_BY_PHASE, "expr": f"sum {by((*fleet, 'os', 'phase'))} ({HOSTS_BY_PHASE_VERSION})"},
            ],
        },
    ]


def reported_host_phases(config: BundleConfig, matchers: str) -> dict[str, str]:
    """Per phase of PHASES, the hosts (of `matchers`) in it by their own report, one series of
    value 1 each: where every host reports (`infer_phases = false`), what a phase rule would
    record, computed for the few hosts a panel shows. `stale` is not among them: the host
    judges a stalled agent `agent_down` (down)."""
    host = config.host_labels
    version = versions(config)

    def own(phases: str) -> str:
        return selected(names.OS_UPDATE_PHASE, matchers, f'phase=~"{phases}"')

    waiting = selected(names.OS_UPDATE_WAITING, matchers, 'reason="reboot_lock"')
    return {
        **{mapped: own(reported) for reported, mapped in REPORTED_PHASES.items()},
        "waiting_lock": waiting,
        "staged": f"{own('staged|rebooting')} unless {on(host)} {waiting}",
        "up_to_date": f"{own('idle|dead_end')} and {on(version)} {NEWEST}",
        "checking": f"{own('idle|dead_end')} unless {on(version)} {NEWEST}",
    }


def _reported_group(config: BundleConfig) -> Group:
    """Why hosts wait, what fails, which versions are on their way: counted from the hosts'
    own reports, which exist only for the hosts in question (cheap at any fleet size)."""
    fleet = config.fleet_labels
    agent = config.agents_selector

    def count(record: str, metric: str, label: str) -> Rule:
        return {"record": record, "expr": f"count {by((*fleet, 'os', label))} ({selected(metric, agent)})"}

    return {
        "name": "local-exporter-reported",
        "interval": config.rollout_rules_interval,
        "rules": [
            count(WAITING_BY_REASON, names.OS_UPDATE_WAITING, "reason"),
            count(FAILING_BY_KIND, names.OS_UPDATE_FAILURE, "kind"),
            count(TARGETS_BY_VERSION, names.OS_UPDATE_TARGET, "version"),
        ],
    }


def _phase_rules(config: BundleConfig) -> list[Rule]:
    host = config.host_labels
    agent = config.agents_selector
    window = config.phase_window

    start = selected(names.PROCESS_START, agent)
    restarted = f"(time() - {start} < {seconds(window)})"

    def moved(metric: str, extra: str = "") -> str:
        """Hosts whose current process moved `metric` within the window."""
        series = selected(metric, agent, extra)
        # Two points per series, not a range: `increase()` over the window read every sample,
        # which at 100,000 hosts is most of the rules' cost (docs/benchmarks.md).
        return (
            f"max {by(host)} (\n"
            f"    {series} > {series} offset {window}\n"
            f"    or {series} unless {series} offset {window}\n"
            f"    or ({series} > 0 and {on(host)} {restarted})\n"
            "  )"
        )

    def phase(name: str, condition: str) -> str:
        # Filters keep the filtered value (`up == 0` is 0): every phase series is 1. A host
        # whose phase is inferred is known from Zincati alone: Fedora CoreOS.
        return zincati_os(f'label_replace(({condition}) * 0 + 1, "phase", "{name}", "", "")')

    busy = "|".join(names.LOCK_BUSY_KINDS)
    error = f"\n  or {on(host)} ".join(
        [
            moved(names.CHECK_ERRORS),
            moved(names.DEPLOY_FAILURES),
            moved(names.FINALIZE_FAILURES),
            moved(names.STATUS_FAILURES),
            moved(names.REGISTER_FAILURES),
            # Any steady-state error (after the reboot the host still holds its slot, whatever
            # the kind); at pre-reboot a busy lock is waiting (waiting_lock), not an error.
            moved(names.LOCK_ERRORS, 'api="steady-state"'),
            moved(names.LOCK_ERRORS, f'api!="steady-state", kind!~"{busy}"'),
        ]
    )
    refresh_age = f"(time() - {selected(names.LAST_REFRESH, agent)})"
    enabled = selected(names.UPDATES_ENABLED, agent)
    stale = (
        f"max {by(host)} (\n"
        f"    ({refresh_age} > {config.stale_after_seconds} and {on(host)} ({enabled} == 1))\n"
        f"    or {on(host)} ({refresh_age} > {config.disabled_stale_after_seconds})\n"
        "  )"
    )
    info = host_info(config)
    on_newest = (
        f"max {by((*host, 'os', 'stream'))} (\n"
        f"  (({info}) * {on(versions(config))} group_left() {NEWEST})\n"
        f"  or {on(host)} (({info}) * 0)\n"
        ")"
    )
    phases = [
        phase("down", f"max {by(host)} ({selected(names.UP, agent)} == 0)"),
        # Before `stale`: an agent whose failures move is alive (one retrying its driver
        # registration keeps its refresh timestamp still).
        phase("error", f"(\n  {error}\n  )"),
        phase("stale", stale),
        phase("disabled", f"max {by(host)} ({enabled} == 0)"),
        phase("waiting_lock", moved(names.LOCK_ERRORS, f'api="pre-reboot", kind=~"{busy}"')),
        phase("staged", moved(names.FINALIZATION_ATTEMPTS)),
        phase("staging", moved(names.DEPLOY_ATTEMPTS)),
        phase(
            "rebooted",
            f"max {by(host)} ((time() - {selected(names.PROCESS_START, agent)} < {seconds(window)})"
            f" and {on(host)} ({ON_NEWEST} == 1))",
        ),
        phase("up_to_date", f"max {by(host)} ({ON_NEWEST} == 1)"),
        phase("checking", f"max {by(host)} ({ON_NEWEST} == 0)"),
    ]
    inferred = f"\nor {on(host)}\n".join(phases)
    # The host's own phase where it reports one, else the inference (`or` keeps the left side
    # for every host it has).
    phase_expr = f"(\n{_reported_phase(config)}\n)\nor {on(host)} (\n{inferred}\n)"
    return [{"record": ON_NEWEST, "expr": on_newest}, {"record": PHASE, "expr": phase_expr}]


#: The host's own phase (agents/os_update.py) -> the phase this bundle records; `idle` and
#: `dead_end` are split by version into up_to_date and checking, as the inference does.
REPORTED_PHASES = {
    "agent_down": "down",
    "updates_disabled": "disabled",
    "failing": "error",
    "downloading": "staging",
    "rebooted": "rebooted",
}


def _reported_phase(config: BundleConfig) -> str:
    host = config.host_labels
    own = selected(names.OS_UPDATE_PHASE, config.agents_selector)

    def reported(phases: str) -> str:
        return f'max {by((*host, "os"))} ({own[:-1]}, phase=~"{phases}"}})'

    def phase(name: str, condition: str) -> str:
        return f'label_replace(({condition}) * 0 + 1, "phase", "{name}", "", "")'

    waiting_lock = selected(names.OS_UPDATE_WAITING, config.agents_selector, 'reason="reboot_lock"')
    parts = [phase(mapped, reported(own_phase)) for own_phase, mapped in REPORTED_PHASES.items()]
    parts += [
        phase("waiting_lock", f"{reported('staged|rebooting')} and {on(host)} {waiting_lock}"),
        phase("staged", reported("staged|rebooting")),
        phase("up_to_date", f"{reported('idle|dead_end')} and {on(host)} ({ON_NEWEST} == 1)"),
        phase("checking", reported("idle|dead_end")),
    ]
    return f"\nor {on(host)} ".join(parts)


def _version_rules(config: BundleConfig) -> list[Rule]:
    """Hosts per version, the newest version per stream (first five), then the counts that
    read each host's phase (after it)."""
    fleet = config.fleet_labels
    host = config.host_labels
    info = host_info(config)
    stream, version = streams(config), versions(config)
    # The info series is the "many" side of every join with it: a host may briefly show two
    # (the old version's until its staleness marker, or in a backfill without markers), and a
    # join that needs it unique would fail for the whole fleet.
    return [
        {"record": HOSTS_BY_VERSION, "expr": f"count {by(version)} (\n  {info}\n)"},
        # From the counts per version, not from every host again.
        {"record": HOSTS_BY_STREAM, "expr": f"sum {by(stream)} ({HOSTS_BY_VERSION})"},
        *_newest_rules(config),
        {"record": HOSTS_BY_PHASE, "expr": f"count {by((*fleet, 'os', 'phase'))} ({PHASE})"},
        {
            "record": HOSTS_BY_PHASE_VERSION,
            "expr": (f"count {by((*version, 'phase'))} (\n  ({info}) * {on(host)} group_left(phase) {PHASE}\n)"),
        },
    ]


def _newest_rules(config: BundleConfig) -> list[Rule]:
    """The newest version per stream (the feed's, else the highest the hosts report), and how
    many hosts run it: from the counts per version. Five rules, in this order."""
    stream, version = streams(config), versions(config)
    rank = f"max {by(version)} ({selected(names.OS_UPDATE_VERSION_RANK, config.agents_selector)})"
    feed = f"topk by (os, stream) (1, {FEED_NEWEST})"
    newest = (
        f"({HOSTS_BY_STREAM} * 0 + 1) * on (os, stream) group_left (os_version) {feed}\n"
        f"or {on(stream)} topk {by(stream)} (1, {VERSION_RANK}) * 0 + 1"
    )
    feed_newest = f"max by (os, stream, os_version) (\n  {_as_os_version(names.RELEASE_NEWEST, config)}\n)"
    return [
        {"record": FEED_NEWEST, "expr": feed_newest},
        {"record": VERSION_RANK, "expr": rank},
        {"record": NEWEST, "expr": newest},
        {
            "record": HOSTS_ON_NEWEST,
            "expr": (
                f"sum {by(stream)} ({HOSTS_BY_VERSION} * {on(version)} group_left() {NEWEST})\n"
                f"or {on(stream)} {HOSTS_BY_STREAM} * 0"
            ),
        },
        {"record": NEWEST_RATIO, "expr": f"{HOSTS_ON_NEWEST} / {on(stream)} {HOSTS_BY_STREAM}"},
    ]


def _as_os_version(family: str, config: BundleConfig) -> str:
    """A release feed's family, its `version` label copied to `os_version` as the hosts call it."""
    return f'label_replace({selected(family, config.release_feed_selector)}, "os_version", "$1", "version", "(.*)")'


def _release_group(config: BundleConfig) -> Group:
    """What the release feeds say of the fleet's streams: the planned share of the newest
    release, and the hosts on dead-end releases (a feed's releases are the same for every fleet,
    so they join on OS, stream and version alone)."""
    version = versions(config)
    planned = f"max by (os, stream) ({selected(names.RELEASE_PLANNED_SHARE, config.release_feed_selector)})"
    deadends = f"max by (os, stream, os_version) (\n    {_as_os_version(names.RELEASE_DEADEND, config)}\n  )"
    return {
        "name": "local-exporter-releases",
        "interval": config.rollout_rules_interval,
        "rules": [
            {
                "record": PLANNED_SHARE,
                "expr": f"{HOSTS_BY_STREAM} * 0 + on (os, stream) group_left () {planned}",
            },
            {
                "record": HOSTS_ON_DEADEND,
                "expr": (
                    f"sum {by(version)} (\n"
                    f"  {HOSTS_BY_VERSION} * on (os, stream, os_version) group_left () {deadends}\n)"
                ),
            },
        ],
    }


def _error_group(config: BundleConfig) -> Group:
    fleet = config.fleet_labels
    agent = config.agents_selector
    rate = RATE_WINDOW

    def rated(metric: str, selector: str, labels: tuple[str, ...]) -> str:
        return f"sum {by(labels)} (rate({selected(metric, selector)}[{rate}]))"

    return {
        "name": "local-exporter-errors",
        "rules": [
            {"record": CHECKS_RATE, "expr": rated(names.CHECKS, agent, fleet)},
            {"record": CHECK_ERRORS_RATE, "expr": rated(names.CHECK_ERRORS, agent, (*fleet, "kind"))},
            {"record": DEPLOY_FAILURES_RATE, "expr": rated(names.DEPLOY_FAILURES, agent, fleet)},
            {"record": FINALIZE_FAILURES_RATE, "expr": rated(names.FINALIZE_FAILURES, agent, fleet)},
            {"record": LOCK_ERRORS_RATE, "expr": rated(names.LOCK_ERRORS, agent, (*fleet, "api", "kind"))},
            {"record": BRIDGES_UP, "expr": f"sum {by(fleet)} ({selected(names.UP, config.bridge_selector)})"},
            {"record": BRIDGES, "expr": f"count {by(fleet)} ({selected(names.UP, config.bridge_selector)})"},
            {
                "record": BRIDGE_REQUESTS_RATE,
                "expr": rated(names.BRIDGE_REQUESTS, config.bridge_selector, (*fleet, "selector", "outcome")),
            },
            # Nebraska's gauges: its instance counts as they are; its failed updates only grow
            # (every error event ever recorded), so the last hour's is their rise.
            {
                "record": NEBRASKA_INSTANCES,
                "expr": f"sum {by((*fleet, 'application', 'channel', 'version'))} "
                f"({selected(names.NEBRASKA_INSTANCES, config.nebraska_selector)})",
            },
            {"record": FLUO_NODES, "expr": _fluo_nodes(config)},
            {
                "record": KURED_REQUIRED,
                "expr": f"sum {by(fleet)} ({selected(names.KURED_REBOOT_REQUIRED, config.kured_selector)})",
            },
            {
                "record": NEBRASKA_FAILED,
                "expr": f"sum {by((*fleet, 'application'))} "
                f"(clamp_min(delta({selected(names.NEBRASKA_FAILED_UPDATES, config.nebraska_selector)}"
                f"[{config.nebraska_failed_window}]), 0))",
            },
        ],
    }


def _fluo_nodes(config: BundleConfig) -> str:
    """Nodes per FLUO state, from kube-state-metrics' copy of its node annotations."""
    parts = []
    for state, key in (
        ("reboot_needed", kubernetes.REBOOT_NEEDED),
        ("reboot_in_progress", kubernetes.REBOOT_IN_PROGRESS),
    ):
        series = selected(
            names.NODE_ANNOTATIONS, config.kube_state_metrics_selector, f'{kubernetes.annotation_label(key)}="true"'
        )
        parts.append(f'label_replace({series}, "state", "{state}", "", "")')
    return f"count {by((*config.fleet_labels, 'state'))} (\n  " + "\n  or ".join(parts) + "\n)"


def seconds(duration: str) -> int:
    """A Prometheus duration as seconds, for comparisons with time() differences."""
    return int(parse_duration(duration))
