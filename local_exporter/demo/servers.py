"""The real servers the demo runs (Debian's Prometheus and Alertmanager): started by PID on the
demo's address, waited for until ready, stopped by PID."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

PROMETHEUS = "prometheus"
ALERTMANAGER = "prometheus-alertmanager"
#: The scale-out topology's store and ruler (`demo --shards N`).
VICTORIA_METRICS = "victoria-metrics"
VMALERT = "vmalert"
#: Debian's package of each binary, for the message when one is missing.
PACKAGES = {
    PROMETHEUS: "prometheus",
    ALERTMANAGER: "prometheus-alertmanager",
    VICTORIA_METRICS: "victoria-metrics",
    VMALERT: "victoria-metrics",
}
READY_TIMEOUT = 60.0
#: How long a server that answers ready must keep running to be taken as the one answering.
BIND_GRACE = 0.5
STOP_TIMEOUT = 10.0


class DemoError(Exception):
    """Something the user can fix: the message says what."""


def missing_binaries(*, sharded: bool = False) -> list[str]:
    needed = (PROMETHEUS, ALERTMANAGER, *((VICTORIA_METRICS, VMALERT) if sharded else ()))
    return [name for name in needed if shutil.which(name) is None]


def check_port(address: str, port: int, flag: str) -> None:
    """Fail with the flag to change when `port` is taken (0 means any free port: never taken)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the servers bind (Prometheus, Alertmanager and aiohttp all set it): the last run's
        # connections in TIME_WAIT do not keep a new run from listening, a listener does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as exc:
            raise DemoError(
                f"port {port} on {address} is not available ({exc.strerror}): stop what uses it or pick another "
                f"with {flag}"
            ) from None


def free_port(address: str, avoid: Collection[int] = ()) -> int:
    """A port free now, other than those in `avoid`: the kernel may hand out a port it just gave
    for a probe that closed, and ports chosen but not yet bound must stay apart."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((address, 0))
            port: int = probe.getsockname()[1]
        if port not in avoid:
            return port


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def start(name: str, argv: list[str], url: str, log: Path) -> Server:
    """Run `argv` (its output to `log`) and wait until `url`/-/ready answers while it runs."""
    with log.open("ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = Server(name, url, process, log)
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if _ready(f"{url}/-/ready"):
            # Someone else may answer on that port (ours then fails to bind and exits): ready
            # only if ours is still running once it has had the time to bind.
            time.sleep(BIND_GRACE)
            if process.poll() is None:
                return server
        if process.poll() is not None or time.monotonic() > deadline:
            stop(server)
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise DemoError(f"{name} did not start (its log, {log}):\n  " + "\n  ".join(tail))
        time.sleep(0.2)


def stop(server: Server) -> None:
    """SIGTERM by PID, then SIGKILL if it has not exited in time."""
    process = server.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _ready(url: str) -> bool:
    with contextlib.suppress(OSError, urllib.error.URLError), urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)
    return False
