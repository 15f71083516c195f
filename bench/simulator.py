#!/usr/bin/env python3
"""How big a fleet `local-exporter simulate` can play: live hosts per core, and backfill time.

    python3 bench/simulator.py [--live-hosts 250,500,1000,2000] [--seconds 30]
                               [--backfill-hosts 10000,100000] [--hours 24] [--interval 15m]
                               [--skip-live] [--skip-backfill] [--max-minutes 0]

Live. For each N, a scenario based on the `rollout` preset (one release, immediate strategy,
`hosts = N`, 24 h, speed 1) runs in its own process: `python -m local_exporter simulate
--bridge-port-base 0 --no-airlock`, each host behind its own real bridge, all in that one
process. Once DIR/prometheus/bridges.json exists and its last bridge answers /-/ready, a load
generator in another process (this script's `load` subcommand,
aiohttp) scrapes every bridge's /bridge?selector=zincati once per 15 s, the targets spread
evenly over the interval as Prometheus spreads them, over keep-alive connections, with
Prometheus' `X-Prometheus-Scrape-Timeout-Seconds: 10` and `Accept-Encoding: gzip` (so the
bridges compress, as in production). After one warm-up round it measures `--seconds` seconds:
the simulator's CPU time over exactly that window (utime + stime from /proc/PID/stat), its RSS
and open file descriptors at the end, and each scrape's status and latency. Then, with the load
generator gone, the simulator's idle CPU over a few seconds (it advances the fleet and checks
every host five times a second, scraped or not). The verdict is the
largest N under 70 % of one core with no errors and p99 under 1 s, and an extrapolation:
hosts per core = 1e6 µs × 0.7 / (CPU µs per scrape × scrapes per host per second).

Backfill. For each host count the scenario (immediate, one release at 1 h rolled out over 6 h,
`--hours` long) is written as OpenMetrics with `write_history` in this process at `--interval`,
timed, then loaded with `promtool tsdb create-blocks-from openmetrics`, timed; the files are
deleted after each case. A case is skipped if its estimated file (samples × the first case's
bytes per sample, ~110 before any case ran) exceeds half the free disk, or, with
`--max-minutes`, if its extrapolated time exceeds that. Prometheus' real 15 s interval is only
computed, not run: the table shows why.

Caveats: the machine may be shared, so CPU % moves with neighbours (CPU µs per scrape is the
steadier figure); the load generator runs on the same machine and competes for the same cores;
nothing happens in the scenario during a short live run (the release is offered at 10 min), so
the expositions are steady-state ones. Figures are for comparison within one run; nothing is
asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from procs import ROOT, child_env, cpu_seconds, http_ok, rss_mb, stop

sys.path.insert(0, str(ROOT))

SCRAPE_INTERVAL = 15.0
SCRAPE_TIMEOUT = 10.0
HEADERS = {"X-Prometheus-Scrape-Timeout-Seconds": f"{SCRAPE_TIMEOUT:g}", "Accept-Encoding": "gzip"}
IDLE_SECONDS = 5.0
STARTUP_TIMEOUT = 600.0
CPU_BUDGET = 0.7
P99_BUDGET_MS = 1000.0
DEFAULT_BYTES_PER_SAMPLE = 110.0


# --- the load generator (subcommand `load BRIDGES_JSON WARMUP SECONDS`)


def run_load(bridges_json: str, warmup: float, seconds: float) -> None:
    """Scrape every bridge once per interval, spread evenly; print `start`, `end`, then JSON."""
    import aiohttp

    targets = [entry["targets"][0] for entry in json.loads(Path(bridges_json).read_text())]
    urls = [f"http://{target}/bridge?selector=zincati" for target in targets]

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        latencies: list[float] = []
        errors: dict[str, int] = {}
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=4 * SCRAPE_INTERVAL)
        timeout = aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT)
        session = aiohttp.ClientSession(
            connector=connector,
            headers=HEADERS,
            timeout=timeout,
            auto_decompress=False,
            skip_auto_headers=["Accept-Encoding"],
        )
        first = loop.time() + 0.5
        measure_from = first + warmup
        measure_until = measure_from + seconds

        async def scrape(session: aiohttp.ClientSession, url: str) -> str:
            try:
                async with session.get(url) as response:
                    await response.read()
                    return str(response.status)
            except TimeoutError:
                return "timeout"
            except aiohttp.ClientError as exc:
                return type(exc).__name__

        async def target(index: int, url: str) -> None:
            at = first + SCRAPE_INTERVAL * index / len(urls)
            while at < measure_until:
                await asyncio.sleep(max(0.0, at - loop.time()))
                begun = time.perf_counter()
                status = await scrape(session, url)
                if at >= measure_from:
                    latencies.append(time.perf_counter() - begun)
                    if status != "200":
                        errors[status] = errors.get(status, 0) + 1
                at += SCRAPE_INTERVAL

        async def marks() -> None:
            await asyncio.sleep(measure_from - loop.time())
            print("start", flush=True)
            await asyncio.sleep(measure_until - loop.time())
            print("end", flush=True)

        async with session:
            await asyncio.gather(marks(), *(target(i, url) for i, url in enumerate(urls)))
        latencies.sort()
        return {
            "scrapes": len(latencies),
            "errors": errors,
            "p50_ms": 1000 * percentile(latencies, 0.5),
            "p99_ms": 1000 * percentile(latencies, 0.99),
        }

    print(json.dumps(asyncio.run(main())), flush=True)


def percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


# --- /proc


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# --- processes


# --- live


@dataclass
class LiveResult:
    hosts: int
    startup_s: float
    idle_cpu_percent: float
    scrapes: int
    seconds: float
    errors: dict[str, int]
    p50_ms: float
    p99_ms: float
    cpu_percent: float
    cpu_us_per_scrape: float
    rss_mb: float
    fds: int

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def scrapes_per_second(self) -> float:
        return self.scrapes / self.seconds

    @property
    def hosts_per_core(self) -> float:
        return 1e6 * CPU_BUDGET / (self.cpu_us_per_scrape / SCRAPE_INTERVAL)

    @property
    def fits(self) -> bool:
        return self.cpu_percent < 100 * CPU_BUDGET and self.error_count == 0 and self.p99_ms < P99_BUDGET_MS


def live_scenario(hosts: int) -> str:
    """The rollout preset with `hosts` hosts, 24 h long."""
    from local_exporter.sim import scenario_file

    text = scenario_file.preset_text("rollout")
    text = re.sub(r'(?m)^name = ".*"$', 'name = "bench-live"', text)
    text = re.sub(r'(?m)^duration = ".*"$', 'duration = "24h"', text)
    text = re.sub(r"(?m)^hosts = \d+$", f"hosts = {hosts}", text)
    parsed = scenario_file.parse(text)
    if (parsed.fleet.hosts, parsed.fleet.strategy, len(parsed.releases)) != (hosts, "immediate", 1):
        raise ValueError(f"the rollout preset changed: {parsed}")
    return text


def start_simulator(hosts: int, directory: Path) -> tuple[subprocess.Popen[bytes], float]:
    """Start the simulator and wait until its bridges are listed and one answers; return it and the wait."""
    scenario = directory / "scenario.toml"
    scenario.write_text(live_scenario(hosts))
    sim_dir = directory / "sim"
    log = directory / "simulate.log"
    command = [sys.executable, "-m", "local_exporter", "simulate", "--scenario", str(scenario)]
    command += ["--dir", str(sim_dir), "--bridge-port-base", "0", "--no-airlock"]
    began = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=child_env()
        )
    bridges = sim_dir / "prometheus" / "bridges.json"
    while True:
        if process.poll() is not None:
            sys.exit(f"simulator ({hosts} hosts) exited with {process.returncode}:\n{log.read_text()}")
        if time.monotonic() - began > STARTUP_TIMEOUT:
            stop(process)
            sys.exit(f"simulator ({hosts} hosts) not ready within {STARTUP_TIMEOUT:g} s:\n{log.read_text()}")
        if bridges.exists():
            targets = json.loads(bridges.read_text())
            if http_ok(f"http://{targets[-1]['targets'][0]}/-/ready"):
                return process, time.monotonic() - began
        time.sleep(0.1)


def live_case(hosts: int, seconds: float) -> LiveResult:
    directory = Path(tempfile.mkdtemp(dir="/tmp", prefix="les-"))
    processes: list[subprocess.Popen[Any]] = []
    try:
        simulator, startup = start_simulator(hosts, directory)
        processes.append(simulator)
        pid = simulator.pid
        bridges = directory / "sim" / "prometheus" / "bridges.json"
        command = [sys.executable, __file__, "load", str(bridges), str(SCRAPE_INTERVAL), str(seconds)]
        load = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=child_env())
        processes.append(load)
        assert load.stdout is not None
        if load.stdout.readline().strip() != "start":
            sys.exit("load generator failed before measuring")
        cpu_from, time_from = cpu_seconds(pid), time.monotonic()
        if load.stdout.readline().strip() != "end":
            sys.exit("load generator failed while measuring")
        cpu_used, elapsed = cpu_seconds(pid) - cpu_from, time.monotonic() - time_from
        rss, fds = rss_mb(pid), open_fds(pid)
        measured = json.loads(load.stdout.read())
        load.wait()
        # Idle after the load, not before: the first seconds after start-up are busier.
        idle_from = cpu_seconds(pid)
        time.sleep(IDLE_SECONDS)
        idle = (cpu_seconds(pid) - idle_from) / IDLE_SECONDS
        scrapes = measured["scrapes"]
        return LiveResult(
            hosts=hosts,
            startup_s=startup,
            idle_cpu_percent=100 * idle,
            scrapes=scrapes,
            seconds=elapsed,
            errors=measured["errors"],
            p50_ms=measured["p50_ms"],
            p99_ms=measured["p99_ms"],
            cpu_percent=100 * cpu_used / elapsed,
            cpu_us_per_scrape=1e6 * cpu_used / scrapes if scrapes else math.nan,
            rss_mb=rss,
            fds=fds,
        )
    finally:
        for process in reversed(processes):
            stop(process)
        shutil.rmtree(directory, ignore_errors=True)


def live_table(results: list[LiveResult]) -> str:
    rows = [
        "| hosts | startup s | idle CPU % | scrapes/s | errors | p50 ms | p99 ms | CPU % of a core "
        "| CPU µs/scrape | hosts/core @70 % | RSS MB | open fds |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        errors = str(r.error_count)
        if r.errors:
            errors += " (" + ", ".join(f"{kind} ×{count}" for kind, count in sorted(r.errors.items())) + ")"
        rows.append(
            f"| {r.hosts} | {r.startup_s:.1f} | {r.idle_cpu_percent:.1f} | {r.scrapes_per_second:.1f} | {errors} "
            f"| {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.cpu_percent:.1f} | {r.cpu_us_per_scrape:.0f} "
            f"| {r.hosts_per_core:.0f} | {r.rss_mb:.0f} | {r.fds} |"
        )
    return "\n".join(rows)


def live_verdict(results: list[LiveResult]) -> str:
    if not results:
        return "Verdict: no live case ran."
    fitting = [r for r in results if r.fits]
    budget = f"under {100 * CPU_BUDGET:.0f} % of one core, no errors, p99 under {P99_BUDGET_MS / 1000:g} s"
    if fitting:
        best = max(fitting, key=lambda r: r.hosts)
        lines = [f"Verdict: the largest measured fleet {budget}: **{best.hosts} hosts**."]
    else:
        lines = [f"Verdict: no measured fleet stays {budget}."]
        clean = [r for r in results if r.error_count == 0 and r.scrapes]
        if not clean:
            return lines[0]
        best = max(clean, key=lambda r: r.hosts)
    per_scrape = f"{best.cpu_us_per_scrape:.0f} µs"
    lines.append(
        f"Extrapolated from {best.hosts} hosts ({per_scrape} of simulator CPU per scrape, idle cost included, "
        f"one scrape per host per {SCRAPE_INTERVAL:g} s): 1e6 µs × {CPU_BUDGET} / ({per_scrape} × "
        f"1/{SCRAPE_INTERVAL:g} s) ≈ **{best.hosts_per_core:.0f} hosts per core**."
    )
    return "\n".join(lines)


# --- backfill


@dataclass
class BackfillResult:
    hosts: int
    scrapes: int
    samples: int
    series: int
    bytes: int
    generate_s: float
    promtool_s: float
    blocks_bytes: int

    @property
    def samples_per_host_scrape(self) -> float:
        return self.samples / (self.hosts * self.scrapes)

    @property
    def bytes_per_sample(self) -> float:
        return self.bytes / self.samples


def backfill_scenario(hosts: int, hours: float) -> Any:
    from local_exporter.sim.scenario import FleetSpec, ReleaseSpec, Scenario

    return Scenario(
        name="bench-backfill",
        description=f"{hosts} hosts, one release at 1 h rolled out over 6 h",
        duration=hours * 3600,
        fleet=FleetSpec(hosts=hosts, version="40.20240504.3.0", strategy="immediate", seed=1),
        releases=(ReleaseSpec(version="40.20240519.3.0", at=3600, rollout=6 * 3600),),
        reboot=90,
    )


def scrapes_in(hours: float, interval: float) -> int:
    return int(hours * 3600 // interval) + 1


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def backfill_case(hosts: int, hours: float, interval: float, directory: Path) -> BackfillResult:
    from local_exporter.sim.history import write_history

    out = directory / f"history-{hosts}.om"
    blocks = directory / f"blocks-{hosts}"
    try:
        began = time.perf_counter()
        history = write_history(backfill_scenario(hosts, hours), out, interval=interval)
        generate = time.perf_counter() - began
        began = time.perf_counter()
        subprocess.run(
            ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(out), str(blocks)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        promtool = time.perf_counter() - began
        stats = history.stats
        return BackfillResult(
            hosts=hosts,
            scrapes=history.scrapes,
            samples=stats.samples,
            series=stats.series,
            bytes=stats.bytes,
            generate_s=generate,
            promtool_s=promtool,
            blocks_bytes=directory_bytes(blocks),
        )
    finally:
        out.unlink(missing_ok=True)
        shutil.rmtree(blocks, ignore_errors=True)


def run_backfill(args: argparse.Namespace) -> tuple[list[BackfillResult], list[str]]:
    if shutil.which("promtool") is None:
        return [], ["promtool is not installed (Debian package `prometheus`): no backfill cases"]
    results: list[BackfillResult] = []
    notes: list[str] = []
    directory = Path(tempfile.mkdtemp(prefix="les-backfill-"))
    scrapes = scrapes_in(args.hours, args.interval)
    try:
        for hosts in args.backfill_hosts:
            skip = backfill_skip(hosts, scrapes, results, directory, args.max_minutes)
            if skip:
                notes.append(f"{hosts} hosts: skipped: {skip}")
                print(notes[-1], file=sys.stderr, flush=True)
                continue
            results.append(backfill_case(hosts, args.hours, args.interval, directory))
            print(f"backfill {hosts} hosts: done", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return results, notes


def backfill_skip(hosts: int, scrapes: int, done: list[BackfillResult], directory: Path, max_minutes: float) -> str:
    """Why the case should not run (disk, or time), or ''."""
    per_host_scrape = done[0].samples_per_host_scrape if done else 20.0
    per_sample = done[0].bytes_per_sample if done else DEFAULT_BYTES_PER_SAMPLE
    samples = hosts * scrapes * per_host_scrape
    size = samples * per_sample
    free = shutil.disk_usage(directory).free
    if size > free / 2:
        return f"its file (~{size / 1e9:.1f} GB estimated) exceeds half the free space ({free / 1e9:.1f} GB)"
    if max_minutes and done:
        first = done[0]
        minutes = (first.generate_s + first.promtool_s) * samples / first.samples / 60
        if minutes > max_minutes:
            return f"it would take ~{minutes:.0f} min to generate and load (extrapolated from {first.hosts} hosts) > --max-minutes"
    return ""


def backfill_table(results: list[BackfillResult], hours: float, interval: float) -> str:
    rows = [
        f"| hosts | scrapes/host ({hours:g} h @ {interval:g} s) | samples | series | file MB | generation s "
        "| samples/s | promtool s | blocks MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rows.append(
            f"| {r.hosts} | {r.scrapes} | {r.samples:,} | {r.series:,} | {r.bytes / 1e6:.1f} | {r.generate_s:.1f} "
            f"| {r.samples / r.generate_s:,.0f} | {r.promtool_s:.1f} | {r.blocks_bytes / 1e6:.1f} |"
        )
    return "\n".join(rows)


def fifteen_seconds_table(results: list[BackfillResult], hosts: list[int], hours: float) -> str:
    """What Prometheus' real 15 s interval would cost, from the measured rates."""
    first = results[0] if results else None
    per_host_scrape = first.samples_per_host_scrape if first else 20.0
    per_sample = first.bytes_per_sample if first else DEFAULT_BYTES_PER_SAMPLE
    rate = first.samples / first.generate_s if first else math.nan
    scrapes = scrapes_in(hours, SCRAPE_INTERVAL)
    rows = [
        f"At Prometheus' 15 s interval ({scrapes} scrapes per host in {hours:g} h, "
        f"{per_host_scrape:.1f} samples per host and scrape, {per_sample:.0f} bytes per sample, "
        f"generation at {rate:,.0f} samples/s{' as measured' if first else ''}):",
        "",
        "| hosts | samples | file GB | generation (est.) |",
        "|---:|---:|---:|---:|",
    ]
    for count in hosts:
        samples = count * scrapes * per_host_scrape
        seconds = samples / rate
        rows.append(
            f"| {count} | {count} × {scrapes} × {per_host_scrape:.1f} = {samples:,.0f} "
            f"| {samples * per_sample / 1e9:,.1f} | {duration(seconds)} |"
        )
    return "\n".join(rows)


def duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:,.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


# --- main


def header() -> str:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.partition(":")[2].strip()
            break
    return (
        f"Machine: {os.cpu_count()} CPUs ({model or platform.machine()}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, open files limit {resource.getrlimit(resource.RLIMIT_NOFILE)[0]} "
        "(the simulator holds 3 per live host once scraped)\n"
        f"Command: {shlex.join([Path(sys.executable).name, *sys.argv])}"
    )


def counts(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def interval_seconds(text: str) -> float:
    from local_exporter.common.durations import parse_duration

    value = parse_duration(text)
    if value <= 0:
        raise ValueError("must be positive")
    return value


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "load":
        bridges, warmup, seconds = sys.argv[2:5]
        run_load(bridges, float(warmup), float(seconds))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--live-hosts", type=counts, default=[250, 500, 1000, 2000], help="default 250,500,1000,2000")
    parser.add_argument("--seconds", type=float, default=30, help="measured seconds per live case (default 30)")
    parser.add_argument("--backfill-hosts", type=counts, default=[10000, 100000], help="default 10000,100000")
    parser.add_argument("--hours", type=float, default=24, help="backfilled scenario length (default 24)")
    parser.add_argument("--interval", type=interval_seconds, default=900.0, help="backfill interval (default 15m)")
    parser.add_argument("--max-minutes", type=float, default=0, help="skip backfill cases extrapolated longer (0: no)")
    parser.add_argument("--skip-live", action="store_true", help="no live cases")
    parser.add_argument("--skip-backfill", action="store_true", help="no backfill cases")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    print(header())
    if not args.skip_live:
        results = []
        for hosts in args.live_hosts:
            results.append(live_case(hosts, args.seconds))
            print(f"live {hosts} hosts: done", file=sys.stderr, flush=True)
        print(f"\n## Live: one simulator process, every bridge scraped every {SCRAPE_INTERVAL:g} s\n")
        print(live_table(results))
        print()
        print(live_verdict(results))
    if not args.skip_backfill:
        backfilled, notes = run_backfill(args)
        print(f"\n## Backfill: {args.hours:g} h of history at {args.interval:g} s, then promtool\n")
        print(backfill_table(backfilled, args.hours, args.interval))
        for note in notes:
            print(f"\n{note}")
        print()
        print(fifteen_seconds_table(backfilled, args.backfill_hosts, args.hours))


if __name__ == "__main__":
    main()
