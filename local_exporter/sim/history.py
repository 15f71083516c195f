"""A scenario as history: what Prometheus would have stored scraping the fleet, as OpenMetrics.

Every `interval` of scenario time, each host is scraped as Prometheus scrapes it through its
bridge (job `zincati`, `instance` = the host's name, the exposition unchanged) and, like
Prometheus, an `up` sample is stored per scrape: 1 with the host's samples, 0 alone while its
agent is down. With `reported`, each host's bridge is an `os_update` selector instead
(sim/reported.py): its response carries the host's own phase families after Zincati's, and
answers (`up` 1) while the agent is down. With fleet_lock the airlock is scraped too (job
`airlock`). The result is one file for `promtool tsdb create-blocks-from openmetrics`.

Not stored: Prometheus' other synthetic series (`scrape_duration_seconds` and friends), which
describe the scrape rather than the fleet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from local_exporter.common.jobs import AGENT_JOB, AIRLOCK_INSTANCE, AIRLOCK_JOB
from local_exporter.sim.airlock import AirlockCollector
from local_exporter.sim.backfill import BackfillStats, HistoryWriter
from local_exporter.sim.fleet import Fleet
from local_exporter.sim.reported import Reporter, settings
from local_exporter.sim.scenario import Scenario

_UP = b"up 1\n"
_DOWN = b"up 0\n"


@dataclass(frozen=True)
class History:
    start: float
    end: float
    scrapes: int
    stats: BackfillStats


def write_history(
    scenario: Scenario,
    out: Path,
    *,
    interval: float = 15.0,
    end: float | None = None,
    progress: Callable[[float], None] | None = None,
    reported: bool = False,
) -> History:
    """Backfill `scenario` into `out`; it starts at `scenario.start`, else ends at `end` (default now).

    `progress` is called with the fraction done after each scrape round.
    """
    if interval <= 0:
        raise ValueError("interval must be positive")
    if scenario.start is None:
        scenario_end = time.time() if end is None else end
        start = scenario_end - scenario.duration
    else:
        start = scenario.start
    # Whole milliseconds, as Prometheus stores timestamps: every round lands on one instant.
    start = round(start, 3)
    fleet = Fleet(scenario, lambda t: start + t)
    airlock = None
    if scenario.fleet.strategy == "fleet_lock":
        airlock = CollectorRegistry(auto_describe=True)
        airlock.register(AirlockCollector(fleet.semaphores))
    targets = [{"instance": host.name, "job": AGENT_JOB} for host in fleet.hosts]
    selector = settings(interval)
    reporters = [Reporter(host, scenario.fleet.stream, selector) for host in fleet.hosts] if reported else None
    rounds = int(scenario.duration // interval) + 1
    with HistoryWriter(out) as writer:
        for number in range(rounds):
            t = number * interval
            fleet.advance(t)
            timestamp = start + t
            for host, target in zip(fleet.hosts, targets, strict=True):
                body = fleet.render(host.index)
                if reporters is not None:
                    own = reporters[host.index].render(host, body, timestamp)
                    writer.add(timestamp, target, (body or b"") + own + _UP)
                else:
                    writer.add(timestamp, target, _DOWN if body is None else body + _UP)
            if airlock is not None:
                target = {"instance": AIRLOCK_INSTANCE, "job": AIRLOCK_JOB}
                writer.add(timestamp, target, generate_latest(airlock) + _UP)
            if progress is not None:
                progress((number + 1) / rounds)
        stats = writer.close()
    return History(start, start + (rounds - 1) * interval, rounds, stats)
