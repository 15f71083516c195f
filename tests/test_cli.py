"""The main-job command (`local-exporter example`) as a new user runs it, in a real process."""

from __future__ import annotations

import argparse
import importlib
import json
import re
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from local_exporter.cli import LAZY_COMMANDS, build_parser
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


# --- serve's flags, as Prometheus exporters spell them ------------------------------------------


def _config(directory: Path, port: int) -> Path:
    metrics = directory / "node.prom"
    metrics.write_text("# TYPE node_up gauge\nnode_up 1\n")
    config = directory / "config.toml"
    config.write_text(
        f'[service]\naddress = "127.0.0.1"\nport = {port}\n\n[bridge.selectors]\nnode = {{ kind = "file", path = "{metrics}" }}\n'
    )
    return config


def test_web_listen_address_wins_over_the_config_and_a_start_says_where(tmp_path: Path) -> None:
    port = free_port()
    config = _config(tmp_path, free_port())
    args = local_exporter_args("serve", "-c", str(config), "--web.listen-address", f"127.0.0.1:{port}")
    with running("serve", args, tmp_path, python_env()) as child:
        wait_http(f"http://127.0.0.1:{port}/-/ready", 20, watch=[child])
        assert http_get(f"http://127.0.0.1:{port}/bridge?selector=node").status == 200
        child.signal(signal.SIGTERM)
        assert child.wait(10) == 0, child.describe()
    # One info line at the default level: where it listens, and how many selectors it serves.
    lines = child.stderr().splitlines()
    assert [line for line in lines if 'msg="listening"' in line or "msg=listening" in line] == [
        next(line for line in lines if "listening" in line)
    ]
    assert f"url=http://127.0.0.1:{port}" in child.stderr() and "selectors=1" in child.stderr()


@pytest.mark.parametrize("flag", ["--log.format", "--log-format"])
def test_log_format_and_its_old_spelling(tmp_path: Path, flag: str) -> None:
    port = free_port()
    args = local_exporter_args("serve", "-c", str(_config(tmp_path, port)), flag, "json", "--log.level", "debug")
    with running("serve", args, tmp_path, python_env()) as child:
        wait_http(f"http://127.0.0.1:{port}/-/ready", 20, watch=[child])
        child.signal(signal.SIGTERM)
        assert child.wait(10) == 0, child.describe()
    records = [json.loads(line) for line in child.stderr().splitlines()]
    assert {"debug", "info"} <= {record["level"] for record in records}
    assert any(record["msg"] == "listening" and record["selectors"] == 1 for record in records)


def test_log_level_warn_keeps_a_start_quiet(tmp_path: Path) -> None:
    port = free_port()
    args = local_exporter_args("serve", "-c", str(_config(tmp_path, port)), "--log.level", "warn")
    with running("serve", args, tmp_path, python_env()) as child:
        wait_http(f"http://127.0.0.1:{port}/-/ready", 20, watch=[child])
        child.signal(signal.SIGTERM)
        assert child.wait(10) == 0, child.describe()
    assert child.stderr() == ""


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("9598", "is not HOST:PORT"),
        ("127.0.0.1:0", "a port from 1 to 65535"),
        ("::1:9598", "write an IPv6 address in brackets"),
    ],
)
def test_a_bad_listen_address_names_the_flag(tmp_path: Path, value: str, reason: str) -> None:
    args = local_exporter_args("serve", "-c", str(_config(tmp_path, free_port())), "--web.listen-address", value)
    result = subprocess.run(args, env=python_env(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "--web.listen-address" in result.stderr and reason in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("use_flag", [True, False])
def test_a_port_in_use_names_where_it_came_from(tmp_path: Path, use_flag: bool) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = _config(tmp_path, port)
        flag = ["--web.listen-address", f"127.0.0.1:{port}"] if use_flag else []
        args = local_exporter_args("serve", "-c", str(config), *flag)
        result = subprocess.run(args, env=python_env(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    where = "--web.listen-address" if use_flag else f"[service] address and port of {config}"
    assert f"cannot listen on 127.0.0.1:{port} ({where}): Address already in use" in result.stderr


def test_version_names_the_revision() -> None:
    result = subprocess.run(
        local_exporter_args("--version"), env=python_env(), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0
    assert re.fullmatch(r"local-exporter \S+ \(revision ([0-9a-f]{12}|unknown), python 3\.\d+\.\d+\)\n", result.stdout)


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("example", "--port", "99999"), "argument --port: 99999 is not a port from 1 to 65535"),
        (("example", "--port", "0"), "argument --port: 0 is not a port from 1 to 65535"),
        (("demo", "--prometheus-port", "x"), "argument --prometheus-port: 'x' is not a port number"),
        (("simulate", "--airlock-port", "70000"), "argument --airlock-port: 70000 is not a port from 0 to 65535"),
    ],
)
def test_a_bad_port_names_its_flag(args: tuple[str, ...], reason: str) -> None:
    result = subprocess.run(local_exporter_args(*args), env=python_env(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert reason in result.stderr and "Traceback" not in result.stderr and ".toml" not in result.stderr


def test_receive_prints_each_alert_once_and_answers_its_health_check(tmp_path: Path) -> None:
    port = free_port()
    with running("receive", local_exporter_args("receive", "--port", str(port)), tmp_path, python_env()) as child:
        wait_http(f"http://127.0.0.1:{port}/-/healthy", 20, watch=[child])
        alert = {
            "status": "firing",
            "labels": {"alertname": "FleetAgentDown", "instance": "host-1"},
            "annotations": {"summary": "The agent is down."},
        }
        notification = json.dumps({"alerts": [alert]}).encode()
        for _ in range(2):  # Alertmanager repeats a group's alerts in every notification
            request = urllib.request.Request(f"http://127.0.0.1:{port}/ticket", data=notification, method="POST")
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.status == 200
        bad = urllib.request.Request(f"http://127.0.0.1:{port}/ticket", data=b"{", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad, timeout=5)
        refused.value.close()
        assert refused.value.code == 400
    lines = (tmp_path / "receive.out").read_text().splitlines()
    assert lines[0].startswith(f"local-exporter receive: webhooks at http://127.0.0.1:{port}/pager")
    assert [line for line in lines if "FleetAgentDown" in line] == [
        next(line for line in lines if "FIRING" in line and "host-1" in line and "The agent is down." in line)
    ]


def test_receive_on_a_port_in_use_names_its_flags() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = local_exporter_args("receive", "--port", str(port))
        result = subprocess.run(args, env=python_env(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert (
        f"cannot listen on 127.0.0.1:{port} (--address, --port)" in result.stderr and "Traceback" not in result.stderr
    )


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, subparser in commands.choices.items():
        if name in LAZY_COMMANDS:
            importlib.import_module(LAZY_COMMANDS[name][1]).configure(subparser)
    return {"": parser, **commands.choices}


def test_every_command_and_option_says_what_it_does() -> None:
    for name, parser in _subcommands().items():
        for action in parser._actions:
            assert action.help and action.help.strip(), (name, action.option_strings or action.dest)


def test_the_bridge_config_flag_is_offered_only_where_it_is_read() -> None:
    offered = {name for name, parser in _subcommands().items() if "-c" in parser._option_string_actions}
    # Top level too, as the original's persistent flag: it reaches serve and check-config.
    assert offered == {"", "serve", "check-config"}
