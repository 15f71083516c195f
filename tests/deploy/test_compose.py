"""compose/: Debian's docker-compose accepts the stack, promtool its Prometheus config, and every
file it mounts, provisions or scrapes is the one the bundle generates. (The docker engine cannot
run here: docs/deploy.md says so.)"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from local_exporter.bundle import compose, dashboards, provisioning
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.prometheus_config import job_name
from tests.support.alertmanager import AMTOOL
from tests.support.prometheus import PROMTOOL

ROOT = Path(__file__).resolve().parents[2]
DIRECTORY = ROOT / "compose"
COMPOSE = ROOT / compose.COMPOSE_PATH
DOCKER_COMPOSE = shutil.which("docker-compose")
CONFIG = BundleConfig()
STACK: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
SERVICES: dict[str, Any] = STACK["services"]

needs_docker_compose = pytest.mark.skipif(DOCKER_COMPOSE is None, reason="Debian's docker-compose is not installed")


def _docker_compose(*args: str, file: Path = COMPOSE) -> subprocess.CompletedProcess[str]:
    assert DOCKER_COMPOSE is not None
    return subprocess.run(
        [DOCKER_COMPOSE, "-f", str(file), *args], capture_output=True, text=True, timeout=60, cwd=file.parent
    )


@needs_docker_compose
def test_docker_compose_accepts_the_stack_with_and_without_the_demo_profile() -> None:
    assert _docker_compose("config", "-q").returncode == 0
    services = _docker_compose("--profile", "demo", "config", "--services")
    assert services.returncode == 0, services.stderr
    assert sorted(services.stdout.split()) == ["alertmanager", "bridge", "fleet", "grafana", "prometheus", "receiver"]
    # Only the simulated fleet is in the demo profile (docker-compose 1.29 lists every service).
    assert {name: s.get("profiles") for name, s in SERVICES.items() if s.get("profiles")} == {"fleet": ["demo"]}


@needs_docker_compose
def test_docker_compose_would_reject_a_broken_stack(tmp_path: Path) -> None:
    broken = COMPOSE.read_text().replace("bridge:\n        condition", "bridgee:\n        condition", 1)
    path = tmp_path / "compose.yaml"
    path.write_text(broken)
    assert _docker_compose("config", "-q", file=path).returncode != 0


def test_promtool_accepts_the_stacks_prometheus_config() -> None:
    result = subprocess.run(
        [PROMTOOL, "check", "config", str(ROOT / compose.PROMETHEUS_PATH)], capture_output=True, text=True
    )
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def _mounts(service: str) -> list[tuple[str, str, str]]:
    out = []
    for volume in SERVICES[service].get("volumes", []):
        source, target, *mode = volume.split(":")
        out.append((source, target, mode[0] if mode else "rw"))
    return out


def test_every_bind_mount_is_read_only_and_exists() -> None:
    named = set(STACK["volumes"])
    for service in SERVICES:
        for source, _target, mode in _mounts(service):
            if source in named:
                continue  # a server's own data, or the simulated fleet's targets
            assert mode == "ro", (service, source)
            if source != compose.ZINCATI_SOCKETS:
                assert (DIRECTORY / source).exists(), (service, source)
    # The bridge sees the agent's socket directory and the system bus read-only, and writes only
    # its own volume (the os_update boot record).
    assert _mounts("bridge") == [
        (compose.ZINCATI_SOCKETS, compose.ZINCATI_SOCKETS, "ro"),
        (compose.DBUS_DIRECTORY, compose.DBUS_DIRECTORY, "ro"),
        ("bridge-state", compose.STATE_DIRECTORY, "rw"),
    ]
    # Only the fleet writes the shared targets; Prometheus reads them.
    assert ("sim", compose.SIM_DIRECTORY, "ro") in _mounts("prometheus")


def test_every_service_has_a_healthcheck_and_waits_for_what_it_needs() -> None:
    for name, service in SERVICES.items():
        assert service["healthcheck"]["test"][0] == "CMD", name
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in SERVICES and condition == {"condition": "service_healthy"}, name
    assert set(SERVICES["grafana"]["depends_on"]) == {"prometheus"}
    assert any("/-/ready" in part for part in SERVICES["prometheus"]["healthcheck"]["test"])
    assert any("/api/health" in part for part in SERVICES["grafana"]["healthcheck"]["test"])


def test_grafana_provisioning_points_at_the_stack() -> None:
    mounts = {target: source for source, target, _ in _mounts("grafana")}
    assert (DIRECTORY / mounts["/etc/grafana/provisioning"]).resolve() == (ROOT / provisioning.DIRECTORY).resolve()
    assert (DIRECTORY / mounts[provisioning.DASHBOARDS_MOUNT]).resolve() == (ROOT / dashboards.DIRECTORY).resolve()
    (source,) = yaml.safe_load((ROOT / provisioning.DATASOURCE_PATH).read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090" and "9090:9090" in SERVICES["prometheus"]["ports"]
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(provisioning.DASHBOARDS_MOUNT + "/")
    assert (ROOT / dashboards.DIRECTORY / Path(home).name).exists()


def test_prometheus_scrapes_the_jobs_the_rules_select_and_loads_the_mounted_rules() -> None:
    data = yaml.safe_load((ROOT / compose.PROMETHEUS_PATH).read_text())
    names = [job["job_name"] for job in data["scrape_configs"]]
    assert names == [job_name(s) for s in (CONFIG.agent_selector, CONFIG.bridge_selector, CONFIG.airlock_selector)]
    mounts = {target: source for source, target, _ in _mounts("prometheus")}
    assert data["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    assert (DIRECTORY / mounts["/etc/prometheus/rules"]).resolve() == (ROOT / "prometheus" / "rules").resolve()
    assert data["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    # The simulated fleet writes its targets where Prometheus reads them.
    fleet = SERVICES["fleet"]["command"]
    assert fleet[fleet.index("--dir") + 1] == compose.SIM_DIRECTORY
    assert fleet[fleet.index("--target-host") + 1] == "fleet"


def test_the_bridge_reads_the_agents_socket_in_the_agents_group() -> None:
    bridge = SERVICES["bridge"]
    assert bridge["group_add"] == [str(CONFIG.agent_group_id)]
    assert bridge["image"] == SERVICES["fleet"]["image"] == SERVICES[compose.RECEIVER]["image"] == CONFIG.image


def _stack_alertmanager() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / compose.ALERTMANAGER_PATH).read_text())
    return data


def test_the_stacks_alertmanager_notifies_the_receiver_service_not_itself() -> None:
    mounts = {target: source for source, target, _ in _mounts("alertmanager")}
    assert (DIRECTORY / mounts["/etc/alertmanager/alertmanager.yml"]).resolve() == (ROOT / compose.ALERTMANAGER_PATH)
    assert (DIRECTORY / mounts["/etc/alertmanager/templates"]).resolve() == (ROOT / "alertmanager" / "templates")
    urls = [hook["url"] for r in _stack_alertmanager()["receivers"] for hook in r.get("webhook_configs", [])]
    assert urls and all(url.startswith(f"http://{compose.RECEIVER}:{compose.RECEIVER_PORT}/") for url in urls), urls
    command = SERVICES[compose.RECEIVER]["command"]
    assert command[0] == "receive" and command[command.index("--port") + 1] == str(compose.RECEIVER_PORT)
    # Everything else is the generated config: only the URLs differ.
    generated = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text())
    assert _stack_alertmanager()["route"] == generated["route"]


def test_receiver_urls_of_your_own_are_kept_and_loopback_ones_go_to_the_receiver() -> None:
    assert compose.in_stack("https://hooks.example.org/pager") == "https://hooks.example.org/pager"
    assert compose.in_stack("http://localhost:5001/x?y=1") == "http://receiver:9099/x?y=1"
    assert compose.in_stack("http://[::1]:9099/ticket") == "http://receiver:9099/ticket"


def test_amtool_accepts_the_stacks_alertmanager_config(tmp_path: Path) -> None:
    # Laid out as mounted: the config beside the templates directory.
    shutil.copy(ROOT / compose.ALERTMANAGER_PATH, tmp_path / "alertmanager.yml")
    shutil.copytree(ROOT / "alertmanager" / "templates", tmp_path / "templates")
    result = subprocess.run(
        [AMTOOL, "check-config", str(tmp_path / "alertmanager.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr
    assert "Found:\n - 1 templates" in result.stdout or " - 1 templates" in result.stdout, result.stdout
