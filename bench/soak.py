#!/usr/bin/env python3
"""A million scrapes through one bridge, a tenth of them of faulty sources; then coalescing on/off.

    python3 bench/soak.py [--scrapes 1000000] [--round 20] [--concurrency 16] [--coalesce-seconds 5]

Part 1, soak. The bridge (`python -m local_exporter serve`, as production runs it) has 50
selectors: 45 healthy (file and Zincati-protocol Unix socket, 2 KB each) and 5 faulty, one per
fault: a missing file, a refused socket, a garbage file, a file over its max_bytes, and a socket
that never answers (timeout 50 ms). wrk (one thread, `--concurrency` connections) scrapes them in
turn, in rounds of `--round` seconds, until `--scrapes`. The bridge's open file descriptors and
RSS are read after a warm-up round and after every round: the target is flat. At the end the
bridge's own counters, by outcome, are set against what wrk sent: nothing lost.

Part 2, coalescing. `--concurrency` scrapers of one selector whose socket answers a 50 KB
exposition after a delay (0 and 5 ms: a daemon rendering its metrics), with `coalesce` on and
off (max_concurrency = concurrency, so nothing is refused): requests/s, p99, the bridge's CPU per
scrape, and source reads per scrape (1 - coalesced/requests). The baseline is coalescing off.

The script's own subcommand `daemon SOCKET PAYLOAD DELAY_MS` serves the delayed sockets
(DELAY_MS < 0: accept and never answer).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from baseline import SCRAPE_TIMEOUT_HEADER, exposition
from procs import ROOT, child_env, cpu_seconds, free_port, http_ok, rss_mb, stop, unix_ok, wait_until, wrk_result

HEALTHY, FAULTY = 45, 5
TIMEOUT_SELECTOR_SECONDS = 0.05


# --- the delayed (or silent) socket daemon (subcommand `daemon`)


def run_daemon(path: str, payload: str, delay_ms: float) -> None:
    import uvloop

    body = Path(payload).read_bytes()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if delay_ms < 0:
                await reader.read()  # until the bridge gives up and closes
                return
            await asyncio.sleep(delay_ms / 1000)
            writer.write(body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def main() -> None:
        stop_event = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop_event.set)
        server = await asyncio.start_unix_server(serve, path=path, backlog=1024)
        await stop_event.wait()
        server.close()

    uvloop.run(main())


# --- processes


class Processes:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.children: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, Path] = {}

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        with (self.directory / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=child_env())
        self.children.append(process)
        self.logs[process.pid] = self.directory / f"{name}.log"
        return process

    def log(self, process: subprocess.Popen[bytes]) -> Path:
        return self.logs[process.pid]

    def stop_all(self) -> None:
        for process in reversed(self.children):
            stop(process)


def open_fds(pid: int) -> int:
    """After a round: wrk has just closed its connections, and the bridge is closing its ends
    (and cancelling the scrapes wrk cut short). Counted once that has settled."""
    time.sleep(1.0)
    return len(os.listdir(f"/proc/{pid}/fd"))


def scrape_counts(url: str) -> dict[str, float]:
    """The bridge's requests_total summed by outcome, and its rejections."""
    from prometheus_client.parser import text_string_to_metric_families

    with __import__("urllib.request").request.urlopen(f"{url}/metrics") as response:
        text = response.read().decode()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "local_exporter_bridge_requests_total":
                counts[sample.labels["outcome"]] = counts.get(sample.labels["outcome"], 0) + sample.value
            elif sample.name == "local_exporter_bridge_coalesced_requests_total":
                counts["coalesced"] = counts.get("coalesced", 0) + sample.value
    return counts


def wrk(url_base: str, paths: list[str], concurrency: int, seconds: float, directory: Path) -> dict[str, float]:
    """wrk scraping `paths` in turn (a Lua script), one thread; its counts and latencies."""
    script = directory / "paths.lua"
    entries = ", ".join(f'"{path}"' for path in paths)
    script.write_text(
        f"local paths = {{{entries}}}\nlocal i = 0\n"
        "request = function()\n  i = i + 1\n"
        f'  return wrk.format("GET", paths[(i % #paths) + 1], {{["{SCRAPE_TIMEOUT_HEADER[0]}"] = "{SCRAPE_TIMEOUT_HEADER[1]}"}})\n'
        "end\n"
    )
    command = ["wrk", "-t1", f"-c{concurrency}", "--latency", f"-d{seconds:g}s", "-s", str(script), url_base]
    return wrk_result(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


# --- part 1: the soak


def soak_config(directory: Path, port: int, sockets: list[Path]) -> tuple[str, list[str]]:
    good = exposition(2 * 1024)
    (directory / "good.prom").write_bytes(good)
    (directory / "garbage.prom").write_bytes(bytes(range(256)) * 8)
    refused = directory / "refused.sock"
    with socket.socket(socket.AF_UNIX) as bound:
        bound.bind(str(refused))  # bound, never listening: connect is refused
    lines = [f'[service]\naddress = "127.0.0.1"\nport = {port}\n\n[bridge.selectors]']
    for i in range(HEALTHY):
        if i % 2:
            lines.append(f'h{i:02d} = {{ kind = "uds", path = "{sockets[i // 2]}" }}')
        else:
            lines.append(f'h{i:02d} = {{ kind = "file", path = "{directory / "good.prom"}" }}')
    lines += [
        f'f_missing = {{ kind = "file", path = "{directory / "missing.prom"}" }}',
        f'f_refused = {{ kind = "uds", path = "{refused}" }}',
        f'f_garbage = {{ kind = "file", path = "{directory / "garbage.prom"}" }}',
        f'f_too_large = {{ kind = "file", path = "{directory / "good.prom"}", max_bytes = 1000 }}',
        f'f_silent = {{ kind = "uds", path = "{directory / "silent.sock"}", timeout = {TIMEOUT_SELECTOR_SECONDS} }}',
    ]
    names = [line.split(" = ")[0] for line in lines[1:]]
    return "\n".join(lines) + "\n", [f"/bridge?selector={name}" for name in names]


def soak(args: argparse.Namespace, directory: Path, processes: Processes) -> None:
    (directory / "payload.prom").write_bytes(exposition(2 * 1024))
    sockets = [directory / f"s{i}.sock" for i in range(HEALTHY // 2)]
    pairs = [f"{path}={directory / 'payload.prom'}" for path in sockets]
    sources = processes.start("sources", [sys.executable, str(ROOT / "bench" / "baseline.py"), *pairs])
    silent = processes.start(
        "silent",
        [sys.executable, __file__, "daemon", str(directory / "silent.sock"), str(directory / "payload.prom"), "-1"],
    )
    wait_until("the socket sources", lambda: all(unix_ok(s) for s in sockets), sources, processes.log(sources))
    wait_until("the silent socket", lambda: unix_ok(directory / "silent.sock"), silent, processes.log(silent))
    port = free_port()
    config, paths = soak_config(directory, port, sockets)
    (directory / "soak.toml").write_text(config)
    bridge = processes.start(
        "bridge", [sys.executable, "-m", "local_exporter", "serve", "-c", str(directory / "soak.toml")]
    )
    url = f"http://127.0.0.1:{port}"
    wait_until("the bridge", lambda: http_ok(f"{url}/-/ready"), bridge, processes.log(bridge))

    warmup = wrk(url, paths, args.concurrency, 5, directory)
    sent = warmup["requests"]
    print(f"warm-up: {sent:,} scrapes in 5 s\n")
    print("| after | scrapes | requests/s | p50 ms | p99 ms | non-200 % | open fds | RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    before = (open_fds(bridge.pid), rss_mb(bridge.pid))
    print(
        f"| warm-up | {sent:,} | {warmup['requests_per_second']:.0f} | | | | {before[0]} | {before[1]:.1f} |",
        flush=True,
    )
    cpu_started, rounds = cpu_seconds(bridge.pid), 0
    while rounds == 0 or sent < args.scrapes:
        result = wrk(url, paths, args.concurrency, args.round, directory)
        sent += result["requests"]
        rounds += 1
        share = 100 * result["errors"] / max(result["requests"], 1)
        print(
            f"| round {rounds} | {sent:,} | {result['requests_per_second']:.0f} | {result['p50_ms']:.2f} | "
            f"{result['p99_ms']:.2f} | {share:.1f} | {open_fds(bridge.pid)} | {rss_mb(bridge.pid):.1f} |",
            flush=True,
        )
    elapsed, cpu = rounds * args.round, cpu_seconds(bridge.pid) - cpu_started
    after = (open_fds(bridge.pid), rss_mb(bridge.pid))
    counts = scrape_counts(url)
    counted = sum(value for outcome, value in counts.items() if outcome != "coalesced")
    print(f"\nopen fds: {before[0]} before, {after[0]} after; RSS: {before[1]:.1f} MB before, {after[1]:.1f} MB after")
    print(
        f"{sent - warmup['requests']:,} scrapes in {elapsed:.0f} s of load "
        f"({(sent - warmup['requests']) / elapsed:.0f}/s); bridge CPU {1e6 * cpu / (sent - warmup['requests']):.0f} µs per scrape"
    )
    print(
        f"wrk completed {sent:,} scrapes; the bridge counted {counted:,.0f} (the difference: scrapes cut at a round's end)"
    )
    print(
        "by outcome: "
        + ", ".join(
            f"{outcome} {value:,.0f} ({100 * value / counted:.1f} %)"
            for outcome, value in sorted(counts.items())
            if value and outcome != "coalesced"
        )
    )
    stop(bridge)


# --- part 2: coalescing on and off


def coalescing(args: argparse.Namespace, directory: Path, processes: Processes) -> None:
    (directory / "big.prom").write_bytes(exposition(50 * 1024))
    print(
        f"\n{args.concurrency} concurrent scrapers of one selector, a 50 KB exposition; {args.coalesce_seconds:g} s per run, {args.repeat} runs, median\n"
    )
    print("| source delay ms | coalesce | requests/s | p99 ms | bridge CPU µs/scrape | source reads per scrape |")
    print("|---:|---|---:|---:|---:|---:|")
    for delay in (0, 5):
        path = directory / f"delay{delay}.sock"
        daemon = processes.start(
            f"delay{delay}", [sys.executable, __file__, "daemon", str(path), str(directory / "big.prom"), str(delay)]
        )
        wait_until("the delayed socket", lambda path=path: unix_ok(path), daemon, processes.log(daemon))
        port = free_port()
        (directory / "coalesce.toml").write_text(
            f'[service]\naddress = "127.0.0.1"\nport = {port}\nmax_in_flight = 1000\n\n[bridge.selectors]\n'
            f'on = {{ kind = "uds", path = "{path}", max_concurrency = {args.concurrency} }}\n'
            f'off = {{ kind = "uds", path = "{path}", coalesce = false, max_concurrency = {args.concurrency} }}\n'
        )
        bridge = processes.start(
            "bridge-coalesce", [sys.executable, "-m", "local_exporter", "serve", "-c", str(directory / "coalesce.toml")]
        )
        url = f"http://127.0.0.1:{port}"
        wait_until("the bridge", lambda url=url: http_ok(f"{url}/-/ready"), bridge, processes.log(bridge))
        results: dict[str, list[tuple[float, float, float, float]]] = {"off": [], "on": []}
        for _ in range(args.repeat):
            for mode in ("off", "on"):
                counts_before, cpu_before = scrape_counts(url), cpu_seconds(bridge.pid)
                result = wrk(url, [f"/bridge?selector={mode}"], args.concurrency, args.coalesce_seconds, directory)
                cpu, counts_after = cpu_seconds(bridge.pid) - cpu_before, scrape_counts(url)
                requests = sum(v for k, v in counts_after.items() if k != "coalesced") - sum(
                    v for k, v in counts_before.items() if k != "coalesced"
                )
                coalesced = counts_after.get("coalesced", 0) - counts_before.get("coalesced", 0)
                results[mode].append(
                    (
                        result["requests_per_second"],
                        result["p99_ms"],
                        1e6 * cpu / max(requests, 1),
                        1 - coalesced / max(requests, 1),
                    )
                )
        for mode in ("off", "on"):
            runs = sorted(results[mode])
            rps, p99, cpu_us, reads = runs[len(runs) // 2]
            print(f"| {delay} | {mode} | {rps:.0f} | {p99:.2f} | {cpu_us:.0f} | {reads:.2f} |", flush=True)
        stop(bridge)
        stop(daemon)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "daemon":
        run_daemon(sys.argv[2], sys.argv[3], float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scrapes", type=int, default=1_000_000)
    parser.add_argument("--round", type=float, default=20, help="seconds per wrk round (default 20)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--coalesce-seconds", type=float, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--part", choices=("all", "soak", "coalescing"), default="all")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("needs wrk (apt install wrk)")
    print(f"Machine: {len(os.sched_getaffinity(0))} CPUs, Python {platform.python_version()}")
    print(f"Command: python3 bench/soak.py {' '.join(sys.argv[1:])}\n", flush=True)
    with tempfile.TemporaryDirectory(prefix="le-soak-", dir="/tmp") as name:
        processes = Processes(Path(name))
        try:
            if args.part in ("all", "soak"):
                soak(args, Path(name), processes)
            if args.part in ("all", "coalescing"):
                coalescing(args, Path(name), processes)
        finally:
            processes.stop_all()


if __name__ == "__main__":
    main()
