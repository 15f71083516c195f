"""The demo's port check (demo/servers.py check_port): a port the last run left in TIME_WAIT is
free for the next run, as the servers themselves would bind it; a listening port is not."""

from __future__ import annotations

import socket

import pytest

from local_exporter.demo.servers import DemoError, check_port
from tests.support.processes import LOOPBACK


def _time_wait_port() -> int:
    """A port whose only socket is in TIME_WAIT: the listening side closed its connection first."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, 0))
        listener.listen()
        port: int = listener.getsockname()[1]
        client = socket.create_connection((LOOPBACK, port))
        accepted, _ = listener.accept()
        accepted.close()  # the active close: TIME_WAIT stays on the server's port
        client.recv(1)
        client.close()
    return port


def test_a_port_left_in_time_wait_is_free_for_the_next_run() -> None:
    port = _time_wait_port()
    check_port(LOOPBACK, port, "--prometheus-port")
    # A plain bind, as the check did before, trips over it: the check is what changed.
    with socket.socket() as plain, pytest.raises(OSError, match="Address already in use"):
        plain.bind((LOOPBACK, port))


def test_a_listening_port_is_refused_with_its_flag() -> None:
    with socket.socket() as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(DemoError, match=f"port {port} on {LOOPBACK} is not available .*--alertmanager-port"):
            check_port(LOOPBACK, port, "--alertmanager-port")
