"""A backfilled simulated fleet and a Prometheus on it: what bench/rules.py, bench/dashboards.py and
bench/victoria.py share.

The fleet is a FleetLock rollout in progress (50 reboot slots, half the wariness window passed
at the end), so that every update phase has hosts. Its history is written as OpenMetrics by the
simulator and turned into TSDB blocks by `promtool tsdb create-blocks-from openmetrics`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from procs import ROOT, http_ok

from local_exporter.sim.history import History, write_history
from local_exporter.sim.scenario import FleetSpec, ReleaseSpec, Scenario


def preamble(script: str) -> None:
    """Refuse without Debian's prometheus package; print the machine and the command run."""
    if shutil.which("promtool") is None or shutil.which("prometheus") is None:
        sys.exit("needs Debian's prometheus package (promtool and prometheus)")
    print(f"Machine: {len(os.sched_getaffinity(0))} CPUs, Python {platform.python_version()}")
    print(f"Command: python bench/{script} {' '.join(sys.argv[1:])}\n", flush=True)


def scenario(hosts: int, minutes: float, end: float) -> Scenario:
    # A rollout in progress at the end: half the wariness window has passed.
    fleet = FleetSpec(hosts=hosts, version="40.20240504.3.0", strategy="fleet_lock", groups=(("default", 50),))
    duration = minutes * 60
    release = ReleaseSpec("40.20240519.3.0", at=duration / 4, rollout=duration * 1.5)
    return Scenario("rules-bench", "", duration, fleet, (release,), start=end - duration)


@dataclass(frozen=True)
class Backfill:
    history: History
    generated_s: float
    loaded_s: float

    def summary(self) -> str:
        stats = self.history.stats
        return (
            f"{stats.samples:,} samples, {stats.series:,} series; "
            f"generated in {self.generated_s:.0f} s, loaded in {self.loaded_s:.0f} s"
        )


def add_reading_options(parser: argparse.ArgumentParser) -> None:
    """The options of a benchmark that reads the rules on a backfilled history."""
    parser.add_argument("--interval", default="1m", help="history scrape interval (default 1m)")
    parser.add_argument("--evaluations", type=int, default=5, help="rule evaluations before reading (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="readings of the rules, a minute apart (default 3)")


def openmetrics_path(data: Path) -> Path:
    """Where `backfill` writes the history it loads into `data`."""
    return data.parent / "history.om"


def backfill(
    hosts: int,
    minutes: float,
    interval: float,
    end: float,
    data: Path,
    *,
    reported: bool = False,
    keep_openmetrics: bool = False,
) -> Backfill:
    """The fleet's history ending at `end`, as blocks in `data`; with `reported`, every host
    scraped through an os_update selector (its own phase families too). With `keep_openmetrics`
    the OpenMetrics file is left at `openmetrics_path(data)` for another store to load."""
    om = openmetrics_path(data)
    began = time.perf_counter()
    history = write_history(scenario(hosts, minutes, end), om, interval=interval, reported=reported)
    generated = time.perf_counter() - began
    began = time.perf_counter()
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(om), str(data)], check=True, capture_output=True
    )
    if not keep_openmetrics:
        om.unlink()
    return Backfill(history, generated, time.perf_counter() - began)


def rule_files() -> list[str]:
    return sorted(str(path) for path in (ROOT / "prometheus" / "rules").glob("*.yml"))


def start_prometheus(
    directory: Path, port: int, config: dict[str, Any], retention: str = "2d", flags: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    """Prometheus on 127.0.0.1:`port` with its data in `directory`/data; ready when it returns."""
    path = directory / "prometheus.yml"
    path.write_text(json.dumps(config))
    log = (directory / "prometheus.log").open("ab")
    server = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={path}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.retention.time={retention}",
            "--log.level=warn",
            *flags,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 300
    while not http_ok(f"http://127.0.0.1:{port}/-/ready"):
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"Prometheus did not start: {(directory / 'prometheus.log').read_text()[-500:]}")
        time.sleep(0.5)
    return server
