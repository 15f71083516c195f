"""`local-exporter simulate` as a user runs it: help, presets, checks, backfill, a live run."""

from __future__ import annotations

import json
import re
import resource
import signal
import subprocess
from pathlib import Path

import pytest

from local_exporter.sim import scenario, scenario_file
from local_exporter.sim.arguments import EPILOG
from tests.support.processes import http_get, local_exporter_args, poll, python_env, running, wait_http

FAULTS_SCENARIO = """\
name = "two-faults"
duration = "30m"

[fleet]
hosts = 3
version = "40.1"

[[releases]]
version = "40.2"
at = "5m"

[[faults]]
kind = "agent_down"
names = ["host-0002"]
start = "10m"
"""


def simulate(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        local_exporter_args("simulate", *args), capture_output=True, text=True, timeout=120, env=python_env(), cwd=cwd
    )


def test_help_explains_scenarios_faults_and_both_modes() -> None:
    result = simulate("--help")
    assert result.returncode == 0
    for word in ("[[releases]]", "[[faults]]", "rollout", "--speed", "--backfill", "docs/simulator.md"):
        assert word in result.stdout
    for kind in scenario.FAULT_KINDS:
        assert kind in " ".join(result.stdout.split())
    assert EPILOG.split()[0] in result.stdout


def test_list_and_print_presets() -> None:
    listed = simulate("--list-presets")
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == list(scenario_file.PRESETS)
    printed = simulate("--print-preset", "stalled")
    assert printed.returncode == 0
    assert scenario_file.parse(printed.stdout) == scenario_file.preset("stalled")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preset", "nope"], "local-exporter simulate: no preset 'nope'; presets: rollout,"),
        (["--print-preset", "nope"], "local-exporter simulate: no preset 'nope'"),
        (["--backfill", "x.om", "--interval", "soon"], "local-exporter simulate: --interval:"),
        (["--speed", "0"], "local-exporter simulate: --speed: must be positive"),
        (["--transport", "dbus"], "local-exporter simulate: the dbus transport needs a bus address"),
    ],
)
def test_bad_arguments_are_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = simulate(*args, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_scenario_file_lists_every_problem_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\nduration = "soon"\n[fleet]\nhosts = 0\nversion = "40.1"\ncolour = "red"\n')
    result = simulate("--scenario", str(path), "--check")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{path}:2: duration: ")
    assert lines[1].startswith(f"{path}:4: fleet.hosts: ")
    assert lines[2].startswith(f"{path}:6: fleet.colour: ")
    assert lines[-1] == f"{path}: 3 problem(s); not simulating"


def test_check_accepts_a_good_scenario(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text(FAULTS_SCENARIO)
    result = simulate("--scenario", str(path), "--check")
    assert (result.returncode, result.stdout) == (0, f"{path}: OK, 3 hosts, 30 min\n")


def test_backfill_writes_openmetrics_and_says_how_to_load_it(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(FAULTS_SCENARIO)
    out = tmp_path / "history.om"
    result = simulate("--scenario", str(path), "--backfill", str(out), "--interval", "1m")
    assert result.returncode == 0, result.stderr
    assert f"promtool tsdb create-blocks-from openmetrics {out} DATA_DIR" in result.stdout
    assert "3 hosts, 31 scrapes each" in result.stdout
    text = out.read_text()
    assert text.endswith("# EOF\n")
    assert 'up{instance="host-0002",job="zincati"} 0 ' in text


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_live_run_serves_every_host_and_stops_cleanly(short_dir: Path, tmp_path: Path, signum: signal.Signals) -> None:
    args = local_exporter_args(
        "simulate",
        "--preset",
        "stalled",
        "--speed",
        "60",
        "--dir",
        str(short_dir),
        "--bridge-port-base",
        "0",
        "--airlock-port",
        "0",
    )
    with running("simulate", args, tmp_path, python_env()) as child:
        poll("the start-up summary", lambda: "bridges   http://" in child.stdout() or None, 20, watch=[child])
        entries = json.loads((short_dir / "prometheus" / "bridges.json").read_text())
        assert len(entries) == scenario_file.preset("stalled").fleet.hosts
        for entry in entries[:3]:
            base = f"http://{entry['targets'][0]}"
            wait_http(f"{base}/-/ready", 10, watch=[child])
            answer = http_get(f"{base}/bridge?selector=zincati")
            assert answer.status == 200
            assert b"zincati_identity_os_info{" in answer.body
        child.signal(signum)
        assert child.wait(15) == 0, child.describe()
    assert "Traceback" not in child.stderr()
    assert not list(short_dir.glob("hosts/*/zincati.sock"))


def test_too_many_hosts_for_the_open_file_limit_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_text(FAULTS_SCENARIO.replace("hosts = 3", "hosts = 200"))

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))

    result = subprocess.run(
        local_exporter_args("simulate", "--scenario", str(path), "--dir", str(tmp_path / "sim")),
        capture_output=True,
        text=True,
        timeout=60,
        env=python_env(),
        preexec_fn=low_limit,
    )
    assert result.returncode == 1
    assert result.stderr == (
        "local-exporter simulate: 200 hosts need about 856 open files and the hard limit is 512: "
        "raise it (ulimit -Hn) or simulate at most 85 hosts\n"
    )
    assert not (tmp_path / "sim").exists()


def test_a_backfill_with_rpm_ostree_holds_what_each_hosts_bridge_reported(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(FAULTS_SCENARIO)
    out = tmp_path / "history.om"
    result = simulate("--scenario", str(path), "--backfill", str(out), "--interval", "1m", "--rpm-ostree")
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    # Host 2's agent is down at times: its bridge still answers (up 1), with its phase agent_down.
    assert 'up{instance="host-0002",job="zincati"} 0 ' not in text
    phases = {
        re.search(r'phase="(\w+)"', line).group(1)  # type: ignore[union-attr]
        for line in text.splitlines()
        if line.startswith("os_update_phase{") and 'instance="host-0002"' in line
    }
    assert {"idle", "rebooted", "agent_down"} <= phases, phases
