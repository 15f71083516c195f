"""Fleet rollout overview: how many hosts report, where each is in its update, and how far the
rollout to the newest version of each stream has come. Reads recording rules only."""

from __future__ import annotations

from local_exporter.bundle import rules
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.dashboards import common
from local_exporter.bundle.dashboards.style import (
    GOOD,
    WARN,
    Dashboard,
    Query,
    Row,
    dashboard_uid,
    dashed_series,
    field_unit,
    fixed_colour,
    rename,
    stat,
    table,
    time_range_link,
    timeseries,
)

SLUG = "overview"
#: Time ranges one click away (Nebraska shows the last day, week and month).
QUICK_RANGES = ("1h", "1d", "7d", "30d")


def dashboard(config: BundleConfig) -> Dashboard:
    fleet = common.fleet(config)

    def by(*labels: str) -> str:
        return common.by(config, *labels)

    def legend(text: str) -> str:
        return common.legend_for(config, text)

    # A share is a sum over a sum: the recorded ratios of several jobs or clusters do not add up.
    # A stream never stands alone: both OSes have one called "stable".
    share_of_stream = (
        f"sum{by('os', 'stream')} ({rules.HOSTS_ON_NEWEST}{fleet})\n"
        f"/ sum{by('os', 'stream')} ({rules.HOSTS_BY_STREAM}{fleet})"
    )

    def phase_filter(phase: str) -> str:
        return common.fleet(config, f'phase="{phase}"')

    hosts = stat(
        "Hosts",
        "Every host the agent job scrapes, read or not: the phases below add up to it.",
        "none",
        [Query(f"sum({rules.HOSTS_BY_PHASE}{fleet})", instant=True)],
        width=4,
        graph=True,
    )
    newest = stat(
        "On the newest version",
        "Share of the hosts that run the newest version of their stream.",
        "percentunit",
        [
            Query(
                f"sum({rules.HOSTS_ON_NEWEST}{fleet}) / sum({rules.HOSTS_BY_STREAM}{fleet})",
                instant=True,
            )
        ],
        width=4,
        steps=((None, WARN), (1, GOOD)),
        graph=True,
    )
    phase_stats = [
        stat(
            title,
            f"Hosts in phase `{phase}`: {meaning[0].lower()}{meaning[1:]}",
            "none",
            [Query(f"sum({rules.HOSTS_BY_PHASE}{phase_filter(phase)}) or vector(0)", instant=True)],
            width=4,
            steps=((None, colour),),
        )
        for phase, (title, colour, meaning) in common.PHASE_STYLE.items()
    ]
    over_time = timeseries(
        "Hosts per phase",
        "Every host counted once, in the first phase that applies (docs/alerting.md lists the order).",
        "none",
        [Query(f"sum{by('phase')} ({rules.HOSTS_BY_PHASE}{fleet})", legend=legend("{{phase}}"))],
        width=24,
        height=9,
        stacked=True,
        overrides=[fixed_colour(phase, colour) for phase, (_, colour, _) in common.PHASE_STYLE.items()],
    )
    progress = timeseries(
        "Rollout progress per stream",
        "Share of each stream's hosts on its newest version: a rollout climbs to 100 %.",
        "percentunit",
        [Query(share_of_stream, legend=legend("{{os}} {{stream}}"))],
        width=8,
        max_value=1,
    )
    against_plan = timeseries(
        "Progress against plan",
        "Each stream's share of hosts on its newest release (solid) next to the share the update server has "
        "offered it to by now (dashed), from the release feed (Cincinnati's phased rollout). Hosts take a "
        "refresh, a download and a reboot slot to follow the plan; a gap that stays open is what "
        "RolloutBehindPlan pages on. Empty for streams without a feed, and for Flatcar, whose server plans "
        "a rate, not a schedule.",
        "percentunit",
        [
            Query(share_of_stream, legend=legend("{{os}} {{stream}} on the newest")),
            Query(
                f"max{by('os', 'stream')} ({rules.PLANNED_SHARE}{fleet})", legend=legend("{{os}} {{stream}} planned")
            ),
        ],
        width=8,
        max_value=1,
        overrides=[dashed_series("/planned$/")],
    )
    newest_table = table(
        "Newest version per stream",
        "The version each stream is rolling out (the update server's newest where a release feed is scraped, "
        "else the highest the hosts run), and how many hosts run it.",
        "none",
        [
            Query(f"max{by('os', 'stream', 'os_version')} ({rules.NEWEST}{fleet})", instant=True, table=True),
            Query(f"sum{by('os', 'stream')} ({rules.HOSTS_ON_NEWEST}{fleet})", instant=True, table=True),
            Query(share_of_stream, instant=True, table=True),
        ],
        transformations=[
            {"id": "merge", "options": {}},
            rename(
                {
                    "os": "OS",
                    "stream": "Stream",
                    "os_version": "Newest version",
                    "Value #B": "Hosts on it",
                    "Value #C": "Share",
                },
                exclude=("Time", "Value #A"),
            ),
        ],
        overrides=[field_unit("Share", "percentunit")],
        width=8,
    )
    # Nebraska is scraped on its own, not per host: the cluster variable applies, job and OS not.
    nebraska = "{" + f'{config.cluster_label}=~"${config.cluster_label}"' + "}"
    nebraska_instances = table(
        "Flatcar instances per channel and version" + common.NEBRASKA,
        "What Nebraska, Flatcar's update server, counts: every instance's latest version per channel. Its "
        "gauges keep a version no instance runs any more at its last count.",
        "none",
        [
            Query(
                f"sum{by('application', 'channel', 'version')} ({rules.NEBRASKA_INSTANCES}{nebraska})",
                instant=True,
                table=True,
            )
        ],
        transformations=[
            rename(
                {"application": "Application", "channel": "Channel", "version": "Version", "Value": "Instances"},
                exclude=("Time",),
            )
        ],
        width=16,
    )
    nebraska_failed = stat(
        "Failed updates, recently" + common.NEBRASKA,
        f"Error events Nebraska recorded in the last {config.nebraska_failed_window} (failed downloads and "
        "installs, and failed checks that still reached it), per application.",
        "none",
        [
            Query(
                f"sum{by('application')} ({rules.NEBRASKA_FAILED}{nebraska})",
                legend=legend("{{application}}"),
                instant=True,
            )
        ],
        steps=((None, GOOD), (1, WARN)),
        text_mode="value_and_name",
        width=8,
    )
    return Dashboard(
        slug=SLUG,
        title="OS updates / Fleet rollout overview",
        description="Hosts per update phase and rollout progress toward the newest version of each stream.",
        variables=common.fleet_variables(config, rules.HOSTS_BY_STREAM),
        rows=[
            Row("Now", [hosts, newest, *phase_stats[:4], *phase_stats[4:]]),
            Row("Over time", [over_time]),
            Row("Rollout", [progress, against_plan, newest_table]),
            Row("Nebraska", [nebraska_instances, nebraska_failed]),
        ],
        links=[time_range_link(dashboard_uid(config, SLUG), r) for r in QUICK_RANGES],
    )
