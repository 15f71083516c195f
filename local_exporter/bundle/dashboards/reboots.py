"""Reboot coordination: the FleetLock server's slots and holders per group, and how hard the
fleet is waiting for them."""

from __future__ import annotations

from local_exporter.bundle import names, rules
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.dashboards import common
from local_exporter.bundle.dashboards.style import BAD, GOOD, WARN, Dashboard, Panel, Query, Row, stat, timeseries

SLUG = "reboots"


def dashboard(config: BundleConfig) -> Dashboard:
    # Airlock is scraped on its own, not per host: the cluster variable applies, job does not.
    airlock = "{" + f'{config.cluster_label}=~"${config.cluster_label}", {config.airlock_selector}' + "}"
    waiting = common.fleet(config, 'phase="waiting_lock"')
    busy = common.agents(config, f'api="pre-reboot", kind=~"{"|".join(names.LOCK_BUSY_KINDS)}"')
    holders = f"sum{common.by(config, 'group')} ({names.AIRLOCK_HOLDERS}{airlock})"
    slots = f"sum{common.by(config, 'group')} ({names.AIRLOCK_SLOTS}{airlock})"
    now = [
        stat(
            "Slots held",
            "Reboot slots held now, per FleetLock group (a host holds one from just before its reboot until it "
            "reports steady state on the new version).",
            "none",
            [Query(holders, legend=common.legend_for(config, "{{group}}"), instant=True)],
            text_mode="value_and_name",
            width=8,
        ),
        stat(
            "Slots in use",
            "Held slots against configured slots per group: at 100 % every further host waits.",
            "percentunit",
            [Query(f"{holders}\n/ {slots}", legend=common.legend_for(config, "{{group}}"), instant=True)],
            steps=((None, GOOD), (0.8, WARN), (1, BAD)),
            text_mode="value_and_name",
            width=8,
        ),
        stat(
            "Hosts waiting for a slot",
            "Hosts in phase `waiting_lock`: staged and refused a reboot slot.",
            "none",
            [Query(f"sum({rules.HOSTS_BY_PHASE}{waiting}) or vector(0)", instant=True)],
            steps=((None, GOOD), (1, WARN)),
            width=8,
            graph=True,
        ),
    ]
    over_time = [
        timeseries(
            "Slots and holders per group",
            "Held slots (solid) against the configured slots (the ceiling) of each group.",
            "none",
            [
                Query(holders, legend=common.legend_for(config, "{{group}} held")),
                Query(slots, legend=common.legend_for(config, "{{group}} slots")),
            ],
        ),
        timeseries(
            "Lock contention",
            "Hosts waiting for a slot, and the rate at which pre-reboot requests are refused because every slot is "
            "taken (per second).",
            "none",
            [
                common.breakdown(config, f"{rules.HOSTS_BY_PHASE}{waiting}", legend="hosts waiting"),
                common.breakdown(config, f"{rules.LOCK_ERRORS_RATE}{busy}", legend="refusals per second"),
            ],
        ),
        timeseries(
            "FleetLock requests",
            "Requests airlock received: pre-reboot (take a slot) and steady-state (release it), per second.",
            "reqps",
            [
                common.breakdown(
                    config, f"rate({names.AIRLOCK_PRE_REBOOT}{airlock}[$__rate_interval])", legend="pre-reboot"
                ),
                common.breakdown(
                    config, f"rate({names.AIRLOCK_STEADY_STATE}{airlock}[$__rate_interval])", legend="steady-state"
                ),
            ],
            width=24,
        ),
    ]
    # FLUO and Kured run in the cluster, not per host: the cluster variable applies, job does not.
    cluster = "{" + f'{config.cluster_label}=~"${config.cluster_label}"' + "}"

    def nodes(title: str, description: str, series: str) -> Panel:
        return stat(
            title,
            description,
            "none",
            [Query(f"sum({series}) or vector(0)", instant=True)],
            steps=((None, GOOD), (1, WARN)),
            width=8,
        )

    kubernetes = [
        nodes(
            "Nodes needing a reboot (FLUO)",
            "Flatcar nodes whose update waits for FLUO's operator (annotation reboot-needed, via kube-state-metrics: "
            "docs/deploy.md).",
            f'{rules.FLUO_NODES}{cluster[:-1]}, state="reboot_needed"}}',
        ),
        nodes(
            "Nodes rebooting (FLUO)",
            "Flatcar nodes FLUO's agent is draining and rebooting now (annotation reboot-in-progress).",
            f'{rules.FLUO_NODES}{cluster[:-1]}, state="reboot_in_progress"}}',
        ),
        nodes(
            "Nodes requiring a reboot (Kured)",
            "Nodes whose reboot sentinel Kured sees (on Flatcar: the update's postinstall touched "
            "/run/reboot-required).",
            f"{rules.KURED_REQUIRED}{cluster}",
        ),
    ]
    return Dashboard(
        slug=SLUG,
        title="OS updates / Reboot coordination",
        description="FleetLock (airlock) reboot slots and holders per group, and the hosts waiting for them; FLUO's "
        "and Kured's nodes where Flatcar runs Kubernetes.",
        variables=common.fleet_variables(config, rules.HOSTS_BY_STREAM),
        rows=[Row("Now", now), Row("Over time", over_time), Row("Kubernetes reboot coordinators", kubernetes)],
    )
