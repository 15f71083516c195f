"""`serve` under abuse, next to a baseline revision in the same run: memory, password checks and
file descriptors (issue 19).

    python3 bench/abuse.py [--rev REV ...] [--hold 40]

For this checkout and each --rev (checked out in a temporary git worktree), each case starts a
fresh `local-exporter serve` and prints its figures:

1. **Non-reading clients**: 300 clients ask for a 5 MB file selector and never read (a 4 KB
   receive buffer each). RSS idle, its peak over --hold seconds with the clients connected, RSS
   at the end of the hold (still connected), and 5 s after they close.
2. **A burst of slow scrapes**: 1,000 concurrent scrapes of a Unix socket that answers 5 MB
   after 1 s. Peak RSS, RSS 5 s after the burst, and the answers by status.
3. **Password checks under a flood**: basic auth (bcrypt cost 10) while 200 wrong passwords a
   second arrive from 50 clients; the latency of the first correct login (not cached), after
   2 s of flood, next to the same login with no flood; and the serve process' thread count.
4. **Health under half-open connections**: `serve` started with a soft and hard open-file limit
   of 1024; 1,100 connections each send half a request header; then 10 `/-/healthy` checks
   (12 s timeout each): how many answered, their median and worst latency, next to the same
   check with no flood.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from footprint import checkout
from procs import child_env, free_port, http_ok, rss_mb, stop

MB = 1024 * 1024
PAYLOAD = 5 * MB
#: Health checks under the half-open flood, each with a 12 s timeout.
CHECKS = 10


def exposition(size: int) -> bytes:
    head = b"# TYPE big gauge\n"
    sample = b'big{filler="' + b"x" * 100 + b'"} 1\n'
    return head + sample * ((size - len(head)) // len(sample))


@contextlib.contextmanager
def serving(
    directory: Path, work: Path, selectors: str, web_yaml: str = "", nofile: tuple[int, int] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    config = work / f"config-{port}.toml"
    config.write_text(f'[service]\naddress = "127.0.0.1"\nport = {port}\n[bridge.selectors]\n{selectors}')
    command = [sys.executable, "-m", "local_exporter", "serve", "-c", str(config)]
    if web_yaml:
        web = work / f"web-{port}.yml"
        web.write_text(web_yaml)
        command += ["--web.config.file", str(web)]
    if nofile is not None:
        setup = (
            "import os, resource, sys; "
            f"resource.setrlimit(resource.RLIMIT_NOFILE, {nofile}); os.execv(sys.argv[1], sys.argv[1:])"
        )
        command = [sys.executable, "-c", setup, *command]
    env = child_env()
    env["PYTHONPATH"] = str(directory)
    log = (work / f"serve-{port}.log").open("wb")
    process = subprocess.Popen(command, env=env, cwd=work, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _answers(f"{base}/-/healthy"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"serve did not start: {(work / f'serve-{port}.log').read_text()[-2000:]}")
            time.sleep(0.05)
        yield base, process
    finally:
        stop(process)
        log.close()


def _answers(url: str) -> bool:
    """Whether anything answers HTTP at `url` (with basic auth on, a 401 is an answer)."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


class Sampler:
    """The peak RSS of a process, sampled every 0.1 s in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.1)

    def close(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def non_readers(directory: Path, work: Path, hold: float) -> dict[str, Any]:
    (work / "big.prom").write_bytes(exposition(PAYLOAD))
    selectors = f'big = {{ kind = "file", path = "{work / "big.prom"}" }}\n'
    with serving(directory, work, selectors) as (base, process):
        http_ok(f"{base}/bridge?selector=big", timeout=30)
        time.sleep(1)
        idle = rss_mb(process.pid)
        sampler = Sampler(process.pid)
        port = int(base.rsplit(":", 1)[1])
        clients = []
        for _ in range(300):
            client = socket.socket()
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.connect(("127.0.0.1", port))
            client.sendall(b"GET /bridge?selector=big HTTP/1.1\r\nHost: x\r\n\r\n")
            clients.append(client)
        time.sleep(hold)
        held = rss_mb(process.pid)
        for client in clients:
            client.close()
        time.sleep(5)
        return {"idle": idle, "peak": sampler.close(), "end_of_hold": held, "after": rss_mb(process.pid)}


@contextlib.contextmanager
def slow_socket(path: Path, body: bytes, delay: float) -> Iterator[None]:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(4096)
    server.settimeout(0.2)
    done = threading.Event()

    def answer(client: socket.socket) -> None:
        with client:
            time.sleep(delay)
            with contextlib.suppress(OSError):
                client.sendall(body)

    def accept() -> None:
        while not done.is_set():
            try:
                client, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=answer, args=(client,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        server.close()


async def burst(url: str, count: int) -> Counter[int]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:

        async def one() -> int:
            try:
                async with session.get(url, headers={"Accept-Encoding": "identity"}) as response:
                    await response.read()
                    return response.status
            except aiohttp.ClientError:
                return 0

        return Counter(await asyncio.gather(*(one() for _ in range(count))))


def slow_burst(directory: Path, work: Path) -> dict[str, Any]:
    path = Path(tempfile.mkdtemp(prefix="abuse-", dir="/tmp")) / "slow.sock"
    with slow_socket(path, exposition(PAYLOAD), 1.0):
        selectors = f'slow = {{ kind = "uds", path = "{path}", timeout = 60 }}\n'
        with serving(directory, work, selectors) as (base, process):
            http_ok(f"{base}/bridge?selector=slow", timeout=30)
            time.sleep(1)
            idle = rss_mb(process.pid)
            sampler = Sampler(process.pid)
            statuses = asyncio.run(burst(f"{base}/bridge?selector=slow", 1000))
            peak = sampler.close()
            time.sleep(5)
            return {"idle": idle, "peak": peak, "after": rss_mb(process.pid), "statuses": dict(statuses)}


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def login_latency(base: str, flood: bool) -> float:
    # The guesses come from 127.0.0.1, the login from 127.0.0.2: Prometheus is not the attacker.
    login = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, local_addr=("127.0.0.2", 0)))
    async with login, aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        stop_flood = asyncio.Event()

        async def guesser(number: int) -> None:
            # 50 clients, one guess each every 0.25 s: 200 wrong passwords a second.
            guess = 0
            while not stop_flood.is_set():
                guess += 1
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    async with session.get(
                        f"{base}/-/healthy",
                        headers={"Authorization": _basic("prometheus", f"wrong-{number}-{guess}")},
                        timeout=aiohttp.ClientTimeout(total=30),
                    ) as response:
                        await response.read()
                await asyncio.sleep(0.25)

        guessers = [asyncio.create_task(guesser(n)) for n in range(50)] if flood else []
        await asyncio.sleep(2.0 if flood else 0.1)
        started = time.perf_counter()
        async with login.get(
            f"{base}/-/healthy",
            headers={"Authorization": _basic("prometheus", "right")},
            timeout=aiohttp.ClientTimeout(total=60),
        ) as response:
            await response.read()
            status = response.status
        latency = time.perf_counter() - started
        stop_flood.set()
        for task in guessers:
            task.cancel()
        await asyncio.gather(*guessers, return_exceptions=True)
        if status != 200:
            return float("nan")
        return latency


def passwords(directory: Path, work: Path) -> dict[str, Any]:
    (work / "small.prom").write_text("# TYPE up gauge\nup 1\n")
    selectors = f'small = {{ kind = "file", path = "{work / "small.prom"}" }}\n'
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(10)).decode()
    web_yaml = f"basic_auth_users:\n  prometheus: {hashed}\n"
    figures: dict[str, Any] = {}
    for flood in (False, True):
        with serving(directory, work, selectors, web_yaml) as (base, process):
            figures["flood" if flood else "quiet"] = asyncio.run(login_latency(base, flood))
            figures["threads" if flood else "threads_quiet"] = len(os.listdir(f"/proc/{process.pid}/task"))
    return figures


def half_open(directory: Path, work: Path) -> dict[str, Any]:
    (work / "small.prom").write_text("# TYPE up gauge\nup 1\n")
    selectors = f'small = {{ kind = "file", path = "{work / "small.prom"}" }}\n'
    figures: dict[str, Any] = {}
    for flood in (False, True):
        with serving(directory, work, selectors, nofile=(1024, 1024)) as (base, _process):
            port = int(base.rsplit(":", 1)[1])
            clients = []
            if flood:
                for _ in range(1100):
                    client = socket.socket()
                    client.settimeout(5)
                    try:
                        client.connect(("127.0.0.1", port))
                        client.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x")
                    except OSError:
                        client.close()
                        continue
                    clients.append(client)
            latencies = []
            for _ in range(CHECKS):
                started = time.perf_counter()
                if http_ok(f"{base}/-/healthy", timeout=12):
                    latencies.append(time.perf_counter() - started)
            for client in clients:
                client.close()
        key = "flood" if flood else "quiet"
        figures[key] = {
            "answered": len(latencies),
            "median_ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
            "worst_ms": max(latencies) * 1000 if latencies else float("nan"),
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rev", action="append", default=[], help="also measure this git revision")
    parser.add_argument("--hold", type=float, default=40.0, help="seconds the non-reading clients stay (default 40)")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the clients' own sockets
    print(f"# {sys.executable} ({sys.version.split()[0]}), {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores")
    print(f"# command: python3 bench/abuse.py --hold {args.hold:g}" + "".join(f" --rev {r}" for r in args.rev))
    with contextlib.ExitStack() as stack:
        checkouts = {"this checkout": Path(__file__).resolve().parent.parent}
        for rev in args.rev:
            checkouts[rev] = stack.enter_context(checkout(rev))
        for name, directory in checkouts.items():
            with tempfile.TemporaryDirectory(prefix="abuse-") as tmp:
                work = Path(tmp)
                print(f"\n## {name}")
                figures = non_readers(directory, work, args.hold)
                print(
                    f"300 non-reading clients of a 5 MB answer: RSS idle {figures['idle']:.0f} MB, "
                    f"peak {figures['peak']:.0f} MB, after {args.hold:g} s {figures['end_of_hold']:.0f} MB, "
                    f"5 s after they close {figures['after']:.0f} MB",
                    flush=True,
                )
                figures = slow_burst(directory, work)
                print(
                    f"1,000 concurrent scrapes of a slow 5 MB source: RSS idle {figures['idle']:.0f} MB, "
                    f"peak {figures['peak']:.0f} MB, 5 s after {figures['after']:.0f} MB; "
                    f"answers by status {figures['statuses']}",
                    flush=True,
                )
                figures = passwords(directory, work)
                print(
                    f"first correct login: {figures['quiet'] * 1000:.0f} ms quiet, "
                    f"{figures['flood'] * 1000:.0f} ms under 200 wrong passwords/s; "
                    f"threads {figures['threads_quiet']} quiet, {figures['threads']} after the flood",
                    flush=True,
                )
                figures = half_open(directory, work)
                quiet, flood = figures["quiet"], figures["flood"]
                print(
                    f"/-/healthy with a 1024 open-file limit: quiet {quiet['answered']}/{CHECKS}, "
                    f"median {quiet['median_ms']:.1f} ms; under 1,100 half-open connections "
                    f"{flood['answered']}/{CHECKS}, median {flood['median_ms']:.1f} ms, worst {flood['worst_ms']:.0f} ms",
                    flush=True,
                )
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


if __name__ == "__main__":
    main()
