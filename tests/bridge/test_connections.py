"""The connection cap and the open-file limit (bridge/connections.py), against real `serve`
processes: the soft limit raised to the hard one at start; under a soft limit of 1024, a flood of
connections that send half a header displaces itself and never locks out `/-/healthy`; at the
cap with every connection past its header, a new one is closed and counted; the listen backlog
is the configured one."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import (
    LOOPBACK,
    Child,
    free_port,
    http_get,
    local_exporter_args,
    python_env,
    running,
    scraped,
    wait_http,
)

FLOOD = 1100


def _config(directory: Path, port: int, service: str = "") -> Path:
    metrics = directory / "node.prom"
    metrics.write_text("# TYPE node_up gauge\nnode_up 1\n")
    config = directory / "config.toml"
    config.write_text(
        f'[service]\naddress = "{LOOPBACK}"\nport = {port}\n{service}\n'
        f'[bridge.selectors]\nnode = {{ kind = "file", path = "{metrics}" }}\n'
    )
    return config


def _limited(soft: int, hard: int, args: list[str]) -> list[str]:
    """`args` run under RLIMIT_NOFILE (soft, hard), as a unit's LimitNOFILE would start it."""
    setup = (
        "import os, resource, sys; "
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard})); "
        "os.execv(sys.argv[1], sys.argv[1:])"
    )
    return [sys.executable, "-c", setup, *args]


def _open_files_limit(child: Child) -> tuple[int, int]:
    line = next(
        line for line in Path(f"/proc/{child.process.pid}/limits").read_text().splitlines() if "open files" in line
    )
    soft, hard = line.split()[3:5]
    return int(soft), int(hard)


@contextlib.contextmanager
def _serving(tmp_path: Path, soft: int, hard: int, service: str = "") -> Iterator[tuple[str, Child]]:
    port = free_port()
    args = _limited(soft, hard, local_exporter_args("serve", "-c", str(_config(tmp_path, port, service))))
    with running("serve", args, tmp_path, env=python_env()) as child:
        base = f"http://{LOOPBACK}:{port}"
        wait_http(f"{base}/-/ready", 20, watch=[child])
        yield base, child


def test_the_soft_open_file_limit_is_raised_to_the_hard_one(tmp_path: Path) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip(f"this machine's hard open-file limit is {hard}")
    with _serving(tmp_path, 1024, 4096) as (_, child):
        assert _open_files_limit(child) == (4096, 4096)


@contextlib.contextmanager
def _own_limit(wanted: int) -> Iterator[None]:
    """This test process holds `wanted` sockets of its own: raise its soft limit for the test."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"this machine's hard open-file limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_half_open_connections_never_lock_out_a_health_check_under_a_1024_limit(tmp_path: Path) -> None:
    flood: list[socket.socket] = []
    with _own_limit(FLOOD + 256), _serving(tmp_path, 1024, 1024) as (base, child):
        port = int(base.rsplit(":", 1)[1])
        try:
            for _ in range(FLOOD):
                client = socket.create_connection((LOOPBACK, port), timeout=5)
                client.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x")  # half a header, never finished
                flood.append(client)
            # Every one of them waits for its header: a health check takes the oldest one's place.
            for _ in range(5):
                assert http_get(f"{base}/-/healthy", timeout=5).status == 200
            displaced = scraped(base, 'local_exporter_bridge_connections_dropped_total{reason="displaced"}')
            cap = 1024 - 64
            assert displaced >= FLOOD - cap
            assert scraped(base, 'local_exporter_bridge_connections_dropped_total{reason="refused"}') == 0
            assert scraped(base, "local_exporter_bridge_connections_open") <= cap + 1
            assert len(os.listdir(f"/proc/{child.process.pid}/fd")) < 1024
        finally:
            for client in flood:
                client.close()
    warnings = [line for line in child.stderr().splitlines() if "connection cap reached" in line]
    # Logged once, not once per connection: the next line may come a minute later at the earliest.
    assert len(warnings) == 1, warnings
    assert "raise service.max_connections or LimitNOFILE" in warnings[0]


def test_at_the_cap_with_every_connection_busy_a_new_one_is_closed_and_counted(tmp_path: Path) -> None:
    with _serving(tmp_path, 1024, 1024, "max_connections = 2") as (base, _child):
        port = int(base.rsplit(":", 1)[1])
        kept = []
        try:
            for _ in range(2):
                # A complete request on a keep-alive connection: past its header, never displaced.
                client = socket.create_connection((LOOPBACK, port), timeout=5)
                client.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
                assert client.recv(4096).startswith(b"HTTP/1.1 200")
                kept.append(client)
            extra = socket.create_connection((LOOPBACK, port), timeout=5)
            with extra:
                extra.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
                with contextlib.suppress(ConnectionResetError):
                    assert extra.recv(4096) == b""  # closed without an answer
            # The kept connections still serve: one asks for the metrics.
            kept[0].sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while b'reason="refused"} ' not in answer:
                chunk = kept[0].recv(65536)
                assert chunk, answer[-400:]
                answer += chunk
            assert b'local_exporter_bridge_connections_dropped_total{reason="refused"} 1.0' in answer
        finally:
            for client in kept:
                client.close()


def test_the_listen_backlog_is_the_configured_one(tmp_path: Path) -> None:
    backlog = 8
    with _serving(tmp_path, 1024, 1024, f"listen_backlog = {backlog}") as (base, child):
        port = int(base.rsplit(":", 1)[1])
        child.process.send_signal(signal.SIGSTOP)  # nothing is accepted: only the kernel's queue fills
        pending: list[socket.socket] = []
        try:
            completed = 0
            for _ in range(backlog + 8):
                client = socket.socket()
                client.setblocking(False)
                client.connect_ex((LOOPBACK, port))
                pending.append(client)
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                completed = sum(
                    1 for c in pending if c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 and _connected(c)
                )
                time.sleep(0.1)
            # Linux completes backlog + 1 handshakes and drops the rest's SYNs until one is accepted.
            assert completed == backlog + 1
        finally:
            child.process.send_signal(signal.SIGCONT)
            for client in pending:
                client.close()
        assert http_get(f"{base}/-/healthy").status == 200


def _connected(client: socket.socket) -> bool:
    try:
        client.getpeername()
    except OSError:
        return False
    return True
