"""Version breakdown (Nebraska's): which versions the fleet runs, per stream, now and over time.
Reads recording rules only."""

from __future__ import annotations

from local_exporter.bundle import rules
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.dashboards import common
from local_exporter.bundle.dashboards.style import Dashboard, Query, Row, field_unit, rename, table, timeseries

SLUG = "versions"


def dashboard(config: BundleConfig) -> Dashboard:
    fleet = common.fleet(config)
    legend = common.legend_for(config, "{{os}} {{os_version}}")
    # Each version's share of its cluster's hosts (of all hosts, with one cluster).
    on_cluster = f"on ({config.cluster_label if config.show_multi_cluster else ''}) group_left () "
    split = (
        *((config.cluster_label,) if config.show_multi_cluster else ()),
        "os",
        "stream",
        *((config.group_label,) if config.group_label else ()),
    )
    keys = ", ".join(split)
    per_version = f"sum by ({keys}, os_version) ({rules.HOSTS_BY_VERSION}{fleet})"
    per_stream = f"sum by ({keys}) ({rules.HOSTS_BY_STREAM}{fleet})"
    breakdown = table(
        "Version breakdown",
        "Hosts per version and their share of their stream"
        + (f" and {config.group_label}" if config.group_label else "")
        + ": the shares of a stream add up to 100 %.",
        "none",
        [
            Query(per_version, instant=True, table=True),
            Query(f"{per_version}\n/ on ({keys}) group_left ()\n{per_stream}", instant=True, table=True),
        ],
        transformations=[
            {"id": "merge", "options": {}},
            rename(
                {
                    **{label: "OS" if label == "os" else label.capitalize() for label in split},
                    "os_version": "Version",
                    "Value #A": "Hosts",
                    "Value #B": "Share",
                }
            ),
        ],
        overrides=[field_unit("Share", "percentunit")],
        sort_by="Hosts",
        width=10,
        height=10,
    )
    timeline = timeseries(
        "Hosts per version",
        "Hosts on each version over time, stacked: a rollout moves hosts from the old band to the new one.",
        "none",
        [Query(f"sum{common.by(config, 'os', 'os_version')} ({rules.HOSTS_BY_VERSION}{fleet})", legend=legend)],
        width=14,
        height=10,
        stacked=True,
    )
    shares = timeseries(
        "Share of each version",
        "Each version's share of all chosen hosts, stacked to 100 %.",
        "percentunit",
        [
            Query(
                f"sum{common.by(config, 'os', 'os_version')} ({rules.HOSTS_BY_VERSION}{fleet})\n"
                f"/ {on_cluster}sum{common.by(config)} ({rules.HOSTS_BY_STREAM}{fleet})",
                legend=legend,
            )
        ],
        width=12,
        stacked=True,
        max_value=1,
    )
    streams = timeseries(
        "Hosts per stream",
        "Hosts reporting on each stream.",
        "none",
        [Query(f"{per_stream}", legend=common.legend_for(config, "{{stream}}"))],
        width=12,
    )
    return Dashboard(
        slug=SLUG,
        title="OS updates / Version breakdown",
        description="Versions run by the fleet, per stream: now as a table, and over time.",
        variables=common.fleet_variables(config, rules.HOSTS_BY_STREAM),
        rows=[Row("Now", [breakdown, timeline]), Row("Shares", [shares, streams])],
        time_from="now-7d",
    )
