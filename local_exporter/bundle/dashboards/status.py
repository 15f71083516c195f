"""Status breakdown (Nebraska's): hosts per update phase and version. Reads recording rules only."""

from __future__ import annotations

from local_exporter.bundle import rules
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.dashboards import common
from local_exporter.bundle.dashboards.style import (
    Dashboard,
    Query,
    Row,
    field_unit,
    fixed_colour,
    rename,
    table,
    timeseries,
)

SLUG = "status"


def dashboard(config: BundleConfig) -> Dashboard:
    fleet = common.fleet(config)
    not_up_to_date = common.fleet(config, 'phase!="up_to_date"')
    matrix = table(
        "Status breakdown",
        "Hosts per version (rows) and update phase (columns); an empty cell is no host.",
        "none",
        [Query(f"sum by (os_version, phase) ({rules.HOSTS_BY_PHASE_VERSION}{fleet})", instant=True, table=True)],
        transformations=[
            {
                "id": "groupingToMatrix",
                "options": {"columnField": "phase", "rowField": "os_version", "valueField": "Value"},
            },
            rename({"os_version\\phase": "Version"}, exclude=()),
        ],
        width=24,
        height=8,
    )
    phases = table(
        "Hosts per phase",
        "Hosts in each phase and their share of all chosen hosts: the counts add up to every host scraped.",
        "none",
        [
            Query(f"sum by (phase) ({rules.HOSTS_BY_PHASE}{fleet})", instant=True, table=True),
            Query(
                f"sum by (phase) ({rules.HOSTS_BY_PHASE}{fleet})\n/ scalar(sum({rules.HOSTS_BY_PHASE}{fleet}))",
                instant=True,
                table=True,
            ),
        ],
        transformations=[
            {"id": "merge", "options": {}},
            rename({"phase": "Phase", "Value #A": "Hosts", "Value #B": "Share"}),
        ],
        overrides=[field_unit("Share", "percentunit")],
        sort_by="Hosts",
        width=8,
        height=10,
    )
    moving = timeseries(
        "Hosts not up to date, per phase and version",
        "Every host that is not simply up to date, by phase and the version it runs.",
        "none",
        [
            Query(
                f"sum by (phase, os_version) ({rules.HOSTS_BY_PHASE_VERSION}{not_up_to_date})",
                legend="{{phase}} on {{os_version}}",
            )
        ],
        width=16,
        height=10,
        stacked=True,
    )
    over_time = timeseries(
        "Hosts per phase",
        "Every host counted once, in the first phase that applies.",
        "none",
        [Query(f"sum by (phase) ({rules.HOSTS_BY_PHASE}{fleet})", legend="{{phase}}")],
        width=24,
        stacked=True,
        overrides=[fixed_colour(phase, colour) for phase, (_, colour, _) in common.PHASE_STYLE.items()],
    )
    return Dashboard(
        slug=SLUG,
        title="OS updates / Status breakdown",
        description="Hosts per update phase and version: where the rollout is held up.",
        variables=common.fleet_variables(config, rules.HOSTS_BY_STREAM),
        rows=[Row("Now", [matrix, phases, moving]), Row("Over time", [over_time])],
    )
