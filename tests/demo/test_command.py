"""`local-exporter demo`, run as a user runs it (a real process, non-interactively, for a bounded
time): the bridges answer, the store has the fleet's samples, an alert reaches the receiver, and
after Ctrl-C nothing it started is left: no process, no socket, no listening port.

The long run is the scale-out topology (`--shards 2`: Prometheus shards, VictoriaMetrics and
vmalert), the README's command the single Prometheus; tests/bundle/test_alerting_live.py pages
through a single Prometheus with the bundle's files."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local_exporter.sim.host_bus import MAX_SOCKET_PATH
from tests.support.processes import LOOPBACK, local_exporter_args, python_env

ANY_PORT = [
    *("--prometheus-port", "0", "--alertmanager-port", "0", "--receiver-port", "0", "--airlock-port", "0"),
    *("--victoria-metrics-port", "0", "--vmalert-port", "0"),
]


class Output:
    """The demo's stdout, read line by line in a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        self.process = process
        self._stream = stream = process.stdout
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self._queue.put(line)

    def close(self) -> None:
        """After the process has exited: the reader sees the end, then the pipe is closed."""
        self._thread.join(10)
        self._stream.close()

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines:
                match = re.search(pattern, line)
                if match:
                    return match
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matching {pattern!r} in {timeout} s:\n" + "".join(self.lines[-40:]))
            with contextlib.suppress(queue.Empty):
                self.lines.append(self._queue.get(timeout=min(remaining, 1.0)))


@contextlib.contextmanager
def running_demo(argv: list[str], *, cwd: Path | None = None, stderr: int = subprocess.STDOUT) -> Iterator[Output]:
    """The demo as a process of its own session, its stdout read line by line (stderr with it, or
    on `process.stderr` with `stderr=subprocess.PIPE`). On the way out, whatever it left running
    in its group is killed, so no server outlives a failed test."""
    process = subprocess.Popen(
        argv, cwd=cwd, env=python_env(), stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True
    )
    out = Output(process)
    try:
        yield out
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        out.close()
        if process.stderr is not None:
            process.stderr.close()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _eventually(check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            assert callable(check)
            check()
            return
        except (AssertionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((LOOPBACK, port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if text.encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


@pytest.mark.timeout(300)
def test_the_sharded_demo_runs_alerts_and_leaves_nothing_behind(short_dir: Path) -> None:
    directory = short_dir / "demo"  # a host's bus socket in it stays within dbus-daemon's 99 bytes
    args = ["demo", "--shards", "2", "--speed", "60", "--duration", "240", "--progress-every", "5"]
    args += ["--dir", str(directory)]
    with running_demo(local_exporter_args(*args, *ANY_PORT, "--bridge-port-base", "0")) as out:
        process = out.process
        store = out.wait_for(r"VictoriaMetrics +(http://\S+) +\(pid (\d+)\)", 90)
        shards = out.wait_for(r"shards +2 Prometheus .*: (\S+)/targets \(pid (\d+)\), (\S+)/targets \(pid (\d+)\)", 5)
        vmalert = out.wait_for(r"vmalert +(http://\S+) +\(pid (\d+)\)", 5)
        alertmanager = out.wait_for(r"Alertmanager +(http://\S+) +\(pid (\d+)\)", 5)
        bridge = out.wait_for(r"bridges +(http://[\d.]+:(\d+))", 5)
        flatcar = out.wait_for(r"Flatcar +(http://[\d.]+:(\d+))", 5)
        receiver = out.wait_for(r"receiver +http://[\d.]+:(\d+)", 5)
        store_url = store.group(1)
        pids = [int(m.group(2)) for m in (store, vmalert, alertmanager)] + [int(shards.group(n)) for n in (2, 4)]
        ports = [
            *(int(urllib.parse.urlsplit(url).port or 0) for url in (store_url, vmalert.group(1))),
            *(int(urllib.parse.urlsplit(shards.group(n)).port or 0) for n in (1, 3)),
            int(bridge.group(2)),
            int(flatcar.group(2)),
            int(receiver.group(1)),
        ]

        def bridge_answers() -> None:
            status, body = _get(f"{bridge.group(1)}/bridge?selector=zincati")
            # The host's own phase, and Zincati's families beside it.
            assert status == 200 and "zincati_identity_os_info{" in body and "os_update_phase{" in body, (
                status,
                body[:200],
            )

        def flatcar_answers() -> None:
            status, body = _get(f"{flatcar.group(1)}/bridge?selector=update_engine")
            # A Flatcar host's phase, from update_engine on its own bus, and update_engine's families.
            assert status == 200 and 'os="flatcar"' in body and "update_engine_status_info{" in body, (
                status,
                body[:200],
            )

        def the_store_has_the_fleet() -> None:
            query = urllib.parse.quote("count(zincati_identity_os_info)")
            status, body = _get(f"{store_url}/api/v1/query?query={query}")
            result = json.loads(body)["data"]["result"]
            assert status == 200 and result and float(result[0]["value"][1]) >= 20, body

        _eventually(bridge_answers, 30)
        _eventually(flatcar_answers, 30)
        _eventually(the_store_has_the_fleet, 60)
        # Each shard scrapes its share of the targets.
        for n in (1, 3):
            status, body = _get(f"{shards.group(n)}/api/v1/targets?state=active")
            assert status == 200 and json.loads(body)["data"]["activeTargets"], body[:200]
        # vmalert evaluates the alerts on the store and Alertmanager routes them to the receiver:
        # the heartbeat, at once (a fault's page through vmalert: tests/bundle/test_victoria_live.py).
        out.wait_for(r"alert -> heartbeat +FIRING +OSUpdateHeartbeat", 60)
        # Each OS's rollout, from the rules vmalert recorded in the store (chained rules there lag
        # the fleet: docs/deploy.md, so the host counts are not compared).
        out.wait_for(r"\[scenario \d+:\d+\] fedora-coreos newest [\d.]+ on \d+/\d+ hosts; flatcar newest", 90)
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
        out.wait_for(
            r"demo stopped: 2 Prometheus shards, VictoriaMetrics, vmalert, Alertmanager, the receiver and 32 bridges "
            "are down",
            5,
        )
    assert not [pid for pid in pids if _alive(pid)], "a server the demo started is still running"
    assert not [port for port in ports if _listening(port)], "a port the demo opened still listens"
    assert list(directory.rglob("*.sock")) == []
    # Each host's rpm-ostree ran on a dbus-daemon of its own, started with a config in the
    # demo's directory: none is left.
    assert not _processes_mentioning(str(directory)), "a host's dbus-daemon is still running"
    assert (directory / "bundle" / "prometheus" / "rules" / "alerts.yml").exists()


def test_a_port_in_use_is_named_with_its_flag() -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            local_exporter_args("demo", "--prometheus-port", str(port)),
            env=python_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"port {port} on 127.0.0.1 is not available" in result.stderr
    assert "--prometheus-port" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.timeout(200)
def test_a_fleet_that_fails_ends_the_demo_with_one_line_and_nothing_left(short_dir: Path) -> None:
    """The simulated fleet failing under the demo (its hosts' directory removed: the next agent
    to start cannot make its socket) stops everything, says so in one line and exits 1; the
    traceback goes to the kept directory's bridges.log."""
    directory = short_dir / "demo"
    args = ["demo", "--speed", "60", "--progress-every", "2", "--dir", str(directory)]
    argv = local_exporter_args(*args, *ANY_PORT, "--bridge-port-base", "0")
    with running_demo(argv, stderr=subprocess.PIPE) as out:
        out.wait_for(r"^\[scenario ", 120)
        shutil.rmtree(directory / "fleet" / "hosts")
        assert out.process.wait(120) == 1
        out.wait_for(r"^demo stopped: Prometheus, Alertmanager, the receiver and 32 bridges are down", 5)
        assert out.process.stderr is not None
        error = out.process.stderr.read()
    log = directory / "bridges.log"
    assert re.fullmatch(
        # uvloop names no path in the error of a socket it could not make.
        r"local-exporter demo: the simulated fleet stopped: FileNotFoundError: \[Errno 2\] No such file or "
        rf"directory[^\n]* \(its traceback is in {re.escape(str(log))}\)\n",
        error,
    ), error
    assert "ERROR local_exporter the simulated fleet stopped\nTraceback" in log.read_text()
    assert not _processes_mentioning(str(directory)), "a server or a host's dbus-daemon is still running"


def test_a_directory_too_long_for_a_hosts_bus_is_named(short_dir: Path) -> None:
    directory = short_dir / ("d" * (MAX_SOCKET_PATH - len(str(short_dir))))
    result = subprocess.run(
        local_exporter_args("demo", "--dir", str(directory), "--duration", "5", *ANY_PORT, "--bridge-port-base", "0"),
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    socket_path = directory / "fleet" / "hosts" / "host-0000" / "bus"
    assert result.stderr == (
        f"local-exporter demo: the simulated fleet cannot start: a host's bus socket {socket_path} is "
        f"{len(str(socket_path))} bytes long, and dbus-daemon takes at most 99: use a shorter directory\n"
    )
    assert not _processes_mentioning(str(directory))
    assert not list(directory.rglob("bus"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            (),
            "needs prometheus, prometheus-alertmanager: run scripts/bootstrap, or "
            "`sudo apt-get install prometheus prometheus-alertmanager`",
        ),
        (
            ("--shards", "2"),
            "needs prometheus, prometheus-alertmanager, victoria-metrics, vmalert: run "
            "scripts/bootstrap, or `sudo apt-get install prometheus prometheus-alertmanager victoria-metrics`",
        ),
    ],
)
def test_missing_servers_say_how_to_install_them(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    # A PATH without Debian's prometheus, prometheus-alertmanager and victoria-metrics.
    result = subprocess.run(
        local_exporter_args("demo", *args),
        env=python_env({"PATH": str(tmp_path)}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("shards", ["-1", "65"])
def test_a_number_of_shards_out_of_range_is_refused(shards: str) -> None:
    result = subprocess.run(
        local_exporter_args("demo", "--shards", shards), env=python_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"local-exporter demo: --shards must be from 0 (one Prometheus) to 64, got {shards}\n"


#: The demo's default ports: Prometheus, Alertmanager, the receiver, airlock, the first bridge.
DEFAULT_PORTS = (9090, 9093, 9099, 19099, 19100)


def _free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((LOOPBACK, port)) != 0


@pytest.mark.timeout(500)
def test_the_readmes_first_command_runs_as_written_and_again_at_once() -> None:
    """The README's demo command, exactly as a new user types it (bootstrap included), until Ctrl-C;
    then again at once, on the same ports, which the first run's connections may have left in
    TIME_WAIT (a restart must not wait for them)."""
    root = Path(__file__).resolve().parents[2]
    (command,) = re.findall(r"```sh\n(.+?)\n```", (root / "README.md").read_text())[:1]
    busy = [port for port in DEFAULT_PORTS if not _free(port)]
    if busy:
        pytest.skip(f"the demo's default ports {busy} are in use on this machine")
    for run in ("first", "second"):
        with running_demo(["bash", "-c", command], cwd=root) as out:
            out.wait_for(r"Prometheus +http://127\.0\.0\.1:9090 +\(pid \d+\)", 300)
            out.wait_for(r"\[scenario \d+:\d+\] fedora-coreos newest [\d.]+ on \d+/24 hosts; flatcar newest", 60)
            os.killpg(out.process.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
            assert out.process.wait(60) == 0, run
            out.wait_for(r"demo stopped", 5)
        assert all(_free(port) for port in DEFAULT_PORTS), run
