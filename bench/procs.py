"""Process plumbing both benchmarks share: /proc readings, the child environment, start and stop."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` so far (fields 14 and 15 of /proc/PID/stat, man 5 proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child_env() -> dict[str, str]:
    """This environment with the repository first on PYTHONPATH, so children run this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def stop(process: subprocess.Popen[Any]) -> None:
    """SIGTERM by PID, SIGKILL after 10 s."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def free_port() -> int:
    """A TCP port free on loopback now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def wrk_ms(text: str) -> float:
    """A wrk latency (`812.00us`, `1.20ms`) in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"wrk latency {text!r}")
    return float(match.group(1)) * _WRK_UNITS[match.group(2)]


def wrk_search(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise ValueError(f"no {pattern!r} in wrk output:\n{text}")
    return match.group(1)


def wrk_result(out: str) -> dict[str, Any]:
    """What a `wrk --latency` run printed: requests, requests/s, p50/p99 ms, non-2xx answers."""
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "requests": int(wrk_search(r"(\d+) requests in", out)),
        "requests_per_second": float(wrk_search(r"Requests/sec:\s+([\d.]+)", out)),
        "p50_ms": wrk_ms(wrk_search(r"\s50%\s+(\S+)", out)),
        "p99_ms": wrk_ms(wrk_search(r"\s99%\s+(\S+)", out)),
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


@dataclass
class Server:
    """A server a benchmark started: stop it with `stop(server.process)`."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def start_server(name: str, args: list[str], directory: Path, url: str, ready: str, timeout: float = 120) -> Server:
    """Run `args` in `directory` (its output to NAME.log there) until `url` + `ready` answers 200."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=directory)
    server = Server(name, process, url, log)
    deadline = time.monotonic() + timeout
    while not http_ok(url + ready):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise RuntimeError(f"{name} did not start: {log.read_text()[-1500:]}")
        time.sleep(0.3)
    return server


def wait_until(what: str, ready: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while not ready():
        if process.poll() is not None:
            sys.exit(f"{what} exited with {process.returncode}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            sys.exit(f"{what} not ready within 20 s:\n{log.read_text()}")
        time.sleep(0.05)


def unix_ok(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
        return True
