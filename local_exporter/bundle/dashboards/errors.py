"""Agent errors: what fails across the fleet (update checks by kind, deploys, finalizations,
FleetLock calls by api and kind) and which hosts fail most."""

from __future__ import annotations

from local_exporter.bundle import names, rules
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.dashboards import common
from local_exporter.bundle.dashboards.style import (
    BAD,
    GOOD,
    WARN,
    Dashboard,
    Query,
    Row,
    rename,
    stat,
    table,
    timeseries,
)

SLUG = "errors"
#: Every error and failure counter of the agent: what "errors of a host" adds up.
ERROR_COUNTERS = (
    names.CHECK_ERRORS,
    names.DEPLOY_FAILURES,
    names.FINALIZE_FAILURES,
    names.STATUS_FAILURES,
    names.REGISTER_FAILURES,
    names.LOCK_ERRORS,
)


def dashboard(config: BundleConfig) -> Dashboard:
    # The error rates are Zincati's (Fedora CoreOS) and have no OS label; the phase counts do.
    fleet = common.agents(config)
    in_error = common.fleet(config, 'phase="error"')
    check_ratio = f"sum({rules.CHECK_ERRORS_RATE}{fleet}) / sum({rules.CHECKS_RATE}{fleet})"
    summary = [
        stat(
            "Update checks failing",
            "Share of the fleet's update checks that failed over the last 5 minutes.",
            "percentunit",
            [Query(f"({check_ratio}) or vector(0)", instant=True)],
            steps=((None, GOOD), (0.05, WARN), (0.5, BAD)),
            width=6,
            graph=True,
        ),
        stat(
            "Hosts in error",
            "Hosts in phase `error`: a check, deploy, finalization, status query or FleetLock call failed within the "
            "phase window.",
            "none",
            [Query(f"sum({rules.HOSTS_BY_PHASE}{in_error}) or vector(0)", instant=True)],
            steps=((None, GOOD), (1, WARN)),
            width=6,
            graph=True,
        ),
        stat(
            "Failed deploys",
            "Failed deploys per second across the fleet (5-minute rate).",
            "ops",
            [Query(f"sum({rules.DEPLOY_FAILURES_RATE}{fleet}) or vector(0)", instant=True)],
            steps=((None, GOOD), (1e-9, WARN)),
            width=6,
            graph=True,
        ),
        stat(
            "Failed finalizations",
            "Failed finalizations per second across the fleet (5-minute rate): under FleetLock such a host keeps its "
            "reboot slot.",
            "ops",
            [Query(f"sum({rules.FINALIZE_FAILURES_RATE}{fleet}) or vector(0)", instant=True)],
            steps=((None, GOOD), (1e-9, BAD)),
            width=6,
            graph=True,
        ),
    ]
    by_kind = [
        timeseries(
            "Update-check errors by kind",
            "Failed update checks per second by kind: the update server's error kind, generic_http_<code>, or "
            "client_failed_* for errors on the host's side.",
            "ops",
            [common.breakdown(config, f"{rules.CHECK_ERRORS_RATE}{fleet}", "kind", legend="{{kind}}")],
            stacked=True,
        ),
        timeseries(
            "Deploy and finalization failures",
            "Failed deploys (Zincati retries a release 12 times in a row, and again after its next check) "
            "and failed finalizations, per second.",
            "ops",
            [
                common.breakdown(config, f"{rules.DEPLOY_FAILURES_RATE}{fleet}", legend="deploy"),
                common.breakdown(config, f"{rules.FINALIZE_FAILURES_RATE}{fleet}", legend="finalize"),
            ],
        ),
        timeseries(
            "FleetLock errors by api and kind",
            "FleetLock calls that failed, per second. failed_lock / lock_held on pre-reboot is a full reboot "
            "semaphore (waiting, not broken); anything else is an error.",
            "ops",
            [common.breakdown(config, f"{rules.LOCK_ERRORS_RATE}{fleet}", "api", "kind", legend="{{api}}: {{kind}}")],
            stacked=True,
        ),
        timeseries(
            "Hosts in error",
            "Hosts in phase `error` over time.",
            "none",
            [common.breakdown(config, f"{rules.HOSTS_BY_PHASE}{in_error}", legend="hosts in error")],
        ),
    ]
    errors = "|".join(ERROR_COUNTERS)
    # A busy reboot lock is waiting, not failing (and in a throttled rollout most hosts wait).
    not_busy = f'kind!~"{"|".join(names.LOCK_BUSY_KINDS)}"'
    per_host = common.by(config, "instance")
    top = table(
        "Hosts with the most errors",
        "The 10 hosts with the most errors and failures of every kind in the chosen time range (a refused reboot "
        "slot is waiting, not an error).",
        "none",
        [
            Query(
                f'topk(10, sum{per_host} (increase({{__name__=~"{errors}", {fleet[1:-1]}, {not_busy}}}[$__range])))',
                instant=True,
                table=True,
            )
        ],
        transformations=[rename({"instance": "Host", "Value": "Errors"})],
        sort_by="Errors",
        width=24,
    )
    return Dashboard(
        slug=SLUG,
        title="OS updates / Agent errors",
        description="Update-check, deploy, finalization and FleetLock errors across the fleet, and the hosts failing.",
        variables=common.fleet_variables(config, rules.HOSTS_BY_STREAM),
        rows=[Row("Now", summary), Row("By kind", by_kind), Row("Hosts", [top])],
    )
