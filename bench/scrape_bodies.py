"""A simulated fleet's scrapes, rendered ahead and served from files: live ingestion without the
simulator's CPU in the measurement.

`render_rounds` advances a fleet (the same scenario the backfills use) one scrape interval at a
time and writes, for each round, what every host's bridge would answer, as Prometheus would
store it: each host's lines carry their own `instance` and `job` labels (the history's target
labels) and an `up` sample per host, as `write_history` writes them. Hosts are packed into
`targets` bodies, gzipped (level 1, as the bridge compresses), so a Prometheus scrapes a few
hundred targets with `honor_labels: true` instead of 100,000: the series and samples it stores
are the fleet's, what it spends per target (connections, scrape loops) is not.

`python bench/scrape_bodies.py serve DIR PORTS_FILE` serves them: one listener per target on
127.0.0.1 (a target is an address, so `hashmod` on `__address__` splits them as it splits a
fleet), each request answered with that target's next round (its own counter, so every scrape
of a target gets a new round whatever its offset in the interval; the last one repeats once
they run out). It writes the ports it bound to PORTS_FILE, then serves until SIGTERM.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from local_exporter.common.jobs import AGENT_JOB, AIRLOCK_INSTANCE, AIRLOCK_JOB
from local_exporter.sim.fleet import Fleet
from local_exporter.sim.reported import Reporter, settings
from local_exporter.sim.scenario import Scenario

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Rendered:
    directory: Path
    rounds: int
    targets: int
    #: Samples in each round (every host's lines, `up` and the airlock's).
    samples: list[int]
    raw_bytes: int
    gzip_bytes: int
    seconds: float


def _labelled(body: bytes, labels: bytes) -> list[bytes]:
    """Each sample line of a text exposition with `labels` (`instance="h",job="j"`) added;
    comments dropped (a body of many hosts would repeat every family's `# TYPE`)."""
    out = []
    for line in body.split(b"\n"):
        if not line or line[0] == 35:  # "#"
            continue
        space = line.find(b" ")
        brace = line.find(b"{")
        if brace != -1 and (space == -1 or brace < space):
            close = line.rfind(b"}")
            joint = b"," if close > brace + 1 else b""
            out.append(line[:close] + joint + labels + line[close:])
        else:
            out.append(line[:space] + b"{" + labels + b"}" + line[space:])
    return out


def render_rounds(
    scenario: Scenario,
    at: float,
    rounds: int,
    interval: float,
    targets: int,
    directory: Path,
    *,
    reported: bool,
    clock_start: float,
) -> Rendered:
    """`rounds` scrapes of every host, `interval` apart from scenario time `at` on, in
    `directory`/ROUND/TARGET.gz; `clock_start` is the Unix time of scenario time 0."""
    began = time.perf_counter()
    fleet = Fleet(scenario, lambda t: clock_start + t)
    fleet.advance(at)
    hosts = fleet.hosts
    selector = settings(interval)
    reporters = [Reporter(host, scenario.fleet.stream, selector) for host in hosts] if reported else None
    labels = [f'instance="{host.name}",job="{AGENT_JOB}"'.encode() for host in hosts]
    per_target = -(-len(hosts) // targets)
    airlock_labels = f'instance="{AIRLOCK_INSTANCE}",job="{AIRLOCK_JOB}"'.encode()
    airlock = None
    if scenario.fleet.strategy == "fleet_lock":
        from prometheus_client import CollectorRegistry, generate_latest

        from local_exporter.sim.airlock import AirlockCollector

        registry = CollectorRegistry(auto_describe=True)
        registry.register(AirlockCollector(fleet.semaphores))
        airlock = (registry, generate_latest)
    samples: list[int] = []
    raw = packed = 0
    for number in range(rounds):
        t = at + number * interval
        fleet.advance(t)
        now = clock_start + t
        folder = directory / str(number)
        folder.mkdir(parents=True, exist_ok=True)
        count = 0
        for target in range(targets):
            lines: list[bytes] = []
            for index in range(target * per_target, min(len(hosts), (target + 1) * per_target)):
                host = hosts[index]
                body = fleet.render(index)
                if reporters is not None:
                    text = (body or b"") + reporters[index].render(host, body, now) + b"up 1\n"
                else:
                    text = b"up 0\n" if body is None else body + b"up 1\n"
                lines += _labelled(text, labels[index])
            if target == 0 and airlock is not None:
                registry, generate_latest = airlock
                lines += _labelled(generate_latest(registry) + b"up 1\n", airlock_labels)
            data = b"\n".join(lines) + b"\n"
            compressed = gzip.compress(data, compresslevel=1)
            (folder / f"{target}.gz").write_bytes(compressed)
            count += len(lines)
            raw += len(data)
            packed += len(compressed)
        samples.append(count)
    return Rendered(directory, rounds, targets, samples, raw, packed, time.perf_counter() - began)


async def _serve(directory: Path, rounds: list[int], targets: int, ports_file: Path) -> None:
    from aiohttp import web

    served = [0] * targets

    def handler(target: int) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def answer(request: web.Request) -> web.Response:
            number = min(served[target], len(rounds) - 1)
            served[target] += 1
            body = (directory / str(rounds[number]) / f"{target}.gz").read_bytes()
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE, "Content-Encoding": "gzip"})

        return answer

    runners = []
    ports = []
    for target in range(targets):
        app = web.Application()
        app.router.add_get("/metrics", handler(target))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        ports.append(sock.getsockname()[1])
        await web.SockSite(runner, sock, backlog=128).start()
        runners.append(runner)
    written = json.dumps(ports)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await asyncio.to_thread(ports_file.write_text, written)
    await stop.wait()
    for runner in runners:
        await runner.cleanup()


def main() -> None:
    if len(sys.argv) != 4 or sys.argv[1] != "serve":
        sys.exit("usage: scrape_bodies.py serve DIR PORTS_FILE")
    directory = Path(sys.argv[2])
    rounds = sorted(int(p.name) for p in directory.iterdir() if p.is_dir())
    targets = len(list((directory / str(rounds[0])).glob("*.gz")))
    asyncio.run(_serve(directory, rounds, targets, Path(sys.argv[3])))


if __name__ == "__main__":
    main()
