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
#: Panels that only hosts reporting their own state fill (empty where every phase is inferred).
REPORTED = common.REPORTED_ONLY


def dashboard(config: BundleConfig) -> Dashboard:
    fleet = common.fleet(config)
    not_up_to_date = common.fleet(config, 'phase!="up_to_date"')
    per_version_phase = f"sum{common.by(config, 'os', 'os_version', 'phase')} ({rules.HOSTS_BY_PHASE_VERSION}{fleet})"
    # The matrix has one row label: the OS and the version (the cluster first, with several).
    row = "version"
    joined = ((config.cluster_label,) if config.show_multi_cluster else ()) + ("os", "os_version")
    sources = ", ".join(f'"{label}"' for label in joined)
    per_version_phase = f'label_join({per_version_phase}, "{row}", " ", {sources})'
    per_phase = f"sum{common.by(config, 'phase')} ({rules.HOSTS_BY_PHASE}{fleet})"
    all_hosts = (
        f"on ({config.cluster_label}) group_left () sum by ({config.cluster_label}) ({rules.HOSTS_BY_PHASE}{fleet})"
        if config.show_multi_cluster
        else f"scalar(sum({rules.HOSTS_BY_PHASE}{fleet}))"
    )
    matrix = table(
        "Status breakdown",
        "Hosts per version (rows) and update phase (columns); an empty cell is no host.",
        "none",
        [Query(per_version_phase, instant=True, table=True)],
        transformations=[
            {
                "id": "groupingToMatrix",
                "options": {"columnField": "phase", "rowField": row, "valueField": "Value"},
            },
            rename({f"{row}\\phase": "Version"}, exclude=()),
        ],
        width=24,
        height=8,
    )
    phases = table(
        "Hosts per phase",
        "Hosts in each phase and their share of all chosen hosts: the counts add up to every host scraped.",
        "none",
        [
            Query(per_phase, instant=True, table=True),
            Query(
                f"{per_phase}\n/ {all_hosts}",
                instant=True,
                table=True,
            ),
        ],
        transformations=[
            {"id": "merge", "options": {}},
            rename({config.cluster_label: "Cluster", "phase": "Phase", "Value #A": "Hosts", "Value #B": "Share"}),
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
            common.breakdown(
                config,
                f"{rules.HOSTS_BY_PHASE_VERSION}{not_up_to_date}",
                "phase",
                "os",
                "os_version",
                legend="{{phase}} on {{os}} {{os_version}}",
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
        [common.breakdown(config, f"{rules.HOSTS_BY_PHASE}{fleet}", "phase", legend="{{phase}}")],
        width=24,
        stacked=True,
        overrides=[fixed_colour(phase, colour) for phase, (_, colour, _) in common.PHASE_STYLE.items()],
    )
    # What hosts that report their own state say (os_update): (title, what it counts, rule, label).
    held_up = (
        (
            "Why staged hosts wait",
            "Staged hosts by what they wait for: a reboot slot (every slot of their group taken), their maintenance "
            "window, or logged-in users.",
            rules.WAITING_BY_REASON,
            "reason",
        ),
        (
            "What keeps failing",
            "Failing hosts by what fails: update check, deploy, finalize, taking or releasing the reboot slot, "
            "registering with rpm-ostree.",
            rules.FAILING_BY_KIND,
            "kind",
        ),
        (
            "Versions on their way",
            "Hosts downloading, staged with, or just rebooted into each version.",
            rules.TARGETS_BY_VERSION,
            "version",
        ),
    )
    reported = [
        timeseries(
            f"{title}{REPORTED}",
            f"{description} From hosts that report their own state (os_update selector).",
            "none",
            [common.breakdown(config, f"{rule}{fleet}", label, legend=f"{{{{{label}}}}}")],
            width=8,
            stacked=True,
        )
        for title, description, rule, label in held_up
    ]
    return Dashboard(
        slug=SLUG,
        title="OS updates / Status breakdown",
        description="Hosts per update phase and version: where the rollout is held up.",
        variables=common.fleet_variables(config, rules.HOSTS_BY_STREAM),
        rows=[
            Row("Now", [matrix, phases, moving]),
            Row("Over time", [over_time]),
            Row("What holds hosts up", reported),
        ],
    )
