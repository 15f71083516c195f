"""The demo's servers (demo/servers.py): a port the last run left in TIME_WAIT is free for the
next run, as the servers themselves would bind it, a listening port is not; and a server is ready
only while it runs, not because something else answers on its port."""

from __future__ import annotations

import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from local_exporter.demo.servers import DemoError, check_port, start, stop
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


def test_a_server_that_exits_is_not_taken_as_ready_when_another_answers_on_its_port(tmp_path: Path) -> None:
    """Two servers given one port: the second fails to bind and exits, while the first answers
    its readiness URL. The demo must say the second did not start, not carry on without it."""

    class Ready(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    other = ThreadingHTTPServer((LOOPBACK, 0), Ready)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        url = f"http://{LOOPBACK}:{other.server_address[1]}"
        exits = [sys.executable, "-c", "import sys; print('bind: address already in use'); sys.exit(1)"]
        with pytest.raises(DemoError, match=r"Second did not start .*\n  bind: address already in use"):
            start("Second", exits, url, tmp_path / "second.log")
        # The same URL with a server that keeps running is ready.
        runs = [sys.executable, "-c", "import time; time.sleep(30)"]
        server = start("Third", runs, url, tmp_path / "third.log")
        assert server.process.poll() is None
        stop(server)
        assert server.process.poll() is not None
    finally:
        other.shutdown()
        other.server_close()
