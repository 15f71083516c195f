#!/usr/bin/env python3
"""The bridge against a featureless relay, on the same sources, in one run.

    python3 bench/bridge_vs_relay.py [--duration 4] [--warmup 1] [--repeat 3] [--concurrency 16]

Servers, each in its own process (so RSS and CPU time are per server), both on uvloop:
  bridge  `python -m local_exporter serve -c CONFIG`, exactly what production runs;
  relay   the featureless relay of bench/baseline.py: reads the file, or connects to the Unix
          socket and reads to EOF, with the bridge's own read primitives, and returns the
          bytes: no deadline, no checks, no metrics, no logs.
Sources: a file, and a Zincati-protocol Unix socket server in its own process (bench/baseline.py,
shared by both servers), each with a 2 KB and a 50 KB exposition. The load generator is another process: wrk
if installed (one thread), else an aiohttp client. It sends Prometheus' scrape-timeout header
and no Accept-Encoding, so nobody compresses (`--accept-encoding gzip` sends what Prometheus
sends: then the bridge gzips and the relay does not, which prices compression).

With two or more CPUs the server under test is pinned alone to the first CPU and the load
generator and the socket server share the others, so the server is the bottleneck. Each
measurement is a warm-up then a fixed duration; cases and servers alternate, `--repeat` times,
and the table shows the median run. Besides requests/s (sensitive to a noisy neighbour on a
shared machine) it shows the server's CPU time per request (utime + stime from /proc over the
measured interval / requests), which is much steadier and is what the ratio target is about.

The script's own subcommands (`relay`, `load`) are how it starts its processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baseline import SCRAPE_TIMEOUT_HEADER, exposition, relay_app
from procs import ROOT, child_env, cpu_seconds, free_port, http_ok, rss_mb, stop, unix_ok, wait_until, wrk_result

SIZES = {"2k": 2 * 1024, "50k": 50 * 1024}
KINDS = ("file", "uds")
CASES = tuple(f"{kind}-{size}" for kind in KINDS for size in SIZES)
SERVERS = ("relay", "bridge")


# --- the featureless relay (subcommand `relay`)


def run_relay(port: int, routes_json: str) -> None:
    import uvloop
    from aiohttp import web

    routes = {name: (kind, path) for name, (kind, path) in json.loads(routes_json).items()}
    web.run_app(
        relay_app(routes), host="127.0.0.1", port=port, print=None, access_log=None, loop=uvloop.new_event_loop()
    )


# --- the aiohttp load generator (subcommand `load URL CONCURRENCY SECONDS`), when wrk is absent


def run_load(url: str, concurrency: int, seconds: float, accept_encoding: str) -> None:
    import aiohttp
    import uvloop

    async def main() -> dict[str, Any]:
        headers = {SCRAPE_TIMEOUT_HEADER[0]: SCRAPE_TIMEOUT_HEADER[1]}
        if accept_encoding:
            headers["Accept-Encoding"] = accept_encoding
        latencies: list[float] = []
        errors = 0
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(
            connector=connector, headers=headers, auto_decompress=False, skip_auto_headers=["Accept-Encoding"]
        ) as session:
            started = time.perf_counter()
            until = started + seconds

            async def worker() -> None:
                nonlocal errors
                while (begun := time.perf_counter()) < until:
                    async with session.get(url) as response:
                        await response.read()
                        errors += response.status != 200
                    latencies.append(time.perf_counter() - begun)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
        latencies.sort()
        return {
            "requests": len(latencies),
            "requests_per_second": len(latencies) / elapsed,
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "errors": errors,
        }

    print(json.dumps(uvloop.run(main())))


# --- measuring


@dataclass
class Run:
    requests: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float


@dataclass
class Result:
    case: str
    server: str
    runs: list[Run] = field(default_factory=list)
    rss_mb: float = float("nan")

    def median(self, attribute: str) -> float:
        return statistics.median(getattr(run, attribute) for run in self.runs)


class Load:
    """Runs the load generator against one URL for a number of seconds."""

    def __init__(self, kind: str, concurrency: int, cpus: set[int] | None, accept_encoding: str) -> None:
        self.kind = kind
        self.concurrency = concurrency
        self.accept_encoding = accept_encoding
        self.pin = ["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus and shutil.which("taskset") else []

    def __call__(self, url: str, seconds: int) -> dict[str, Any]:
        if self.kind == "wrk":
            header = f"{SCRAPE_TIMEOUT_HEADER[0]}: {SCRAPE_TIMEOUT_HEADER[1]}"
            command = ["wrk", "-t1", f"-c{self.concurrency}", "-H", header, "--latency", f"-d{seconds}s", url]
            if self.accept_encoding:
                command[-2:-2] = ["-H", f"Accept-Encoding: {self.accept_encoding}"]
            return wrk_result(subprocess.run([*self.pin, *command], check=True, capture_output=True, text=True).stdout)
        command = [sys.executable, __file__, "load", url, str(self.concurrency), str(seconds), self.accept_encoding]
        out = subprocess.run([*self.pin, *command], check=True, capture_output=True, text=True, env=child_env()).stdout
        result: dict[str, Any] = json.loads(out)
        return result


# --- processes


def start(args: list[str], log: Path, cpus: set[int] | None) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=child_env()
        )
    if cpus:
        os.sched_setaffinity(process.pid, cpus)
    return process


def profile(pid: int, seconds: int, output: Path, native: bool) -> subprocess.Popen[bytes] | None:
    """py-spy on `pid` for `seconds`, as collapsed stacks (`--format raw`) in `output`.

    `native` adds C frames, but py-spy then stops the process for every sample: expect the
    measured numbers of that run to drop.
    """
    spy = shutil.which("py-spy")
    if spy is None:
        print("py-spy is not installed: no profile", file=sys.stderr)
        return None
    command = [spy, "record", "--pid", str(pid), "--rate", "250", "--format", "raw"]
    command += ["--native"] if native else ["--nonblocking"]
    command += ["--duration", str(seconds), "--output", str(output)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --- the run


def run(args: argparse.Namespace) -> list[Result]:
    loadgen = args.loadgen if args.loadgen != "auto" else ("wrk" if shutil.which("wrk") else "aiohttp")
    cpus = os.sched_getaffinity(0)
    server_cpus = {min(cpus)} if args.pin and len(cpus) >= 2 else None
    other_cpus = cpus - server_cpus if server_cpus else None
    load = Load(loadgen, args.concurrency, other_cpus, args.accept_encoding)
    print(
        f"loadgen={loadgen} concurrency={args.concurrency} warmup={args.warmup}s duration={args.duration}s "
        f"repeat={args.repeat} accept-encoding={args.accept_encoding or '-'} cpus={len(cpus)} "
        f"pinning={f'server on CPU {min(cpus)}, the rest elsewhere' if server_cpus else 'off'}",
        flush=True,
    )
    directory = Path(tempfile.mkdtemp(prefix="le-bench-", dir="/tmp"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        routes: dict[str, tuple[str, str]] = {}
        payloads: dict[str, bytes] = {}
        pairs = []
        for size_name, size in SIZES.items():
            payload = directory / f"{size_name}.prom"
            payload.write_bytes(exposition(size))
            sock = directory / f"{size_name}.sock"
            routes[f"file-{size_name}"] = ("file", str(payload))
            routes[f"uds-{size_name}"] = ("uds", str(sock))
            payloads[f"file-{size_name}"] = payloads[f"uds-{size_name}"] = payload.read_bytes()
            pairs.append(f"{sock}={payload}")
        log = directory / "sockets.log"
        sockets = start([sys.executable, str(Path(__file__).with_name("baseline.py")), *pairs], log, other_cpus)
        processes.append(sockets)
        for kind, path in routes.values():
            if kind == "uds":
                wait_until("socket server", lambda p=Path(path): unix_ok(p), sockets, log)

        servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        for server in args.servers:
            port = free_port()
            log = directory / f"{server}.log"
            if server == "bridge":
                extra = f", max_bytes = {args.max_bytes}" if args.max_bytes else ""
                lines = ["[service]", 'address = "127.0.0.1"', f"port = {port}", "", "[bridge.selectors]"]
                lines += [f'{name} = {{ kind = "{k}", path = "{p}"{extra} }}' for name, (k, p) in routes.items()]
                config = directory / "config.toml"
                config.write_text("\n".join(lines) + "\n")
                command = [sys.executable, "-m", "local_exporter", "serve", "-c", str(config)]
            else:
                command = [sys.executable, __file__, "relay", str(port), json.dumps(routes)]
            process = start(command, log, server_cpus)
            processes.append(process)
            wait_until(server, lambda port=port: http_ok(f"http://127.0.0.1:{port}/-/ready"), process, log)
            servers[server] = (process, port)

        results = {(case, server): Result(case, server) for case in args.cases for server in servers}
        step = 0
        for repeat in range(args.repeat):
            for case in args.cases:
                # Alternate which server goes first, so a drift in the machine hits both alike.
                step += 1
                for server in list(servers) if step % 2 else list(reversed(servers)):
                    process, port = servers[server]
                    url = f"http://127.0.0.1:{port}/bridge?selector={case}"
                    with urllib.request.urlopen(url) as response:
                        if response.status != 200 or response.read() != payloads[case]:
                            sys.exit(f"{server} {case}: the answer is not the source's bytes")
                    if args.warmup:
                        load(url, args.warmup)
                    profiler = None
                    if args.profile_dir:
                        output = Path(args.profile_dir).resolve() / f"{server}-{case}-{repeat}.txt"
                        output.parent.mkdir(parents=True, exist_ok=True)
                        profiler = profile(process.pid, args.duration, output, args.profile_native)
                    cpu_before = cpu_seconds(process.pid)
                    measured = load(url, args.duration)
                    cpu = cpu_seconds(process.pid) - cpu_before
                    if profiler is not None:
                        profiler.wait()
                    if measured["errors"] or measured.get("socket_errors"):
                        print(f"{server} {case}: errors: {measured}", file=sys.stderr)
                    result = results[case, server]
                    result.runs.append(
                        Run(
                            measured["requests"],
                            measured["requests_per_second"],
                            measured["p50_ms"],
                            measured["p99_ms"],
                            1e6 * cpu / max(1, measured["requests"]),
                        )
                    )
                    result.rss_mb = rss_mb(process.pid)
                    run_ = result.runs[-1]
                    print(
                        f"  {repeat + 1}/{args.repeat} {case:<9} {server:<6} {run_.requests_per_second:8.0f} req/s "
                        f"{run_.cpu_us_per_request:6.1f} CPU us/req",
                        flush=True,
                    )
        return list(results.values())
    finally:
        for process in reversed(processes):
            stop(process)
        shutil.rmtree(directory, ignore_errors=True)


def table(results: list[Result]) -> str:
    rows = [
        "| case | server | requests/s | p50 ms | p99 ms | CPU µs/req | RSS MB | bridge/relay req/s | bridge/relay CPU/req |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_key = {(r.case, r.server): r for r in results}
    throughput, cost = [], []
    for r in results:
        relay = by_key.get((r.case, "relay"))
        ratios = ["", ""]
        if r.server == "bridge" and relay is not None:
            throughput.append(r.median("requests_per_second") / relay.median("requests_per_second"))
            cost.append(r.median("cpu_us_per_request") / relay.median("cpu_us_per_request"))
            ratios = [f"{throughput[-1]:.2f}", f"{cost[-1]:.2f}"]
        rows.append(
            f"| {r.case} | {r.server} | {r.median('requests_per_second'):.0f} | {r.median('p50_ms'):.2f} "
            f"| {r.median('p99_ms'):.2f} | {r.median('cpu_us_per_request'):.1f} | {r.rss_mb:.1f} "
            f"| {ratios[0]} | {ratios[1]} |"
        )
    if throughput:
        rows.append(
            f"\ngeometric means: bridge/relay requests/s {statistics.geometric_mean(throughput):.2f}, "
            f"bridge/relay CPU per request {statistics.geometric_mean(cost):.2f}"
        )
    return "\n".join(rows)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("relay", "load"):
        command, rest = sys.argv[1], sys.argv[2:]
        if command == "relay":
            run_relay(int(rest[0]), rest[1])
        else:
            run_load(rest[0], int(rest[1]), float(rest[2]), rest[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=4, help="measured seconds per run (default 4)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up seconds before each run (default 1)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case and server; the median shows (3)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent connections (default 16)")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "aiohttp"), default="auto", help="default: wrk if found")
    parser.add_argument("--cases", type=lambda s: s.split(","), default=list(CASES), help=f"default {','.join(CASES)}")
    parser.add_argument("--servers", type=lambda s: s.split(","), default=list(SERVERS), help="default relay,bridge")
    parser.add_argument(
        "--accept-encoding",
        default="",
        help="send this Accept-Encoding (Prometheus sends gzip; the relay never compresses); default none",
    )
    parser.add_argument("--max-bytes", type=int, help="max_bytes of the bridge's selectors (default: its default)")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin the server to its own CPU")
    parser.add_argument("--profile-dir", help="py-spy each server during each measured run (raw stacks) into DIR")
    parser.add_argument("--profile-native", action="store_true", help="with --profile-dir: C frames too (slower)")
    args = parser.parse_args()
    for case in args.cases:
        if case not in CASES:
            parser.error(f"unknown case {case!r}: choose from {', '.join(CASES)}")
    for server in args.servers:
        if server not in SERVERS:
            parser.error(f"unknown server {server!r}: choose from {', '.join(SERVERS)}")
    if args.duration < 1 or args.repeat < 1 or args.warmup < 0:
        parser.error("--duration and --repeat must be at least 1, --warmup at least 0")
    print(table(run(args)))


if __name__ == "__main__":
    main()
