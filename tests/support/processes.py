"""Real processes for end-to-end tests: free ports, start/stop by PID, polling with deadlines.

Every process started here is stopped by its own PID in a `finally` (terminate, wait, kill),
and every wait is a poll against a deadline, never a fixed sleep.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
# Between two polls: short enough not to add latency, long enough not to spin.
POLL_INTERVAL = 0.05
STOP_TIMEOUT = 10.0

T = TypeVar("T")


#: Where the ports tests hand to servers come from. The kernel gives every socket bound to port 0
#: and every outgoing connection a port from 32768 to 60999 (ip_local_port_range), so a port
#: found free there can be taken before the server the test starts binds it, the more often the
#: more connections the suite's workers make side by side. Below that range, each xdist worker
#: takes its ports from a block of its own, in turn: nothing else hands them out.
PORT_BLOCKS_START = 20000
PORT_BLOCK_SIZE = 2000
_port_turns = itertools.count()


def _port_block() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")  # gw0, gw1, ... (one process: none)
    start = PORT_BLOCKS_START + int(worker.removeprefix("gw")) * PORT_BLOCK_SIZE
    return range(start, start + PORT_BLOCK_SIZE)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, from this worker's block: the
    next one in turn, so a port comes back only after the whole block has been handed out."""
    block = _port_block()
    for _ in block:
        port = block[next(_port_turns) % len(block)]
        if port_is_free(port):
            return port
    raise RuntimeError(f"no free port in {block}")


def port_is_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:`port` now (as servers do, with SO_REUSEADDR,
    so connections of a previous listener in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def python_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a `python -m local_exporter` child: this checkout first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("PYTHONWARNINGS", None)
    env.update(extra or {})
    return env


@dataclass
class Child:
    """A started process with its output going to files (so nothing blocks on a full pipe)."""

    name: str
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def describe(self) -> str:
        """Exit status and output, for an assertion message."""
        status = "running" if self.alive() else f"exit code {self.process.returncode}"
        return f"{self.name} (pid {self.pid}, {status})\n--- stdout\n{self.stdout()}\n--- stderr\n{self.stderr()}"

    def signal(self, signum: signal.Signals) -> None:
        os.kill(self.pid, signum)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)


def start(name: str, args: Sequence[str], directory: Path, env: Mapping[str, str] | None = None) -> Child:
    """Start `args` with stdout/stderr in `directory/NAME.{out,err}`; stop it with `stop()`."""
    stdout_path, stderr_path = directory / f"{name}.out", directory / f"{name}.err"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(
            list(args), stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=ROOT, env=dict(env or os.environ)
        )
    return Child(name, process, stdout_path, stderr_path)


def stop(child: Child, timeout: float = STOP_TIMEOUT) -> int:
    """SIGTERM the child by PID, wait up to `timeout`, then SIGKILL; its exit code."""
    process = child.process
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
    return process.wait()


@contextlib.contextmanager
def running(name: str, args: Sequence[str], directory: Path, env: Mapping[str, str] | None = None) -> Iterator[Child]:
    child = start(name, args, directory, env)
    try:
        yield child
    finally:
        stop(child)


def local_exporter_args(*args: str) -> list[str]:
    return [sys.executable, "-m", "local_exporter", *args]


class DeadlineExceeded(AssertionError):
    pass


def poll(
    what: str,
    attempt: Callable[[], T | None],
    timeout: float,
    *,
    watch: Sequence[Child] = (),
    interval: float = POLL_INTERVAL,
) -> T:
    """Call `attempt` until it returns something other than None, or fail after `timeout` s.

    A watched child that exits meanwhile fails the wait at once, with its output.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = attempt()
        if result is not None:
            return result
        for child in watch:
            if not child.alive():
                raise AssertionError(f"while waiting for {what}: {child.describe()}")
        if time.monotonic() >= deadline:
            raise DeadlineExceeded(f"{what}: not within {timeout:g} s")
        time.sleep(interval)


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def http_get(
    url: str,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
    context: ssl.SSLContext | None = None,
    method: str = "GET",
) -> HttpAnswer:
    """GET (or `method`) without raising on non-2xx; connection errors do raise (OSError). `context` for https."""
    request = urllib.request.Request(url, headers=dict(headers or {}), method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return HttpAnswer(response.status, dict(response.headers.items()), response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return HttpAnswer(exc.code, dict(exc.headers.items()), exc.read())


def scraped(base: str, series: str) -> float:
    """The value of one series (`name` or `name{labels}`, as written) on `base`/metrics."""
    lines = http_get(f"{base}/metrics").text.splitlines()
    return float(next(line for line in lines if line.startswith(series + " ")).split()[-1])


def wait_http(
    url: str,
    timeout: float,
    *,
    status: int = 200,
    watch: Sequence[Child] = (),
    headers: Mapping[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> HttpAnswer:
    """Poll `url` until it answers `status`."""

    def attempt() -> HttpAnswer | None:
        try:
            answer = http_get(url, headers, timeout=min(2.0, timeout), context=context)
        except OSError:
            return None
        return answer if answer.status == status else None

    return poll(f"GET {url} -> {status}", attempt, timeout, watch=watch)


def wait_unix_socket(path: Path, timeout: float, *, watch: Sequence[Child] = ()) -> None:
    """Poll until something accepts connections on the Unix socket `path`."""

    def attempt() -> bool | None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            try:
                sock.connect(str(path))
            except OSError:
                return None
            return True

    poll(f"Unix socket {path}", attempt, timeout, watch=watch)
