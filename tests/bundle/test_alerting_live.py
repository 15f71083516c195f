"""A new user's flow, end to end: their own bundle config file (job names, alert prefix, cluster
label, fleet groups, thresholds, receivers, maintenance window), generated with `local-exporter
bundle --config`, accepted by promtool and amtool and by `--check`; then that output running
unchanged: an injected fault on a simulated host pages through real bridges, Prometheus and
Alertmanager into a webhook, with the user's names and labels, and the page resolves when the
fault clears.

The fleet runs 60 times faster than real time, so the user's windows are a 60th of the defaults.
"""

from __future__ import annotations

import asyncio
import datetime
import subprocess
from pathlib import Path
from typing import Any

import yaml

from local_exporter.bundle.config_file import WEEKDAYS
from local_exporter.cli import main
from local_exporter.sim.live import LiveOptions
from local_exporter.sim.scenario import FaultSpec, FleetSpec, Scenario
from tests.support.alertmanager import AMTOOL, Webhook, running_alertmanager_file, serving_webhook
from tests.support.fleet import live_fleet
from tests.support.processes import poll
from tests.support.prometheus import PROMTOOL, running_prometheus

SPEED = 60.0
#: The user's job names for the fleet's jobs (the simulator's are the defaults).
JOBS = {"zincati": "fcos-hosts", "local_exporter": "fcos-bridges"}
REGION, POOL = "eu-test-1", "blue"
USER_CONFIG = """\
agent_selector = 'job="fcos-hosts"'
bridge_selector = 'job="fcos-bridges"'
cluster_label = "region"
group_label = "pool"
alert_prefix = "Fleet"
runbook_url_pattern = "https://wiki.example.org/runbooks/{alert}"
rollout_rules_interval = "1s"
phase_window = "30s"
stale_after_seconds = 20
disabled_stale_after_seconds = 600
down_window = "5s"
gauge_window = "10s"
agent_down_for = "5s"
group_wait = "0s"
group_interval = "1s"

[receivers]
pager_url = "@WEBHOOK@/pager"
ticket_url = "@WEBHOOK@/ticket"
heartbeat_url = "@WEBHOOK@/heartbeat"

[maintenance]
weekdays = ["@OTHER_DAY@"]
start_time = "01:00"
end_time = "02:00"
location = "UTC"
"""


def _user_config(directory: Path, webhook: Webhook) -> Path:
    # A maintenance window two days away: it mutes warnings, and this test waits for one.
    other_day = WEEKDAYS[(datetime.datetime.now(datetime.UTC).isoweekday() + 2) % 7]
    path = directory / "bundle.toml"
    path.write_text(USER_CONFIG.replace("@WEBHOOK@", webhook.url).replace("@OTHER_DAY@", other_day))
    return path


def _checked(*args: str) -> str:
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "SUCCESS" in result.stdout + result.stderr, result.stdout + result.stderr
    return result.stdout


def _user_jobs(fleet_config: Path) -> list[dict[str, Any]]:
    """The fleet's scrape configs as the user names them, every target in their pool."""
    jobs: list[dict[str, Any]] = yaml.safe_load(fleet_config.read_text())["scrape_configs"]
    for job in jobs:
        job["job_name"] = JOBS.get(job["job_name"], job["job_name"])
        job["relabel_configs"] = [{"target_label": "pool", "replacement": POOL}]
    return jobs


def notifications(webhook: Webhook, status: str) -> list[dict[str, Any]]:
    return [
        a for a in webhook.alerts("/ticket") if a["labels"]["alertname"] == "FleetAgentDown" and a["status"] == status
    ]


async def test_a_new_users_bundle_config_pages_with_their_names(short_dir: Path, tmp_path: Path) -> None:
    fleet = FleetSpec(hosts=3, version="40.20240504.3.0")
    # Host 2's agent is down from scenario minute 5 to 25: wall seconds 5 to 25.
    scenario = Scenario("alerting", "", 24 * 3600.0, fleet, faults=(FaultSpec("agent_down", (2,), 300.0, 1500.0),))
    out = tmp_path / "monitoring"
    with serving_webhook() as webhook:
        config = _user_config(tmp_path, webhook)
        assert main(["bundle", "--config", str(config), "--out", str(out)]) == 0
        assert main(["bundle", "--config", str(config), "--out", str(out), "--check"]) == 0
        rule_files = sorted((out / "prometheus" / "rules").glob("*.yml"))
        _checked(PROMTOOL, "check", "rules", *map(str, rule_files))
        _checked(PROMTOOL, "check", "config", str(out / "prometheus" / "prometheus.yml"))
        _checked(AMTOOL, "check-config", str(out / "alertmanager" / "alertmanager.yml"))
        example = yaml.safe_load((out / "prometheus" / "prometheus.yml").read_text())
        assert {"fcos-hosts", "fcos-bridges"} <= {job["job_name"] for job in example["scrape_configs"]}

        async with live_fleet(scenario, LiveOptions(short_dir, speed=SPEED, bridge_port_base=0, airlock_port=None)):
            jobs = _user_jobs(short_dir / "prometheus" / "prometheus.yml")
            with running_alertmanager_file(out / "alertmanager" / "alertmanager.yml", tmp_path / "am") as (am_url, am):
                prometheus_running = running_prometheus(
                    tmp_path / "prometheus",
                    jobs,
                    rule_files=rule_files,
                    alertmanagers=[am_url.removeprefix("http://")],
                    external_labels={"region": REGION},
                )
                with prometheus_running as prometheus:
                    watch = [am, prometheus.child]
                    fired = await asyncio.to_thread(
                        poll, "the AgentDown page", lambda: notifications(webhook, "firing") or None, 60, watch=watch
                    )
                    assert {a["labels"]["instance"] for a in fired} == {fleet.host_name(2)}
                    page = fired[0]
                    assert page["labels"]["severity"] == "warning" and page["labels"]["job"] == "fcos-hosts"
                    assert page["labels"]["region"] == REGION and page["labels"]["pool"] == POOL
                    assert page["annotations"]["runbook_url"] == "https://wiki.example.org/runbooks/fleetagentdown"
                    # The agent comes back at wall second ~25: the page resolves.
                    resolved = await asyncio.to_thread(
                        poll, "the resolved page", lambda: notifications(webhook, "resolved") or None, 60, watch=watch
                    )
                    assert {a["labels"]["instance"] for a in resolved} == {fleet.host_name(2)}
                    # The dead man's switch was paging all along; nothing else was sent as a page.
                    assert webhook.alertnames("/heartbeat") == {"FleetHeartbeat"}
                    assert webhook.alertnames("/pager") == set()
