"""The generated Alertmanager config, its templates and the example prometheus.yml.

amtool checks the file, the routing table and the templates; amtool cannot test inhibition, so a
real Alertmanager on loopback receives alerts and reports which are inhibited, and a local webhook
server checks that notifications arrive. promtool checks the example Prometheus config.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from local_exporter.bundle import alertmanager, prometheus_config
from local_exporter.bundle.alerts import alert_groups
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.yamltext import commented_out
from tests.support.alertmanager import AMTOOL, Webhook, running_alertmanager, serving_webhook
from tests.support.processes import Child, poll
from tests.support.prometheus import PROMTOOL

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / alertmanager.CONFIG_PATH
TEMPLATES = ROOT / alertmanager.TEMPLATE_PATH
PROMETHEUS_CONFIG = ROOT / prometheus_config.CONFIG_PATH
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
# Alertmanager's start, and its inhibitor and dispatcher catching up with posted alerts.
READY_TIMEOUT = 20.0
NOTIFY_TIMEOUT = 20.0
P = BundleConfig().alert_prefix


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AMTOOL, *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


# --- the file ---------------------------------------------------------------------------------


def test_amtool_accepts_the_config() -> None:
    result = amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 templates" in result.stdout and "3 inhibit rules" in result.stdout


def test_comments_do_not_change_the_data() -> None:
    assert yaml.safe_load(CONFIG.read_text()) == alertmanager.config_data(BundleConfig())
    assert yaml.safe_load(PROMETHEUS_CONFIG.read_text()) == prometheus_config.config_data(BundleConfig())


def test_the_commented_email_and_pagerduty_examples_are_valid_once_uncommented(tmp_path: Path) -> None:
    config = BundleConfig()
    block = commented_out(alertmanager.example_receivers(config))
    assert block in CONFIG.read_text()
    uncommented = "".join(line.removeprefix("# ") + "\n" for line in block.splitlines())
    assert yaml.safe_load(uncommented) == alertmanager.example_receivers(config)
    # Uncommented right where they are, they become receivers of the same list.
    path = tmp_path / "alertmanager.yml"
    path.write_text(CONFIG.read_text().replace(block, uncommented))
    (tmp_path / "templates").mkdir()
    shutil.copy(TEMPLATES, tmp_path / "templates")
    assert [r["name"] for r in yaml.safe_load(path.read_text())["receivers"]][-2:] == ["pager-email", "pager-pagerduty"]
    result = amtool("check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


# --- routing ----------------------------------------------------------------------------------

ROUTES = [
    ("critical", "pager", [f"alertname={P}BridgeDown", "severity=critical", "instance=host-a:9598"]),
    ("warning", "ticket", [f"alertname={P}AgentDown", "severity=warning", "instance=host-a:9598"]),
    ("info", "sink", [f"alertname={P}UpdatesDisabled", "severity=info"]),
    ("heartbeat", "heartbeat", [f"alertname={P}Heartbeat", "severity=info"]),
    ("heartbeat-in-a-cluster", "heartbeat", [f"alertname={P}Heartbeat", "severity=info", "cluster=eu"]),
    ("no-severity", "default", ["alertname=SomethingElse"]),
    ("unknown-severity", "default", ["alertname=SomethingElse", "severity=page"]),
    ("foreign-critical", "pager", ["alertname=NodeDown", "severity=critical"]),
]


@pytest.mark.parametrize(("receiver", "labels"), [case[1:] for case in ROUTES], ids=[case[0] for case in ROUTES])
def test_amtool_routes_each_kind_of_alert(receiver: str, labels: list[str]) -> None:
    result = amtool("config", "routes", "test", f"--config.file={CONFIG}", f"--verify.receivers={receiver}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [receiver]


def test_only_warnings_are_muted_in_the_maintenance_window() -> None:
    config = BundleConfig()
    routes = alertmanager.route(config)["routes"]
    muted = [r["receiver"] for r in routes if r.get("mute_time_intervals")]
    assert muted == ["ticket"]
    assert [i["name"] for i in alertmanager.time_intervals(config)] == [config.maintenance.name]


# --- inhibition rules, statically -----------------------------------------------------------------


def test_per_host_alerts_are_the_bridge_and_agent_groups() -> None:
    by_group = {group["name"]: [rule["alert"] for rule in group["rules"]] for group in alert_groups(BundleConfig())}
    expected = by_group["os-update-bridge"] + by_group["os-update-agents"]
    assert alertmanager.per_host_alerts(BundleConfig()) == expected
    assert {f"{P}BridgeDown", f"{P}AgentDown"} <= set(expected) and f"{P}Heartbeat" not in expected


def _targets(rule: dict[str, Any]) -> set[str]:
    (matcher,) = rule["target_matchers"]
    return set(matcher.removeprefix('alertname=~"').removesuffix('"').split("|"))


def test_no_alert_inhibits_itself_or_its_own_inhibitor() -> None:
    rules = alertmanager.inhibit_rules(BundleConfig())
    by_source = {rule["source_matchers"][0].split('"')[1]: _targets(rule) for rule in rules[1:]}
    assert set(by_source) == {f"{P}BridgeDown", f"{P}AgentDown"}
    for source, targets in by_source.items():
        assert source not in targets
    assert f"{P}AgentDown" in by_source[f"{P}BridgeDown"]
    assert f"{P}BridgeDown" not in by_source[f"{P}AgentDown"]
    for rule in rules:
        assert "instance" in rule["equal"] and BundleConfig().cluster_label in rule["equal"]


# --- templates ----------------------------------------------------------------------------------

TEMPLATE_DATA = {
    "receiver": "pager",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": f"{P}BridgeDown",
                "severity": "critical",
                "instance": "host-a:9598",
                "cluster": "eu",
            },
            "annotations": {
                "summary": "A host's bridge cannot be scraped.",
                "description": "The bridge on host-a:9598 has not answered a scrape for 5 minutes.",
                "runbook_url": "https://example.org/runbooks.md#osupdatebridgedown",
            },
            "startsAt": "2024-05-01T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example.org/graph",
            "fingerprint": "0123456789abcdef",
        }
    ],
    "groupLabels": {"alertname": f"{P}BridgeDown", "cluster": "eu"},
    "commonLabels": {"alertname": f"{P}BridgeDown", "severity": "critical", "instance": "host-a:9598", "cluster": "eu"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager.example.org",
}


def render(tmp_path: Path, name: str, data: dict[str, Any] | None) -> str:
    args = [f"--template.glob={TEMPLATES}", f"--template.text={alertmanager.template_call(name)}"]
    if data is not None:
        path = tmp_path / "data.json"
        path.write_text(json.dumps(data))
        args.append(f"--template.data={path}")
    result = amtool("template", "render", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_amtool_renders_the_title(tmp_path: Path) -> None:
    assert render(tmp_path, alertmanager.TITLE_TEMPLATE, TEMPLATE_DATA).strip() == f"[FIRING:1] {P}BridgeDown (eu)"


def test_amtool_renders_the_text(tmp_path: Path) -> None:
    text = render(tmp_path, alertmanager.TEXT_TEMPLATE, TEMPLATE_DATA)
    assert text.splitlines()[:6] == [
        "FIRING critical: A host's bridge cannot be scraped.",
        "Host: host-a:9598",
        "The bridge on host-a:9598 has not answered a scrape for 5 minutes.",
        "Runbook: https://example.org/runbooks.md#osupdatebridgedown",
        "Since: 2024-05-01 10:00 UTC",
        "Source: http://prometheus.example.org/graph",
    ]


@pytest.mark.parametrize("name", [alertmanager.TITLE_TEMPLATE, alertmanager.TEXT_TEMPLATE])
def test_amtool_renders_with_its_own_sample_data(tmp_path: Path, name: str) -> None:
    assert render(tmp_path, name, None).strip()


# --- a real Alertmanager --------------------------------------------------------------------------


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with serving_webhook() as hook:
        yield hook


@pytest.fixture
def alertmanager_url(tmp_path: Path, webhook: Webhook) -> Iterator[tuple[str, Child]]:
    with running_alertmanager(tmp_path, webhook) as running:
        yield running


def alert(name: str, severity: str, cluster: str, instance: str | None = None) -> dict[str, Any]:
    labels = {"alertname": f"{P}{name}", "severity": severity, "cluster": cluster}
    if instance is not None:
        labels["instance"] = instance
    return {"labels": labels, "annotations": {"summary": f"{name}."}, "generatorURL": "http://prometheus.invalid/"}


def key(labels: dict[str, str]) -> tuple[str, str, str, str]:
    return (labels["alertname"].removeprefix(P), labels["severity"], labels["cluster"], labels.get("instance", ""))


# (alert, inhibited?) — each line says why.
INHIBITION_CASES = [
    # Critical over warning: same name, cluster and host.
    (alert("ChecksFailing", "critical", "c1", "host-a"), False),
    (alert("ChecksFailing", "warning", "c1", "host-a"), True),
    (alert("ChecksFailing", "warning", "c1", "host-b"), False),  # another host
    (alert("ChecksFailing", "warning", "c2", "host-a"), False),  # another cluster
    # ... and fleet-wide alerts (no instance).
    (alert("TooManyUpdating", "critical", "c1"), False),
    (alert("TooManyUpdating", "warning", "c1"), True),
    (alert("TooManyUpdating", "warning", "c2"), False),
    # A bridge down silences that host's other alerts, AgentDown included, not itself.
    (alert("BridgeDown", "critical", "c1", "host-c"), False),
    (alert("AgentDown", "warning", "c1", "host-c"), True),
    (alert("RebootPending", "warning", "c1", "host-c"), True),
    (alert("BridgeSelectorFailing", "warning", "c1", "host-c"), True),
    (alert("UpdatesDisabled", "info", "c1", "host-c"), True),
    (alert("RebootPending", "warning", "c2", "host-c"), False),  # same host name, other cluster
    (alert("RolloutStalled", "warning", "c1"), False),  # fleet-wide: not about host-c
    # An agent down silences that host's other alerts, not itself.
    (alert("AgentDown", "warning", "c1", "host-d"), False),
    (alert("DeployFailing", "warning", "c1", "host-d"), True),
    (alert("AgentStale", "warning", "c1", "host-d"), True),
    # Another host is left alone.
    (alert("RebootPending", "warning", "c1", "host-e"), False),
    (alert("Heartbeat", "info", "c1"), False),
]


def test_alertmanager_inhibits_and_notifies(alertmanager_url: tuple[str, Child], webhook: Webhook) -> None:
    url, child = alertmanager_url
    body = json.dumps([case[0] for case in INHIBITION_CASES]).encode()
    answer = _post(f"{url}/api/v2/alerts", body)
    assert answer == 200, answer
    expected = {key(case[0]["labels"]): case[1] for case in INHIBITION_CASES}

    def inhibition() -> dict[tuple[str, str, str, str], bool] | None:
        alerts = json.loads(_get(f"{url}/api/v2/alerts"))
        seen = {key(a["labels"]): bool(a["status"]["inhibitedBy"]) for a in alerts}
        return seen if seen == expected else None

    try:
        poll("the expected alerts inhibited", inhibition, NOTIFY_TIMEOUT, watch=[child])
    except AssertionError:
        alerts = json.loads(_get(f"{url}/api/v2/alerts"))
        got = {key(a["labels"]): bool(a["status"]["inhibitedBy"]) for a in alerts}
        wrong = {k: (got.get(k), v) for k, v in expected.items() if got.get(k) != v}
        raise AssertionError(f"(got, expected) differ for {wrong}") from None

    # The API's filter agrees: inhibited=false leaves exactly the uninhibited ones.
    shown = {key(a["labels"]) for a in json.loads(_get(f"{url}/api/v2/alerts?inhibited=false"))}
    assert shown == {k for k, inhibited in expected.items() if not inhibited}

    # Notifications arrive at the routed webhooks.
    def delivered() -> bool | None:
        ready = (
            f"{P}BridgeDown" in webhook.alertnames("/pager")
            and f"{P}Heartbeat" in webhook.alertnames("/heartbeat")
            and f"{P}RolloutStalled" in webhook.alertnames("/ticket")
        )
        return True if ready else None

    poll("notifications at the webhooks", delivered, NOTIFY_TIMEOUT, watch=[child])
    pager = webhook.alerts("/pager")
    assert {a["labels"]["alertname"] for a in pager} <= {f"{P}BridgeDown", f"{P}ChecksFailing", f"{P}TooManyUpdating"}
    assert all(a["labels"]["severity"] == "critical" and a["status"] == "firing" for a in pager)
    # The sink notifies nobody: no info alert reached any webhook but the heartbeat.
    for path in ("/pager", "/ticket"):
        assert all(a["labels"]["severity"] != "info" for a in webhook.alerts(path))


def _post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        status: int = response.status
        return status


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body


# --- the example prometheus.yml ---------------------------------------------------------------------


def test_promtool_accepts_the_example_prometheus_config() -> None:
    result = subprocess.run(
        [PROMTOOL, "check", "config", str(PROMETHEUS_CONFIG)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rule files found" in result.stdout


def test_the_example_scrapes_what_the_rules_select() -> None:
    config = BundleConfig()
    data = prometheus_config.config_data(config)
    jobs = {job["job_name"]: job for job in data["scrape_configs"]}
    for selector in (config.agent_selector, config.bridge_selector, config.airlock_selector):
        assert f'job="{prometheus_config.job_name(selector)}"' == selector
    agents, bridges = jobs[prometheus_config.job_name(config.agent_selector)], jobs["local_exporter"]
    flatcar = jobs[prometheus_config.job_name(config.flatcar_agent_selector)]
    assert agents["metrics_path"] == "/bridge" and agents["params"] == {"selector": ["zincati"]}
    assert flatcar["metrics_path"] == "/bridge" and flatcar["params"] == {"selector": ["update_engine"]}
    # Same targets: the agents' and the bridges' series share `instance`, which inhibition compares.
    targets = [t for job in (agents, flatcar) for t in job["static_configs"][0]["targets"]]
    assert targets == bridges["static_configs"][0]["targets"]
    assert data["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["localhost:9093"]
    assert config.cluster_label in data["global"]["external_labels"]


def test_job_name_rejects_a_selector_the_example_cannot_express() -> None:
    with pytest.raises(ValueError, match="job="):
        prometheus_config.job_name('job=~"zincati|other"')
