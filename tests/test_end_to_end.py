"""End to end: `local-exporter serve` as a real process, real sources, a real Prometheus.

One module-wide stack: a bridge subprocess bridging a file, a Zincati-protocol Unix socket
(served by its own process), a DBus method on a private bus, a socket that accepts and never
writes, and a socket path that does not exist; and a Prometheus scraping each selector with
the multi-target pattern plus the bridge's own /metrics. Every process is stopped by PID.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from local_exporter.demo.example import example_payload
from tests.support import prometheus as prom
from tests.support.dbus import PROMBUS_METHOD, PROMBUS_NAME, PROMBUS_PATH, private_bus, prombus_service
from tests.support.processes import (
    LOOPBACK,
    Child,
    free_port,
    http_get,
    local_exporter_args,
    poll,
    port_is_free,
    python_env,
    running,
    start,
    stop,
    wait_http,
    wait_unix_socket,
)

START_TIMEOUT = 15.0
# Each selector serves the example exposition with its own os_version, so the series in
# Prometheus show which source they came from.
VERSIONS = {"file": "41.20250105.3.1", "uds": "41.20250105.3.2", "dbus": "41.20250105.3.3"}
GOOD_JOBS = ("file", "uds", "dbus")
# Prometheus' scrape timeout for the job whose source never answers; the bridge must beat it.
SILENT_SCRAPE_TIMEOUT = 2.0


def payload_for(selector: str) -> bytes:
    original = b'os_version="41.20250105.3.0"'
    payload = example_payload()
    assert original in payload
    return payload.replace(original, f'os_version="{VERSIONS[selector]}"'.encode())


@dataclass
class Bridge:
    child: Child
    port: int

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"


def start_bridge(directory: Path, port: int, selectors: str) -> Bridge:
    """`local-exporter serve -c` on 127.0.0.1:`port` with `selectors` (lines of the
    `[bridge.selectors]` table) in a subprocess; the caller stops it by PID, in `finally`."""
    path = directory / "config.toml"
    path.write_text(f'[service]\naddress = "{LOOPBACK}"\nport = {port}\n\n[bridge.selectors]\n{selectors}')
    child = start("local-exporter", local_exporter_args("serve", "-c", str(path)), directory, python_env())
    return Bridge(child, port)


@contextmanager
def serving(directory: Path, port: int, selectors: str) -> Iterator[Bridge]:
    bridge = start_bridge(directory, port, selectors)
    try:
        wait_http(f"{bridge.url}/-/ready", START_TIMEOUT, watch=[bridge.child])
        yield bridge
    finally:
        stop(bridge.child)


@dataclass
class Stack:
    directory: Path
    bridge: Bridge
    prometheus: prom.Prometheus


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    directory = Path(tempfile.mkdtemp(prefix="le-e2e-", dir="/tmp"))
    try:
        with _stack(directory) as stack:
            yield stack
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def _stack(directory: Path) -> Iterator[Stack]:
    file_payload, uds_payload, dbus_payload = (directory / f"{name}.prom" for name in ("file", "uds", "dbus"))
    for name, path in (("file", file_payload), ("uds", uds_payload), ("dbus", dbus_payload)):
        path.write_bytes(payload_for(name))
    uds_path, silent_path = directory / "zincati.sock", directory / "silent.sock"
    sockets_args = [
        sys.executable,
        "-m",
        "tests.support.zincati_socket",
        "--serve",
        f"{uds_path}={uds_payload}",
        "--silent",
        str(silent_path),
    ]
    with (
        private_bus(directory) as bus,
        prombus_service(bus.address, dbus_payload),
        running("zincati-socket", sockets_args, directory, python_env()) as sockets,
    ):
        wait_unix_socket(uds_path, START_TIMEOUT, watch=[sockets])
        wait_unix_socket(silent_path, START_TIMEOUT, watch=[sockets])
        selectors = (
            f'file = {{ kind = "file", path = "{file_payload}" }}\n'
            f'uds = {{ kind = "uds", path = "{uds_path}" }}\n'
            f'dbus = {{ kind = "dbus", bus = "session", bus_address = "{bus.address}", '
            f'destination = "{PROMBUS_NAME}", path = "{PROMBUS_PATH}", method = "{PROMBUS_METHOD}" }}\n'
            f'silent = {{ kind = "uds", path = "{silent_path}" }}\n'
            f'broken = {{ kind = "uds", path = "{directory / "absent.sock"}" }}\n'
        )
        with serving(directory, free_port(), selectors) as bridge:
            jobs = [
                *(prom.bridge_job(name, bridge.address, name) for name in (*GOOD_JOBS, "broken")),
                prom.bridge_job(
                    "silent",
                    bridge.address,
                    "silent",
                    scrape_interval=f"{SILENT_SCRAPE_TIMEOUT:g}s",
                    scrape_timeout=f"{SILENT_SCRAPE_TIMEOUT:g}s",
                ),
                prom.metrics_job("bridge", bridge.address),
            ]
            with prom.running_prometheus(directory / "prometheus", jobs) as prometheus:
                yield Stack(directory, bridge, prometheus)


# --- the bridged samples, as Prometheus stores them


@pytest.mark.parametrize("job", GOOD_JOBS)
def test_bridged_samples_are_queryable(stack: Stack, job: str) -> None:
    result = stack.prometheus.wait_for(f'zincati_identity_os_info{{job="{job}"}}')
    assert [s["metric"]["os_version"] for s in result] == [VERSIONS[job]]
    assert result[0]["metric"]["instance"] == stack.bridge.address
    assert prom.value(result[0]) == 1


def test_up_is_one_for_good_selectors_and_zero_for_the_broken_one(stack: Stack) -> None:
    expected = {**dict.fromkeys(GOOD_JOBS, 1.0), "bridge": 1.0, "broken": 0.0}
    query = 'up{job=~"' + "|".join(expected) + '"}'

    def as_expected(result: list[prom.Sample]) -> bool:
        return {s["metric"]["job"]: prom.value(s) for s in result} == expected

    stack.prometheus.wait_for(query, as_expected)
    # The broken selector failed with our 503 (nothing at the socket path), not a Prometheus-side error.
    (broken,) = [t for t in stack.prometheus.targets() if t["labels"]["job"] == "broken"]
    assert "503" in broken["lastError"], broken


def test_own_metrics_count_each_outcome(stack: Stack) -> None:
    requests = 'local_exporter_bridge_requests_total{job="bridge",selector="%s",outcome="%s"} > 0'
    stack.prometheus.wait_for(requests % ("broken", "unavailable"))
    for job in GOOD_JOBS:
        stack.prometheus.wait_for(requests % (job, "success"))
    # The broken selector never succeeded; the good ones never failed.
    assert not stack.prometheus.query(requests % ("broken", "success"))
    for job in GOOD_JOBS:
        failed = f'local_exporter_bridge_requests_total{{job="bridge",selector="{job}",outcome!="success"}} > 0'
        assert not stack.prometheus.query(failed)


def test_promtool_finds_nothing_in_live_own_metrics(stack: Stack) -> None:
    # Scraped at least once per selector first, so every labelled series has moved.
    for selector in (*GOOD_JOBS, "broken"):
        http_get(f"{stack.bridge.url}/bridge?selector={selector}")
    answer = http_get(f"{stack.bridge.url}/metrics")
    assert answer.status == 200
    assert b"local_exporter_bridge_requests_total" in answer.body
    checked = subprocess.run(
        [prom.PROMTOOL, "check", "metrics"], input=answer.body, capture_output=True, timeout=30, check=False
    )
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, b"", b"")


# --- deadlines: our 504 arrives before Prometheus gives up


def test_silent_source_gets_504_before_the_scrape_timeout_header(stack: Stack) -> None:
    started = time.monotonic()
    answer = http_get(
        f"{stack.bridge.url}/bridge?selector=silent",
        headers={"X-Prometheus-Scrape-Timeout-Seconds": f"{SILENT_SCRAPE_TIMEOUT:g}"},
        timeout=10,
    )
    elapsed = time.monotonic() - started
    assert answer.status == 504, answer.text
    assert "timeout" in answer.text
    # Deadline = header - 0.5 s offset: after ~1.5 s, and well before the header's 2 s.
    assert 1.4 <= elapsed < SILENT_SCRAPE_TIMEOUT, elapsed


def test_prometheus_records_our_504_not_its_own_timeout(stack: Stack) -> None:
    stack.prometheus.wait_for('up{job="silent"} == 0')
    durations = stack.prometheus.wait_for('scrape_duration_seconds{job="silent"}')
    assert 1.0 < prom.value(durations[0]) < SILENT_SCRAPE_TIMEOUT, durations
    # Prometheus saw an HTTP answer: its error names our status, not "context deadline exceeded".
    (target,) = [t for t in stack.prometheus.targets() if t["labels"]["job"] == "silent"]
    assert "504" in target["lastError"], target
    stack.prometheus.wait_for(
        'local_exporter_bridge_requests_total{job="bridge",selector="silent",outcome="timeout"} > 0'
    )


# --- the process: signals, a busy port, a bad config


def file_selector(directory: Path) -> str:
    (directory / "file.prom").write_bytes(example_payload())
    return f'file = {{ kind = "file", path = "{directory / "file.prom"}" }}\n'


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stops_cleanly_on_signal(short_dir: Path, signum: signal.Signals) -> None:
    port = free_port()
    bridge = start_bridge(short_dir, port, file_selector(short_dir))
    try:
        wait_http(f"{bridge.url}/-/ready", START_TIMEOUT, watch=[bridge.child])
        assert http_get(f"{bridge.url}/bridge?selector=file").status == 200
        bridge.child.signal(signum)
        code = bridge.child.wait(timeout=10)
    finally:
        stop(bridge.child)
    assert code == 0, bridge.child.describe()
    assert "Traceback" not in bridge.child.stderr(), bridge.child.describe()
    poll(f"port {port} released", lambda: port_is_free(port) or None, 5)


def test_port_in_use_is_one_line_and_exit_1(short_dir: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind((LOOPBACK, 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        bridge = start_bridge(short_dir, port, file_selector(short_dir))
        try:
            code = bridge.child.wait(timeout=START_TIMEOUT)
        finally:
            stop(bridge.child)
    stderr = bridge.child.stderr()
    assert code == 1, bridge.child.describe()
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert f"{LOOPBACK}:{port}" in stderr
    assert "Traceback" not in stderr


def test_bad_config_lists_the_problems_and_exits_1(short_dir: Path) -> None:
    selectors = 'a = { kind = "carrier-pigeon", path = "/run/a" }\nb = { kind = "file", path = "relative/path" }\n'
    bridge = start_bridge(short_dir, free_port(), selectors)
    try:
        code = bridge.child.wait(timeout=START_TIMEOUT)
    finally:
        stop(bridge.child)
    stderr = bridge.child.stderr()
    assert code == 1, bridge.child.describe()
    assert "selectors.a" in stderr and "kind" in stderr, stderr
    assert "selectors.b" in stderr and "path" in stderr, stderr
    assert "not starting" in stderr
    assert "Traceback" not in stderr
