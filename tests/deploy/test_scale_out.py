"""compose/scale-out.yaml and its files (bundle/scale_out.py): Debian's docker-compose accepts the
stack, promtool each shard's config in agent mode, vmalert the flags and rule files it is given,
and the shards split the targets between them. The topology itself runs live in
tests/bundle/test_victoria_live.py and `demo --shards` (tests/demo/test_command.py)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from local_exporter.bundle import compose, dashboards, provisioning, scale_out
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.generate import VMALERT_ALERTS_PATH, render
from tests.support.prometheus import PROMTOOL
from tests.support.victoria import VMALERT

ROOT = Path(__file__).resolve().parents[2]
DIRECTORY = ROOT / "compose"
STACK_PATH = ROOT / scale_out.COMPOSE_PATH
STACK: dict[str, Any] = yaml.safe_load(STACK_PATH.read_text())
SERVICES: dict[str, Any] = STACK["services"]
CONFIG = BundleConfig()
SHARDS = [f"prometheus-shard-{n}" for n in range(CONFIG.scale_out_shards)]
DOCKER_COMPOSE = shutil.which("docker-compose")

needs_docker_compose = pytest.mark.skipif(DOCKER_COMPOSE is None, reason="Debian's docker-compose is not installed")


def _docker_compose(*args: str, file: Path = STACK_PATH) -> subprocess.CompletedProcess[str]:
    assert DOCKER_COMPOSE is not None
    return subprocess.run(
        [DOCKER_COMPOSE, "-f", str(file), *args], capture_output=True, text=True, timeout=60, cwd=file.parent
    )


def _mounts(service: str) -> dict[str, tuple[str, str]]:
    """Target -> (source, mode) of a service's volumes."""
    out = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target, *mode = volume.split(":")
        out[target] = (source, mode[0] if mode else "rw")
    return out


def _shard(n: int) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / scale_out.shard_path(n)).read_text())
    return data


@needs_docker_compose
def test_docker_compose_accepts_the_stack_with_and_without_the_demo_profile() -> None:
    assert _docker_compose("config", "-q").returncode == 0
    services = _docker_compose("--profile", "demo", "config", "--services")
    assert services.returncode == 0, services.stderr
    expected = {"alertmanager", "bridge", "fleet", "grafana", "receiver", "victoriametrics", "vmalert", *SHARDS}
    assert set(services.stdout.split()) == expected


@needs_docker_compose
def test_docker_compose_would_reject_a_broken_stack(tmp_path: Path) -> None:
    broken = STACK_PATH.read_text().replace("victoriametrics:\n        condition", "victoria:\n        condition", 1)
    assert broken != STACK_PATH.read_text()
    path = DIRECTORY / f".broken-{tmp_path.name}.yaml"  # beside the stack: its relative mounts resolve
    try:
        path.write_text(broken)
        assert _docker_compose("config", "-q", file=path).returncode != 0
    finally:
        path.unlink()


def test_every_shard_config_is_valid_in_agent_mode_and_one_without_agent_mode_is_not() -> None:
    for n in range(CONFIG.scale_out_shards):
        path = ROOT / scale_out.shard_path(n)
        result = subprocess.run([PROMTOOL, "check", "config", "--agent", str(path)], capture_output=True, text=True)
        assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr
        command = SERVICES[SHARDS[n]]["command"]
        assert "--enable-feature=agent" in command and "--storage.agent.path=/prometheus" in command
        assert _mounts(SHARDS[n])["/etc/prometheus/prometheus.yml"] == (f"./prometheus/shard-{n}.yml", "ro")


def test_the_shards_scrape_the_single_stacks_jobs_each_keeping_its_own_share() -> None:
    single = compose.prometheus_data(CONFIG)
    for n in range(CONFIG.scale_out_shards):
        data = _shard(n)
        assert data["global"]["external_labels"] == single["global"]["external_labels"]
        assert data["remote_write"] == [{"url": "http://victoriametrics:8428/api/v1/write"}]
        assert "rule_files" not in data and "alerting" not in data  # vmalert evaluates and alerts
        assert [job["job_name"] for job in data["scrape_configs"]] == [j["job_name"] for j in single["scrape_configs"]]
        for job, original in zip(data["scrape_configs"], single["scrape_configs"], strict=True):
            *own, hashmod, keep = job["relabel_configs"]
            assert own == original.get("relabel_configs", [])
            assert hashmod == {
                "source_labels": ["__address__"],
                "modulus": CONFIG.scale_out_shards,
                "target_label": "__tmp_shard",
                "action": "hashmod",
            }
            assert keep == {"source_labels": ["__tmp_shard"], "regex": str(n), "action": "keep"}
        assert _mounts(SHARDS[n])[compose.SIM_DIRECTORY] == ("sim", "ro")


def test_the_number_of_shards_is_the_configs() -> None:
    files = render(replace(CONFIG, scale_out_shards=3))
    assert sorted(path for path in files if "/shard-" in path) == [scale_out.shard_path(n) for n in range(3)]
    stack = yaml.safe_load(files[scale_out.COMPOSE_PATH])
    assert sorted(name for name in stack["services"] if name.startswith("prometheus-shard-")) == [
        f"prometheus-shard-{n}" for n in range(3)
    ]
    assert '"2"' not in files[scale_out.shard_path(2)] and "modulus: 3" in files[scale_out.shard_path(2)]


def test_vmalert_takes_the_flags_and_rule_files_it_is_given(tmp_path: Path) -> None:
    command = SERVICES["vmalert"]["command"]
    mounts = _mounts("vmalert")
    # The rule files as mounted: recording.yml and the alerts vmalert 1.79 takes.
    assert mounts[scale_out.VMALERT_RULES[0]] == ("../prometheus/rules/recording.yml", "ro")
    assert mounts[scale_out.VMALERT_RULES[1]] == (f"../{VMALERT_ALERTS_PATH}", "ro")
    here = []  # the command with each rule file where the stack mounts it from
    for flag in command:
        if flag.startswith("-rule="):
            source, _mode = mounts[flag.removeprefix("-rule=")]
            flag = f"-rule={(DIRECTORY / source).resolve()}"
        here.append(flag)
    assert [flag for flag in here if flag.startswith("-rule=")] == [
        f"-rule={ROOT / 'prometheus' / 'rules' / 'recording.yml'}",
        f"-rule={ROOT / VMALERT_ALERTS_PATH}",
    ]
    assert "-external.label=cluster=compose" in command and "-notifier.url=http://alertmanager:9093" in command
    checked = subprocess.run([VMALERT, *here, "-dryRun"], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr[-2000:]
    # A flag vmalert does not know is refused, so the check above can fail.
    refused = subprocess.run([VMALERT, *here, "-dryRun", "-no.such.flag=1"], capture_output=True, text=True)
    assert refused.returncode != 0 and "no.such.flag" in refused.stdout + refused.stderr


def test_grafana_reads_victoriametrics_with_the_dashboards_data_source_uid() -> None:
    mounts = _mounts("grafana")
    source_dir, mode = mounts["/etc/grafana/provisioning/datasources"]
    assert mode == "ro" and (DIRECTORY / source_dir).resolve() == (ROOT / scale_out.DATASOURCE_PATH).parent
    provider, _ = mounts["/etc/grafana/provisioning/dashboards"]
    assert (DIRECTORY / provider).resolve() == (ROOT / provisioning.DASHBOARDS_PATH).parent
    assert (DIRECTORY / mounts[provisioning.DASHBOARDS_MOUNT][0]).resolve() == ROOT / dashboards.DIRECTORY
    (source,) = yaml.safe_load((ROOT / scale_out.DATASOURCE_PATH).read_text())["datasources"]
    assert source["uid"] == provisioning.DATASOURCE_UID and source["type"] == "prometheus"
    assert source["url"] == "http://victoriametrics:8428" and "8428:8428" in SERVICES["victoriametrics"]["ports"]
    assert set(SERVICES["grafana"]["depends_on"]) == {"victoriametrics"}


def test_every_bind_mount_is_read_only_and_exists_and_every_service_waits_for_what_it_needs() -> None:
    named = set(STACK["volumes"])
    for name, service in SERVICES.items():
        assert service["healthcheck"]["test"][0] == "CMD", name
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in SERVICES and condition == {"condition": "service_healthy"}, name
        for target, (source, mode) in _mounts(name).items():
            if source in named:
                continue
            assert mode == "ro", (name, target)
            if source not in (compose.ZINCATI_SOCKETS, compose.DBUS_DIRECTORY):
                assert (DIRECTORY / source).exists(), (name, source)
    # The single stack's Prometheus is not in it; every other service of that stack is, unchanged but Grafana.
    single = compose.compose_data(CONFIG)["services"]
    assert "prometheus" not in SERVICES
    assert {name: SERVICES[name] for name in single if name not in ("prometheus", "grafana")} == {
        name: service for name, service in single.items() if name not in ("prometheus", "grafana")
    }
