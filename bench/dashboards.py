#!/usr/bin/env python3
"""Every dashboard panel's queries timed on a backfilled fleet: as shipped (recording rules)
versus raw (each recording rule inlined as the expression it records).

    python3 bench/dashboards.py [--hosts 100000] [--minutes 30] [--repeat 3] [--raw-timeout 10]

The fleet (bench/backfilled.py) is backfilled with promtool; the recording rules are then
backfilled over the same history with `promtool tsdb create-blocks-from rules`, one pass per
level of dependency (promtool evaluates against the running Prometheus, which must already hold
the rules a rule reads), restarting Prometheus on the new blocks after each pass. No rule runs
while the queries are timed.

Each target is run as Grafana would run it over the whole history (range queries at
range / maxDataPoints steps; stats and tables as instant queries at its end) with the variables
a dashboard starts with: "All" for the fleet's, one host where a host is chosen, and `$__rate_interval` for a 1-minute scrape
interval (Prometheus runs with a lookback just under the 1-minute history interval: see FLAGS).
A panel's time is the sum of its targets' median wall times (client to Prometheus on
loopback, JSON included). Raw queries get `--raw-timeout` seconds each.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from procs import ROOT, free_port, rss_mb, stop

sys.path.insert(0, str(ROOT))

from backfilled import Backfill, backfill, preamble, scenario, start_prometheus

from local_exporter.bundle import dashboards, rules
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.promql import metric_names, substituted
from local_exporter.common.durations import parse_duration

CONFIG = BundleConfig()
#: Backfilled series have no staleness markers: a host's previous phase (or version) would stay
#: visible for the default 5-minute lookback next to its new one and break the one-to-one joins
#: of the rules after it. Every sample here lies on a whole minute, as does every query, so a
#: lookback just under a minute sees exactly the samples of that minute, as staleness markers
#: would have it live.
FLAGS = (
    "--query.lookback-delta=59s",
    # promtool backfills a rule as one range query over the whole history: at 100,000 hosts the
    # phase rule takes minutes and reads more than the default 50 million samples.
    "--query.timeout=1h",
    "--query.max-samples=1000000000",
)
RECORDED = {r["record"]: r["expr"] for group in rules.recording_rules(CONFIG) for r in group["rules"]}
#: Grafana's default (and the bundle's) points per panel.
MAX_DATA_POINTS = 100
TARGET_MS = 50.0


# --- the recording rules, backfilled level by level ---------------------------------------------


def levels() -> list[list[dict[str, Any]]]:
    """The recording rules in passes: each reads only raw series and the rules of earlier passes."""
    level: dict[str, int] = {}
    remaining = dict(RECORDED)
    while remaining:
        ready = {
            name: 1 + max((level[d] for d in metric_names(expr) & RECORDED.keys()), default=0)
            for name, expr in remaining.items()
            if metric_names(expr) & RECORDED.keys() <= level.keys()
        }
        if not ready:
            raise RuntimeError(f"recording rules depend on each other in a cycle: {sorted(remaining)}")
        level.update(ready)
        for name in ready:
            del remaining[name]
    passes: list[list[dict[str, Any]]] = [[] for _ in range(max(level.values()))]
    for name, expr in RECORDED.items():
        passes[level[name] - 1].append({"record": name, "expr": expr})
    return passes


def backfill_rules(directory: Path, port: int, start: float, end: float, server: subprocess.Popen[bytes]) -> Any:
    """Every recording rule over [start, end], pass by pass; the Prometheus serving them all."""
    config = {"global": {}}
    for number, recorded in enumerate(levels(), 1):
        began = time.perf_counter()
        rule_file = directory / f"level-{number}.yml"
        rule_file.write_text(yaml.safe_dump({"groups": [{"name": f"level-{number}", "rules": recorded}]}))
        out = directory / f"level-{number}-blocks"
        done = subprocess.run(
            [
                "promtool", "tsdb", "create-blocks-from", "rules",
                f"--start={int(start)}", f"--end={int(end)}", f"--url=http://127.0.0.1:{port}",
                f"--output-dir={out}", "--eval-interval=60s", "--quiet", str(rule_file),
            ],
            capture_output=True,
            text=True,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"promtool backfilling pass {number}: {done.stderr.strip()[-800:]}")
        stop(server)
        for block in out.iterdir():
            shutil.move(str(block), directory / "data" / block.name)
        server = start_prometheus(directory, port, config, retention="30d", flags=FLAGS)
        names = ", ".join(r["record"] for r in recorded)
        print(f"  rules pass {number}: {time.perf_counter() - began:.0f} s ({names})", file=sys.stderr, flush=True)
    return server


# --- raw equivalents ----------------------------------------------------------------------------

_RECORDED_REF = re.compile(
    r"(?<![\w:])(" + "|".join(re.escape(n) for n in sorted(RECORDED, key=len, reverse=True)) + r")(\{[^}]*\})?"
)
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')


def _one_of(label: str, values: list[str]) -> str:
    return " or ".join(f'label_replace(vector(1), "{label}", "{v}", "", "")' for v in values)


def _filtered(expr: str, matchers: str) -> str:
    """`expr` restricted by a selector's `matchers`, as PromQL on a computed vector (an "All"
    variable's `.*` or `.+` keeps everything)."""
    for label, op, value in _MATCHER.findall(matchers):
        if value in (".*", ".+"):
            continue
        keep = "and" if op in ("=", "=~") else "unless"
        values = value.split("|") if "~" in op else [value]
        expr = f"({expr} {keep} on ({label}) ({_one_of(label, values)}))"
    return expr


def raw(expr: str) -> str:
    """`expr` with every recording rule replaced by the expression it records."""
    return _RECORDED_REF.sub(lambda m: _filtered(f"({raw(RECORDED[m.group(1)])})", m.group(2) or ""), expr)


# --- timing -------------------------------------------------------------------------------------


def timed(
    port: int, target: dict[str, Any], expr: str, end: float, seconds: float, timeout: float
) -> tuple[float, int]:
    """(wall ms, series returned) for one run of `expr` as Grafana would send it; inf on timeout."""
    params: dict[str, str] = {"query": expr, "timeout": f"{timeout:g}"}
    if target["instant"]:
        path, params["time"] = "query", f"{end:.3f}"
    else:
        step = max(60.0, seconds / MAX_DATA_POINTS)
        path = "query_range"
        params.update(start=f"{end - seconds:.3f}", end=f"{end:.3f}", step=f"{step:g}")
    url = f"http://127.0.0.1:{port}/api/v1/{path}?" + urllib.parse.urlencode(params)
    began = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout + 30) as response:
            body = json.load(response)
    except urllib.error.HTTPError as error:
        answer = json.load(error)
        if any(word in answer.get("error", "") for word in ("timeout", "timed out", "deadline exceeded")):
            return float("inf"), 0
        raise RuntimeError(f"{expr}: {answer.get('error')}") from None
    return (time.perf_counter() - began) * 1000, len(body["data"]["result"])


def variables(dashboard: dict[str, Any], host: str, seconds: float) -> dict[str, str]:
    step = max(60.0, seconds / MAX_DATA_POINTS)
    values = {"__rate_interval": f"{int(max(step + 60, 240))}s", "__range": f"{int(seconds)}s"}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            # Hosts start on one host (the drill-down, bridge health), everything else on All.
            values[variable["name"]] = host if variable["name"] == "instance" else variable["allValue"]
    return values


def _ms(value: float) -> str:
    return "timeout" if value == float("inf") else f"{value:.1f}"


def report(port: int, filled: Backfill, host: str, repeat: int, raw_timeout: float) -> list[str]:
    end = filled.history.end
    seconds = filled.history.end - filled.history.start
    lines = []
    over = []
    for text in dashboards.render(CONFIG).values():
        dashboard = json.loads(text)
        values = variables(dashboard, host, seconds)
        lines += [
            f"#### {dashboard['title']}",
            "",
            "| panel | targets | series | as shipped ms | raw ms |",
            "|---|---:|---:|---:|---:|",
        ]
        for panel in dashboard["panels"]:
            targets = panel.get("targets", [])
            if not targets:
                continue
            shipped, inlined, series = 0.0, 0.0, 0
            for target in targets:
                expr = substituted(target["expr"], values)
                runs = [timed(port, target, expr, end, seconds, 60.0) for _ in range(repeat)]
                shipped += statistics.median(ms for ms, _ in runs)
                series += runs[0][1]
                unrecorded = raw(expr)
                if unrecorded != expr:
                    inlined += timed(port, target, unrecorded, end, seconds, raw_timeout)[0]
                else:
                    inlined += statistics.median(ms for ms, _ in runs)
            if shipped > TARGET_MS:
                over.append(f"{dashboard['title']} / {panel['title']}")
            lines.append(f"| {panel['title']} | {len(targets)} | {series} | {_ms(shipped)} | {_ms(inlined)} |")
        lines.append("")
    verdict = "every panel within" if not over else f"{len(over)} panels over"
    lines.append(f"{verdict} {TARGET_MS:.0f} ms as shipped" + ("" if not over else ": " + "; ".join(over)))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--hosts", type=int, default=100_000, help="fleet size (default 100000)")
    parser.add_argument("--minutes", type=float, default=30, help="history length (default 30)")
    parser.add_argument("--interval", default="1m", help="history scrape interval (default 1m)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each shipped query (default 3)")
    parser.add_argument("--raw-timeout", type=float, default=10, help="seconds each raw query may take (default 10)")
    args = parser.parse_args()
    preamble("dashboards.py")
    directory = Path(tempfile.mkdtemp(prefix="les-dashboards-"))
    port = free_port()
    server = None
    try:
        # A whole minute, well in the past: promtool backfills rules only up to a given end.
        end = float(int(time.time() // 60 * 60) - 3600)
        filled = backfill(args.hosts, args.minutes, parse_duration(args.interval), end, directory / "data")
        print(f"  fleet: {filled.summary()}", file=sys.stderr, flush=True)
        server = start_prometheus(directory, port, {"global": {}}, retention="30d", flags=FLAGS)
        began = time.perf_counter()
        server = backfill_rules(directory, port, filled.history.start, filled.history.end, server)
        rules_s = time.perf_counter() - began
        print(
            f"### {args.hosts} hosts ({filled.summary()}; recording rules backfilled in {rules_s:.0f} s; "
            f"Prometheus RSS {rss_mb(server.pid):.0f} MB)\n",
            flush=True,
        )
        host = scenario(args.hosts, args.minutes, end).fleet.host_name(args.hosts // 2)
        for line in report(port, filled, host, args.repeat, args.raw_timeout):
            print(line, flush=True)
    finally:
        if server is not None:
            stop(server)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
