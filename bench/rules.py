#!/usr/bin/env python3
"""Rule evaluation time per group on a backfilled fleet of 10,000 and 100,000 hosts.

    python3 bench/rules.py [--hosts 10000,100000] [--minutes 60] [--interval 1m] [--evaluations 5] [--reported]

For each fleet size: the `fleet-lock` rollout (mid-way, so every phase has hosts) is written as
one hour of history with `write_history`, loaded with `promtool tsdb create-blocks-from
openmetrics`, and a real Prometheus (loopback, no scrape jobs) evaluates the committed
prometheus/rules/*.yml every 15 s. After `--evaluations` rounds (two of the groups that run
every minute, at least) it reads /api/v1/rules and
prints, per group and per rule, the median and the worst of `--rounds` readings of the last
evaluation time, a minute apart, and the series each produced.

With `--reported`, every host is scraped through an `os_update` selector (its own phase
families beside Zincati's, judged read by read as the bridge judges: sim/reported.py), and the
rules are generated with `infer_phases = false`, as for a fleet where every host reports.

The history is laid to end a little after generation and loading are estimated to finish, and
Prometheus starts once that end has passed: its head then starts after the blocks (samples at
"now" are appendable) while the last backfilled samples are seconds old, inside the 5-minute
lookback, as under live scraping.

Prometheus' own figures, so nothing here is timed by the script; the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from procs import ROOT, free_port, rss_mb, stop

sys.path.insert(0, str(ROOT))

from backfilled import add_reading_options, backfill, preamble, rule_files, start_prometheus

from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.generate import write
from local_exporter.common.durations import parse_duration

EVALUATION_INTERVAL = 15


def rules_api(port: int) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rules", timeout=30) as response:
        groups: list[dict[str, Any]] = json.load(response)["data"]["groups"]
    return groups


def series_count(port: int, name: str) -> int:
    query = urllib.parse.urlencode({"query": f"count({name})"})
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query?{query}", timeout=60) as response:
        result = json.load(response)["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def case(
    hosts: int, minutes: float, interval: float, evaluations: int, port: int, reported: bool, rounds: int
) -> list[str]:
    directory = Path(tempfile.mkdtemp(prefix="les-rules-"))
    server = None
    try:
        # Generation and loading together take about 16 samples per host and scrape at
        # ~50 k samples/s (measured: 113 k/s to generate, ~100 k/s in promtool).
        lead = 30 + hosts * (minutes * 60 / interval + 1) * 16 / 50_000
        if reported:
            lead *= 1.5  # the judging step per host and read (measured: 1171 s at 100,000 hosts)
        filled = backfill(hosts, minutes, interval, time.time() + lead, directory / "data", reported=reported)
        late = time.time() - filled.history.end
        if late > 120:
            return [f"{hosts} hosts: loading ended {late:.0f} s after the history did: lower the rate estimate"]
        time.sleep(max(0.0, filled.history.end - time.time()) + 2)
        files = rule_files()
        if reported:
            write(directory / "bundle", BundleConfig(infer_phases=False))
            files = sorted(str(path) for path in (directory / "bundle" / "prometheus" / "rules").glob("*.yml"))
        config = {"global": {"evaluation_interval": f"{EVALUATION_INTERVAL}s"}, "rule_files": files}
        server = start_prometheus(directory, port, config)
        # Two rounds of the groups that run every `rollout_rules_interval` (a minute), which read
        # one another's output one round late, then one reading per round: one evaluation of a
        # group varies severalfold on a shared 2-core machine, so the median and the worst.
        time.sleep(max(EVALUATION_INTERVAL * evaluations, 2 * 60 + 5))
        hosts_seen = series_count(port, "zincati_identity_os_info")
        if hosts_seen == 0:
            return [
                f"{hosts} hosts: the backfilled fleet is not visible at now: {(directory / 'prometheus.log').read_text()[-800:]}"
            ]
        readings = []
        for number in range(rounds):
            if number:
                time.sleep(61)
            readings.append(rules_api(port))
        groups = readings[-1]
        lines = [
            f"### {hosts} hosts{', every host reporting' if reported else ''} "
            f"({filled.summary()}; Prometheus RSS {rss_mb(server.pid):.0f} MB; {rounds} readings a minute apart)",
            "",
            "| group / rule | median ms | worst ms | series out |",
            "|---|---:|---:|---:|",
        ]

        def spread(times: list[float], bold: bool = False) -> str:
            mark = "**" if bold else ""
            return f"{mark}{statistics.median(times) * 1000:.1f}{mark} | {mark}{max(times) * 1000:.1f}{mark}"

        for g, group in enumerate(groups):
            lines.append(f"| **{group['name']}** | {spread([r[g]['evaluationTime'] for r in readings], True)} | |")
            for i, rule in enumerate(group["rules"]):
                name = rule["name"]
                # Rules that record one name apart by a rule label (one per phase) are told apart by it.
                if rule["type"] == "recording" and rule.get("labels"):
                    name += "{" + ", ".join(f'{k}="{v}"' for k, v in rule["labels"].items()) + "}"
                out = series_count(port, name) if rule["type"] == "recording" else len(rule.get("alerts", []))
                health = "" if rule.get("health") == "ok" else f" ({rule.get('health')}: {rule.get('lastError', '')})"
                times = [r[g]["rules"][i]["evaluationTime"] for r in readings]
                lines.append(f"| {name}{health} | {spread(times)} | {out} |")
        return lines
    finally:
        if server is not None:
            stop(server)
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--hosts", default="10000,100000", help="fleet sizes (default 10000,100000)")
    parser.add_argument("--minutes", type=float, default=60, help="history length (default 60)")
    add_reading_options(parser)
    parser.add_argument(
        "--reported",
        action="store_true",
        help="hosts report their own phase (os_update); rules with infer_phases=false",
    )
    args = parser.parse_args()
    preamble("rules.py")
    for hosts in (int(h) for h in args.hosts.split(",")):
        measured = case(
            hosts,
            args.minutes,
            parse_duration(args.interval),
            args.evaluations,
            free_port(),
            args.reported,
            args.rounds,
        )
        for line in measured:
            print(line, flush=True)
        print()


if __name__ == "__main__":
    main()
