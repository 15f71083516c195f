"""The one object the whole monitoring bundle is generated from.

Users change the bundle by changing this object (or passing another to the generator), never
the generated files. Every field says what it controls; selectors are PromQL label matchers
without braces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from typing import Any

from local_exporter import __version__
from local_exporter.common import jobs
from local_exporter.common.durations import parse_duration

#: The alert prefix of this project's docs/runbooks.md headings.
DEFAULT_ALERT_PREFIX = "OSUpdate"
#: Field names that end so hold a Prometheus duration ("5m"), or a number of seconds.
DURATION_SUFFIXES = ("_for", "_window", "_interval", "_wait")
SECONDS_SUFFIX = "_seconds"


@dataclass(frozen=True)
class Receivers:
    """Where Alertmanager sends each kind of notification (webhooks by default)."""

    #: Critical alerts: wake someone up.
    pager_url: str = "http://127.0.0.1:9099/pager"
    #: Warnings: open a ticket.
    ticket_url: str = "http://127.0.0.1:9099/ticket"
    #: The heartbeat: a dead man's switch that alerts when it stops arriving.
    heartbeat_url: str = "http://127.0.0.1:9099/heartbeat"


@dataclass(frozen=True)
class MaintenanceWindow:
    """A weekly window in which warnings are muted (critical alerts still page)."""

    #: The Alertmanager `time_intervals` entry, referenced by the warning route.
    name: str = "weekly-maintenance"
    #: Days of the window (Alertmanager weekday names).
    weekdays: tuple[str, ...] = ("saturday",)
    #: Start of the window, HH:MM, in `location`.
    start_time: str = "02:00"
    #: End of the window, HH:MM, in `location` (after the start; 24:00 is the day's end).
    end_time: str = "06:00"
    #: An IANA time zone name.
    location: str = "UTC"


@dataclass(frozen=True)
class BundleConfig:
    # --- where the data comes from ------------------------------------------------------------
    #: The update agents, scraped through the bridge (`/bridge?selector=zincati`).
    agent_selector: str = f'job="{jobs.AGENT_JOB}"'
    #: Flatcar's update agents: each Flatcar host's bridge, selector `update_engine` (an
    #: os_update selector reading update_engine).
    flatcar_agent_selector: str = f'job="{jobs.FLATCAR_AGENT_JOB}"'
    #: The bridges' own `/metrics`.
    bridge_selector: str = f'job="{jobs.BRIDGE_JOB}"'
    #: The FleetLock server (airlock), if any.
    airlock_selector: str = f'job="{jobs.AIRLOCK_JOB}"'
    #: Nebraska, Flatcar's update server, if it is scraped (its own /metrics).
    nebraska_selector: str = f'job="{jobs.NEBRASKA_JOB}"'
    #: kube-state-metrics, exposing FLUO's node annotations (docs/deploy.md), where Flatcar runs
    #: Kubernetes nodes under FLUO.
    kube_state_metrics_selector: str = f'job="{jobs.KUBE_STATE_METRICS_JOB}"'
    #: The release feeds: a bridge next to Prometheus reading the update servers (kinds
    #: `cincinnati` and `nebraska`). Where it is scraped, each stream's newest version is the
    #: server's; elsewhere, the highest one the hosts report.
    release_feed_selector: str = f'job="{jobs.RELEASE_FEED_JOB}"'
    #: Kured, where it reboots Flatcar Kubernetes nodes (its `kured_reboot_required` gauge).
    kured_selector: str = f'job="{jobs.KURED_JOB}"'
    #: The label every Prometheus sets in `external_labels` to name its cluster.
    cluster_label: str = "cluster"
    #: A target label that splits the fleet into groups (e.g. `group`, or the FleetLock group
    #: set on each target): every fleet-level rule then breaks down by it. "" for none.
    group_label: str = ""
    #: Show the cluster variable and per-cluster breakdowns (several Prometheus behind one view).
    show_multi_cluster: bool = False
    #: How often Prometheus scrapes the bridges (the example prometheus.yml, and Grafana's data
    #: source, whose `$__rate_interval` is at least four times it).
    scrape_interval: str = "30s"

    # --- how the signals are computed -----------------------------------------------------------
    #: How often the phase and rollout rules run: phases move over minutes, and at 100,000 hosts
    #: one evaluation takes seconds (docs/benchmarks.md), so not at every global interval.
    rollout_rules_interval: str = "1m"
    #: Whether hosts that do not report their own update phase (their bridge serves Zincati's
    #: socket alone, no `os_update` selector) get one inferred from Zincati's counters. Set it
    #: false once every host reports: the phase rule then only maps the reported phases, which
    #: costs a fraction of the inference at 100,000 hosts (docs/benchmarks.md).
    infer_phases: bool = True
    #: How far back counter movement decides a host's update phase (a few refresh periods).
    phase_window: str = "15m"
    #: An enabled agent refreshes every ~330 s at most: older than this, it is stale.
    stale_after_seconds: int = 900
    #: A disabled agent refreshes every ~3 h: older than this, it is stale.
    disabled_stale_after_seconds: int = 4 * 3600

    # --- alerts --------------------------------------------------------------------------------
    #: The CamelCase prefix every alert name starts with.
    alert_prefix: str = DEFAULT_ALERT_PREFIX
    #: Each alert's `runbook_url`: `{runbook}` becomes the anchor of its section in this
    #: project's docs/runbooks.md (whatever the prefix), `{alert}` its name lowercased (for
    #: runbooks of your own, with your prefix).
    runbook_url_pattern: str = "https://github.com/local-exporter/local_exporter/blob/main/docs/runbooks.md#{runbook}"
    #: A target counts as down when every scrape failed for this long (one success resets).
    down_window: str = "5m"
    #: A bridge down for this long (beyond `down_window`) pages.
    bridge_down_for: str = "5m"
    #: Gauges are read as their max/min over this window, so one failed scrape neither fires
    #: nor resolves an alert.
    gauge_window: str = "10m"
    #: A condition read through `gauge_window` holds this long before it fires (dead ends,
    #: pending reboots, stalled rollouts, the rolling-update budget).
    confirm_for: str = "15m"
    #: A host staged but not rebooted for this long.
    staged_for: str = "2h"
    #: Hosts waiting for a reboot slot while no host reboots, for this long: the lock stopped turning.
    lock_contended_for: str = "1h"
    #: Hosts behind the newest version with no host moving for this long: the rollout stalled.
    stalled_for: str = "2h"
    #: A rollout behind its plan: the share of a stream's hosts on the newest release below the
    #: share the update server has offered it to by more than this, for `behind_plan_for`.
    behind_plan_margin: float = 0.2
    #: How long a rollout stays behind its plan (by `behind_plan_margin`) before it alerts.
    behind_plan_for: str = "1h"
    #: Hosts booted on a release the update server marks a dead-end, for this long.
    deadend_for: str = "1h"
    #: A release feed whose answer is older than this (the server unreachable, the last good
    #: answer served), or whose bridge is down for `bridge_down_for`.
    feed_stale_for: str = "1h"
    #: More than this share of a stream's hosts mid-update at once breaks the rolling budget.
    max_updating_ratio: float = 0.25
    #: Versions skewed within a stream for this long.
    skew_for: str = "3d"
    #: Update checks failing on a host for this long.
    checks_failing_for: str = "1h"
    #: The window over which a host's update checks are judged failing (more than half).
    checks_failing_window: str = "30m"
    #: The window in which 3 failed deploys (or finalizations) of a host alert.
    failures_window: str = "1h"
    #: Nebraska's failed updates are counted over this window (its gauge only grows).
    nebraska_failed_window: str = "1h"
    #: Updates disabled on a host for this long (an info alert).
    disabled_for: str = "1h"
    #: A bridge selector failing for this long.
    selector_failing_for: str = "15m"
    #: The window over which a selector is judged failing (more than half its scrapes).
    selector_failing_window: str = "5m"
    #: A bridge serving its previous config, or web config, because a changed file was refused
    #: (read through `gauge_window`), for this long.
    reload_failed_for: str = "10m"
    #: An agent down or stale for this long.
    agent_down_for: str = "15m"

    # --- notifications --------------------------------------------------------------------------
    #: Where notifications go, by kind: webhook URLs. The defaults reach the demo's receiver on
    #: this machine; the compose stack sends loopback URLs to its `receiver` service instead.
    receivers: Receivers = field(default_factory=Receivers)
    #: How long Alertmanager gathers a new group's alerts before its first notification.
    group_wait: str = "30s"
    #: How long Alertmanager waits before notifying a group again about alerts added to it.
    group_interval: str = "5m"
    #: When warnings are muted (planned reboots make rollout warnings expected).
    maintenance: MaintenanceWindow = field(default_factory=MaintenanceWindow)

    # --- deployment --------------------------------------------------------------------------------
    #: The bridge's container image, in the compose stack, the Kubernetes DaemonSet and the
    #: Fedora CoreOS Quadlet unit.
    image: str = f"ghcr.io/local-exporter/local_exporter:{__version__}"
    #: The numeric id of the update agent's group on the hosts, which owns Zincati's socket
    #: directory (`getent group zincati`): the bridge's container gets it as a supplementary group.
    #: Fedora CoreOS allocates it with systemd-sysusers at first boot, so check it on one host.
    agent_group_id: int = 977
    #: Prometheus shards in the scale-out stack (compose/scale-out.yaml): each scrapes the targets
    #: whose address hashes to it and remote-writes them into VictoriaMetrics.
    scale_out_shards: int = 2

    # --- dashboards --------------------------------------------------------------------------------
    #: Every dashboard's uid starts with this (uids are what links between dashboards use).
    dashboard_uid_prefix: str = "local-exporter"
    #: Tags on every dashboard; the dashboards' links menu lists the dashboards with the first.
    dashboard_tags: tuple[str, ...] = ("local-exporter", "os-updates")
    #: How often an open dashboard refreshes.
    dashboard_refresh: str = "1m"
    #: The dashboards' time zone: `utc`, `browser`, or an IANA name.
    dashboard_timezone: str = "utc"
    #: The Grafana folder the provisioned dashboards go into.
    dashboard_folder: str = "OS updates"

    def scaled(self, speed: float) -> BundleConfig:
        """This config with every window, duration and age divided by `speed` (whole seconds, at
        least 1): the bundle for a simulated fleet that runs `speed` times faster than real time."""
        changes: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(DURATION_SUFFIXES):
                changes[f.name] = f"{max(1, round(parse_duration(value) / speed))}s"
            elif f.name.endswith(SECONDS_SUFFIX):
                changes[f.name] = max(1, round(value / speed))
        return replace(self, **changes)

    @property
    def agents_selector(self) -> str:
        """Both OSes' agent jobs in one matcher (`job=~"zincati|update_engine"`): what every rule
        and alert about hosts reads. Zincati's own families exist only in its job."""
        names = [job_of(selector) for selector in (self.agent_selector, self.flatcar_agent_selector)]
        return f'job=~"{"|".join(names)}"'

    @property
    def fleet_labels(self) -> tuple[str, ...]:
        """Labels every fleet-wide aggregation keeps."""
        return (self.cluster_label, "job", *((self.group_label,) if self.group_label else ()))

    @property
    def host_labels(self) -> tuple[str, ...]:
        """Labels that identify one host (the group too, so that fleet aggregations keep it)."""
        return (*self.fleet_labels, "instance")


def job_of(selector: str) -> str:
    """`job="NAME"` -> NAME: the agents' selectors are each one plain job matcher."""
    match = re.fullmatch(r'\s*job\s*=\s*"([^"]+)"\s*', selector)
    if match is None:
        raise ValueError(f'an agent selector must be of the form job="NAME", got {selector!r}')
    return match.group(1)
