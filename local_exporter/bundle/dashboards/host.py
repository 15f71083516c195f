"""Host drill-down: one host's update history: its phase over time, the versions it booted,
how fresh its agent is, its errors by kind and how it dealt with the reboot lock."""

from __future__ import annotations

from local_exporter.bundle import names, rules
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.dashboards import common
from local_exporter.bundle.dashboards.style import (
    BAD,
    GOOD,
    Dashboard,
    Query,
    Row,
    combined,
    rename,
    stat,
    state_timeline,
    table,
    timeseries,
    value_mappings,
)
from local_exporter.bundle.rules import selected

SLUG = "host"


def phase_number(config: BundleConfig, matchers: str) -> str:
    """One series whose value is the phase's number, so that the timeline is one row of states.
    Where every host reports (`infer_phases = false`) no phase is recorded per host: the host's
    own is mapped here, for the one host shown."""

    if config.infer_phases:
        in_phase = {phase: selected(rules.PHASE, matchers, f'phase="{phase}"') for phase in rules.PHASES}
    else:
        in_phase = rules.reported_host_phases(config, matchers)
    return "\nor\n".join(
        f"max({in_phase[phase]}) * {common.phase_code(phase)}" for phase in rules.PHASES if phase in in_phase
    )


def dashboard(config: BundleConfig) -> Dashboard:
    host = common.host(config)

    def moved(metric: str, by: str = "") -> str:
        grouping = f" by ({by})" if by else ""
        return f"sum{grouping} (increase({metric}{host}[$__rate_interval]))"

    number = phase_number(config, common.host(config)[1:-1])
    # What the host booted: its own report (any OS), or Zincati's identity.
    booted = f"{names.OS_UPDATE_INFO}{host} or {names.OS_INFO}{host}"
    phase_mappings = value_mappings(
        (common.phase_code(phase), title, colour) for phase, (title, colour, _) in common.PHASE_STYLE.items()
    )
    now = [
        stat(
            "Phase",
            "The host's update phase at the last evaluation of the rules.",
            "none",
            [Query(f"({number})", instant=True)],
            mappings=phase_mappings,
            width=6,
        ),
        stat(
            "Booted version",
            "The OS version the host runs, and its stream.",
            "none",
            [
                Query(
                    f"max by (os_version, stream) ({booted})",
                    legend="{{os_version}} ({{stream}})",
                    instant=True,
                )
            ],
            text_mode="name",
            width=6,
        ),
        stat(
            "Last refresh",
            "Time since the agent last ran its update loop: about 5 minutes at most while updates are on, "
            "3 hours when they are off.",
            "s",
            [Query(f"time() - max({names.LAST_REFRESH}{host})", instant=True)],
            steps=((None, GOOD), (config.stale_after_seconds, BAD)),
            width=4,
        ),
        stat(
            "Agent up for",
            "Time since the agent started: it restarts at every reboot, so this is also the time since the last boot.",
            "s",
            [Query(f"time() - max({names.PROCESS_START}{host})", instant=True)],
            width=4,
        ),
        stat(
            "Strategy",
            "How the host decides when to reboot: immediately, through a FleetLock server, or in maintenance windows.",
            "none",
            [Query(f"max by (strategy) ({names.STRATEGY}{host})", legend="{{strategy}}", instant=True)],
            text_mode="name",
            width=4,
        ),
    ]
    reported_by = f"{common.REPORTED_ONLY}"
    ages = (
        (
            "In this phase for",
            "Time since the host's current phase began, as the host's bridge judged it (os_update selector).",
            names.OS_UPDATE_PHASE_START,
        ),
        (
            "Last successful check",
            "Time since the agent last checked for updates without an error.",
            names.OS_UPDATE_LAST_CHECK,
        ),
    )
    own = [
        *(
            stat(
                f"{title}{reported_by}",
                description,
                "s",
                [Query(f"time() - max({stamp}{host})", instant=True)],
                width=6,
            )
            for title, description, stamp in ages
        ),
        table(
            f"What the host says{reported_by}",
            "The version being downloaded, staged or just rebooted into; why a staged update waits; what keeps "
            "failing. A row only for what applies now.",
            "none",
            [
                Query(
                    "\nor ".join(
                        f'label_replace(max by ({label}) ({family}{host}), "what", "{what}", "", "")'
                        for family, label, what in (
                            (names.OS_UPDATE_TARGET, "version", "target version"),
                            (names.OS_UPDATE_WAITING, "reason", "waiting for"),
                            (names.OS_UPDATE_FAILURE, "kind", "failing"),
                        )
                    ),
                    instant=True,
                    table=True,
                )
            ],
            transformations=[
                rename(
                    {"what": "What", "version": "Version", "reason": "Reason", "kind": "Kind"},
                    exclude=("Time", "Value"),
                )
            ],
            width=12,
        ),
    ]
    history = [
        state_timeline(
            "Phase over time",
            "The host's update phase at each evaluation of the rules.",
            "none",
            [Query(number, legend="phase")],
            mappings=phase_mappings,
            height=4,
        ),
        state_timeline(
            "Booted version over time",
            "Which version the host ran when: a new band starts at each reboot into an update.",
            "none",
            [Query(f"max by (os_version) ({booted})", legend="{{os_version}}")],
            mappings=value_mappings([(1, "booted", GOOD)]),
            height=5,
        ),
    ]
    errors = [
        timeseries(
            "Errors by kind",
            "Failed update checks (by the server's error kind), deploys, finalizations, status queries and driver "
            "registrations, per interval.",
            "none",
            [
                combined(
                    [
                        ("update check", moved(names.CHECK_ERRORS, "kind")),
                        ("deploy", moved(names.DEPLOY_FAILURES)),
                        ("finalize", moved(names.FINALIZE_FAILURES)),
                        ("rpm-ostree status", moved(names.STATUS_FAILURES)),
                        ("driver registration", moved(names.REGISTER_FAILURES)),
                    ],
                    legend="{{series}} {{kind}}",
                )
            ],
            bars=True,
        ),
        timeseries(
            "Update activity",
            "Update checks, deploy attempts and finalization attempts per interval: what the agent is doing.",
            "none",
            [
                combined(
                    [
                        ("update checks", moved(names.CHECKS)),
                        ("deploy attempts", moved(names.DEPLOY_ATTEMPTS)),
                        ("finalization attempts", moved(names.FINALIZATION_ATTEMPTS)),
                        ("postponed for users", moved(names.POSTPONED_FINALIZATIONS)),
                    ],
                    legend="{{series}}",
                )
            ],
            bars=True,
        ),
    ]
    lock = [
        timeseries(
            "Reboot lock requests",
            "FleetLock requests by api (pre-reboot takes a slot, steady-state releases it), and the refusals by kind "
            "(failed_lock or lock_held: every slot taken).",
            "none",
            [
                combined(
                    [
                        ("requests", moved(names.LOCK_REQUESTS, "api")),
                        ("refused", moved(names.LOCK_ERRORS, "api, kind")),
                    ],
                    legend="{{api}} {{series}} {{kind}}",
                )
            ],
            bars=True,
        ),
        timeseries(
            "May it reboot?",
            "The strategy's answers when the host asked to finalize: allow, deny (outside a maintenance window) or "
            "error (a busy reboot lock).",
            "none",
            [Query(moved(names.CAN_FINALIZE, "response"), legend="{{response}}")],
            bars=True,
        ),
    ]
    return Dashboard(
        slug=SLUG,
        title="OS updates / Host",
        description="One host's update phase, versions, errors and reboot-lock interaction over time.",
        variables=[
            *common.fleet_variables(config, rules.HOSTS_BY_STREAM),
            # Hosts with a phase, every OS's: the per-host phase series carries the OS.
            common.instance_variable(
                config, rules.PHASE if config.infer_phases else names.OS_UPDATE_PHASE, multi=False
            ),
        ],
        rows=[
            Row("Now", now),
            Row("Reported by the host", own),
            Row("History", history),
            Row("Errors and activity", errors),
            Row("Reboot lock", lock),
        ],
        time_from="now-7d",
    )
