"""End to end: an injected fault on a simulated host pages through real bridges, Prometheus and
Alertmanager into a webhook, and the page resolves when the fault clears.

The fleet runs 60 times faster than real time, so the bundle is generated from a config whose
windows are scaled the same way; everything else is the generated rules and Alertmanager config.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.generate import write
from local_exporter.sim.live import LiveOptions
from local_exporter.sim.scenario import FaultSpec, FleetSpec, Scenario
from tests.support.alertmanager import Webhook, running_alertmanager, serving_webhook
from tests.support.fleet import live_fleet
from tests.support.processes import poll
from tests.support.prometheus import running_prometheus

SPEED = 60.0
FAST = BundleConfig(
    rollout_rules_interval="1s",
    phase_window="30s",
    stale_after_seconds=20,
    disabled_stale_after_seconds=600,
    down_window="5s",
    gauge_window="10s",
    agent_down_for="5s",
)
AGENT_DOWN = FAST.alert_prefix + "AgentDown"


def notifications(webhook: Webhook, status: str) -> list[str]:
    return [
        a["labels"]["instance"]
        for a in webhook.alerts("/ticket")
        if a["labels"]["alertname"] == AGENT_DOWN and a["status"] == status
    ]


async def test_a_down_agent_pages_and_the_page_resolves(short_dir: Path, tmp_path: Path) -> None:
    fleet = FleetSpec(hosts=3, version="40.20240504.3.0")
    # Host 2's agent is down from scenario minute 5 to 25: wall seconds 5 to 25.
    scenario = Scenario("alerting", "", 24 * 3600.0, fleet, faults=(FaultSpec("agent_down", (2,), 300.0, 1500.0),))
    write(tmp_path / "bundle", FAST)
    rule_files = sorted((tmp_path / "bundle" / "prometheus" / "rules").glob("*.yml"))
    async with live_fleet(scenario, LiveOptions(short_dir, speed=SPEED, bridge_port_base=0, airlock_port=None)):
        jobs = yaml.safe_load((short_dir / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
        with serving_webhook() as webhook, running_alertmanager(tmp_path / "am", webhook, FAST) as (am_url, am):
            address = am_url.removeprefix("http://")
            with running_prometheus(
                tmp_path / "prometheus", jobs, rule_files=rule_files, alertmanagers=[address]
            ) as prometheus:
                watch = [am, prometheus.child]
                fired = await asyncio.to_thread(
                    poll, "the AgentDown page", lambda: notifications(webhook, "firing") or None, 40, watch=watch
                )
                assert set(fired) == {fleet.host_name(2)}
                page = next(a for a in webhook.alerts("/ticket") if a["labels"]["alertname"] == AGENT_DOWN)
                assert page["labels"]["severity"] == "warning"
                assert page["annotations"]["runbook_url"].endswith("#osupdateagentdown")
                # The agent comes back at wall second ~25: the page resolves.
                resolved = await asyncio.to_thread(
                    poll, "the resolved page", lambda: notifications(webhook, "resolved") or None, 60, watch=watch
                )
                assert set(resolved) == {fleet.host_name(2)}
                # The dead man's switch was paging all along; nothing else was sent as a page.
                assert webhook.alertnames("/heartbeat") == {FAST.alert_prefix + "Heartbeat"}
                assert webhook.alertnames("/pager") == set()
