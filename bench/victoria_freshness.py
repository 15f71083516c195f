#!/usr/bin/env python3
"""How late a host's new phase shows in the rule chain: one Prometheus against the scale-out topology.

    python3 bench/victoria_freshness.py [--rounds 3] [--interval 5] [--latency-offset 30s]

A host's phase is a new series each time it changes (`bench_phase{phase="pN"} 1`), as
`os_update_phase` is. A tiny target serves it; a three-rule chain in one group counts it, as
the bundle's phase counts do (count, then two sums of the rule before). Beside it a count
whose series exist and whose value changes (`bench_hosts`), through a chain of three sums. Two setups read the
same target at the same time:
- the baseline: one Prometheus scraping it every second and evaluating the chain;
- the scale-out topology as the bundle generates it (bundle/scale_out.py): a Prometheus shard
  in agent mode writing into VictoriaMetrics, and vmalert evaluating the chain there, with the
  flags the compose stack runs (remote-write flushes every 5 s; VictoriaMetrics holds back the
  newest `--latency-offset` of samples: 30 s by default, 0 in the demo and the tests).
Both evaluate every `--interval` seconds. Each round changes the phase at a random moment of
the evaluation cycle and prints, for the raw
series and each level of the chain, the seconds until each setup first answers for the new
phase. Nothing is timed by guesswork: each reading is a query polled every 0.2 s.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from procs import ROOT, free_port, start_server, stop

sys.path.insert(0, str(ROOT))

from victoria import start_agent, start_victoria_metrics

from local_exporter.bundle import scale_out
from local_exporter.bundle.config import BundleConfig

CHAIN = ("bench:phase:count", "bench:phase:sum1", "bench:phase:sum2")
VALUE_CHAIN = ("bench:hosts:sum", "bench:hosts:sum1", "bench:hosts:sum2")
#: What each round waits for, per setup: the new phase's series at each level (new series), and
#: the new count at each level (series that exist: only their value changes).
LEVELS = ("bench_phase", *CHAIN, "bench_hosts", *VALUE_CHAIN)
POLL = 0.2
ROUND_TIMEOUT = 180.0


class Phase:
    """The target: one host whose phase label changes when told."""

    def __init__(self) -> None:
        self.round = 0

    @property
    def name(self) -> str:
        return f"p{self.round}"

    def body(self) -> bytes:
        return (
            f'# TYPE bench_phase gauge\nbench_phase{{phase="{self.name}"}} 1\n'
            f"# TYPE bench_hosts gauge\nbench_hosts {100 + self.round}\n"
        ).encode()

    def query(self, level: str) -> str:
        """The query that answers once `level` shows this round's change."""
        if level in ("bench_phase", *CHAIN):
            return f'{level}{{phase="{self.name}"}}'
        return f"{level} == {100 + self.round}"


def serve(phase: Phase) -> tuple[ThreadingHTTPServer, int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = phase.body()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def rules(path: Path, interval: int) -> None:
    chain = [
        {"record": CHAIN[0], "expr": "count by (phase) (bench_phase)"},
        {"record": CHAIN[1], "expr": f"sum by (phase) ({CHAIN[0]})"},
        {"record": CHAIN[2], "expr": f"sum by (phase) ({CHAIN[1]})"},
        {"record": VALUE_CHAIN[0], "expr": "sum(bench_hosts)"},
        {"record": VALUE_CHAIN[1], "expr": f"sum({VALUE_CHAIN[0]})"},
        {"record": VALUE_CHAIN[2], "expr": f"sum({VALUE_CHAIN[1]})"},
    ]
    path.write_text(json.dumps({"groups": [{"name": "chain", "interval": f"{interval}s", "rules": chain}]}))


def answers(url: str, query: str) -> bool:
    full = f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    try:
        with urllib.request.urlopen(full, timeout=5) as response:
            return bool(json.load(response)["data"]["result"])
    except (OSError, ValueError, KeyError):
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--interval", type=int, default=5, help="evaluation interval of both, seconds")
    parser.add_argument("--latency-offset", default="30s", help="VictoriaMetrics' -search.latencyOffset")
    args = parser.parse_args()
    for binary in ("prometheus", "victoria-metrics", "vmalert"):
        if shutil.which(binary) is None:
            sys.exit(f"needs {binary}: Debian's prometheus and victoria-metrics packages (scripts/bootstrap)")
    print(f"Command: python bench/victoria_freshness.py {' '.join(sys.argv[1:])}\n", flush=True)
    phase = Phase()
    target, target_port = serve(phase)
    config = BundleConfig(scrape_interval=f"{args.interval}s")
    job = {"job_name": "bench", "scrape_interval": "1s", "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}
    started: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="le-fresh-") as tmp:
        directory = Path(tmp)
        rule_file = directory / "chain.yml"
        rules(rule_file, args.interval)
        try:
            store = start_victoria_metrics(directory / "vm", (f"-search.latencyOffset={args.latency_offset}",))
            started.append(store.process)
            shard = scale_out.shard_config(
                config, [job], shard=0, shards=1, cluster="bench", write_url=f"{store.url}/api/v1/write"
            )
            started.append(start_agent(directory / "shard", "shard", shard).process)
            vmalert_port = free_port()
            vmalert_flags = scale_out.vmalert_flags(
                config,
                rules=[str(rule_file)],
                store=store.url,
                notifier="http://127.0.0.1:1",
                listen=f"127.0.0.1:{vmalert_port}",
                cluster="bench",
            )
            vmalert_url = f"http://127.0.0.1:{vmalert_port}"
            started.append(
                start_server("vmalert", ["vmalert", *vmalert_flags], directory, vmalert_url, "/health").process
            )
            single_config = {
                "global": {"evaluation_interval": f"{args.interval}s", "external_labels": {"cluster": "bench"}},
                "rule_files": [str(rule_file)],
                "scrape_configs": [job],
            }
            (directory / "single.yml").write_text(json.dumps(single_config))
            single_port = free_port()
            single = f"http://127.0.0.1:{single_port}"
            single_args = [
                "prometheus",
                f"--config.file={directory / 'single.yml'}",
                f"--storage.tsdb.path={directory / 'single'}",
                f"--web.listen-address=127.0.0.1:{single_port}",
            ]
            started.append(start_server("single", single_args, directory, single, "/-/ready").process)
            print(
                f"Evaluation every {args.interval} s, VictoriaMetrics -search.latencyOffset={args.latency_offset}, "
                f"vmalert flags as bundle/scale_out.py builds them; seconds from the change until each answers:\n"
            )
            results: dict[tuple[str, str], list[float]] = {}
            for round_number in range(1, args.rounds + 1):
                # Let the previous round settle into both, then change the phase at a random
                # moment of the evaluation cycle.
                time.sleep(args.interval * 2 + random.uniform(0, args.interval))
                phase.round = round_number
                changed = time.monotonic()
                pending = {(setup, level) for setup in ("prometheus", "vmalert") for level in LEVELS}
                seen: dict[tuple[str, str], float] = {}
                while pending and time.monotonic() - changed < ROUND_TIMEOUT:
                    for setup, level in sorted(pending):
                        url = single if setup == "prometheus" else store.url
                        if answers(url, phase.query(level)):
                            seen[(setup, level)] = time.monotonic() - changed
                            pending.discard((setup, level))
                    time.sleep(POLL)
                for key, seconds in seen.items():
                    results.setdefault(key, []).append(seconds)
                print(
                    f"round {round_number}: "
                    + "; ".join(
                        f"{level} Prometheus {seen.get(('prometheus', level), float('nan')):.1f} / "
                        f"vmalert {seen.get(('vmalert', level), float('nan')):.1f}"
                        for level in LEVELS
                    ),
                    flush=True,
                )
            print(
                "\n| series | one Prometheus: median s | max s | shard + VictoriaMetrics + vmalert: median s | max s |"
            )
            print("|---|---:|---:|---:|---:|")
            for level in LEVELS:
                single_times = results.get(("prometheus", level), [float("nan")])
                store_times = results.get(("vmalert", level), [float("nan")])
                print(
                    f"| `{level}` | {statistics.median(single_times):.1f} | {max(single_times):.1f} "
                    f"| {statistics.median(store_times):.1f} | {max(store_times):.1f} |"
                )
        finally:
            for process in reversed(started):
                stop(process)
            target.shutdown()


if __name__ == "__main__":
    main()
