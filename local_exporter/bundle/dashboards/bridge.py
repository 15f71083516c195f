"""Bridge health: the bridge's own metrics, fleet-wide from recording rules and per host and
selector for the chosen hosts."""

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
    Variable,
    rename,
    stat,
    table,
    timeseries,
)

SLUG = "bridge"


def dashboard(config: BundleConfig) -> Dashboard:
    # The bridges' own series have no OS: the fleet is the cluster and the job.
    fleet = common.agents(config)
    chosen = common.host(config, 'selector=~"$selector"')
    failed = 'outcome!~"success|cancelled"'
    fleet_failed = common.agents(config, failed)
    chosen_failed = common.host(config, f'selector=~"$selector", {failed}')

    per_pair = common.by(config, "instance", "selector")

    def per_second(metric: str, by: str, selector: str = chosen) -> str:
        return f"sum{common.by(config, *by.split(', '))} (rate({metric}{selector}[$__rate_interval]))"

    def latency(quantile: float) -> Query:
        buckets = per_second(names.BRIDGE_DURATION + "_bucket", "le, selector")
        return Query(
            f"histogram_quantile({quantile}, {buckets})",
            legend=common.legend_for(config, f"{{{{selector}}}} p{round(quantile * 100)}"),
        )

    fleet_panels = [
        stat(
            "Bridges answering",
            "Bridges whose /metrics answered their last scrape.",
            "none",
            [Query(f"sum({rules.BRIDGES_UP}{fleet})")],
            width=4,
            graph=True,
        ),
        stat(
            "Bridges not answering",
            "Bridges whose last scrape of /metrics failed: nothing is known of those hosts.",
            "none",
            [Query(f"sum({rules.BRIDGES}{fleet}) - sum({rules.BRIDGES_UP}{fleet})")],
            steps=((None, GOOD), (1, BAD)),
            width=4,
            graph=True,
        ),
        stat(
            "Scrapes failing",
            "Share of /bridge scrapes that failed across the fleet over the last 5 minutes.",
            "percentunit",
            [
                Query(
                    f"(sum({rules.BRIDGE_REQUESTS_RATE}{fleet_failed}) or vector(0))\n"
                    f"/ sum({rules.BRIDGE_REQUESTS_RATE}{fleet})",
                    instant=True,
                )
            ],
            steps=((None, GOOD), (0.01, WARN), (0.1, BAD)),
            width=4,
            graph=True,
        ),
        timeseries(
            "Scrapes by selector and outcome",
            "/bridge scrapes per second across the fleet: success, or why they failed.",
            "reqps",
            [
                common.breakdown(
                    config,
                    f"{rules.BRIDGE_REQUESTS_RATE}{fleet}",
                    "selector",
                    "outcome",
                    legend="{{selector}} {{outcome}}",
                )
            ],
            stacked=True,
        ),
    ]
    host_panels = [
        timeseries(
            "Failed scrapes per host and selector",
            "Failed /bridge scrapes per second on the chosen hosts, by outcome.",
            "reqps",
            [
                Query(
                    per_second(names.BRIDGE_REQUESTS, "instance, selector, outcome", chosen_failed),
                    legend=common.legend_for(config, "{{instance}} {{selector}} {{outcome}}"),
                )
            ],
        ),
        timeseries(
            "Scrape latency",
            "Time to answer a /bridge scrape, reading the source included: median and 99th percentile per selector.",
            "s",
            [latency(0.5), latency(0.99)],
        ),
        timeseries(
            "Bytes served",
            "Exposition bytes served per second, before compression, per selector.",
            "Bps",
            [
                Query(
                    per_second(names.BRIDGE_RESPONSE_BYTES, "selector"),
                    legend=common.legend_for(config, "{{selector}}"),
                )
            ],
        ),
        timeseries(
            "Requests refused",
            "Requests refused before reaching a source (unknown selector, bad query, too many in flight), per second.",
            "reqps",
            [
                Query(
                    per_second(names.BRIDGE_REJECTED, "reason", common.host(config)),
                    legend=common.legend_for(config, "{{reason}}"),
                )
            ],
        ),
        table(
            "Longest since a successful scrape",
            "The 20 host and selector pairs of the chosen hosts that served their last successful scrape longest ago.",
            "s",
            [
                Query(
                    f"topk(20, time() - max{per_pair} ({names.BRIDGE_LAST_SUCCESS}{chosen}))",
                    instant=True,
                    table=True,
                )
            ],
            transformations=[rename({"instance": "Host", "selector": "Selector", "Value": "Since last success"})],
            sort_by="Since last success",
            width=24,
        ),
    ]
    return Dashboard(
        slug=SLUG,
        title="OS updates / Bridge health",
        description="The bridges' own metrics: scrape outcomes, latency, bytes, last success, per host and selector.",
        variables=[
            *common.fleet_variables(config, names.BRIDGE_BUILD_INFO, os=False),
            common.instance_variable(config, names.BRIDGE_BUILD_INFO, multi=True, os=False),
            Variable("selector", "Selector", f"label_values({names.BRIDGE_REQUESTS}{common.host(config)}, selector)"),
        ],
        rows=[Row("Fleet", fleet_panels), Row("Chosen hosts", host_panels)],
        time_from="now-6h",
    )
