"""The main-job command (`local-exporter example`) as a new user runs it, in a real process."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from local_exporter.demo.example import example_payload
from tests.support.processes import free_port, http_get, local_exporter_args, python_env, running, wait_http


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_example_serves_a_working_bridge_and_stops_cleanly(tmp_path: Path, signum: signal.Signals) -> None:
    port = free_port()
    args = local_exporter_args("example", "--port", str(port))
    with running("example", args, tmp_path, python_env()) as child:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/-/ready", 20, watch=[child])
        for selector in ("zincati", "zincati-file"):
            answer = http_get(f"{base}/bridge?selector={selector}")
            assert answer.status == 200
            assert answer.body == example_payload()
            assert answer.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert f"{base}/bridge?selector=zincati" in child.stdout()
        child.signal(signum)
        assert child.wait(10) == 0, child.describe()
    assert "Traceback" not in child.stderr()
    # The example's temporary directory (socket and file) is gone with it.
    uds_line = next(line for line in child.stdout().splitlines() if "(uds " in line)
    socket_path = Path(uds_line.split("(uds ")[1].rstrip(")"))
    assert not socket_path.exists()
    assert not socket_path.parent.exists()
