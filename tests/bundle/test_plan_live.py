"""Progress against plan, end to end: a simulated phased rollout through the simulated Cincinnati,
the release feed bridge (kind cincinnati) and the hosts' own bridges, a real Prometheus running
the generated rules, and the overview's "Progress against plan" queries.

The fleet runs 60 times faster than real time; the release's phased rollout lasts a scenario hour,
so a wall minute (Cincinnati counts a rollout's duration in whole minutes of its own clock); the
test watches its first half.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import yaml

from local_exporter.bundle import dashboards, rules
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.generate import write
from local_exporter.sim.live import LiveOptions
from local_exporter.sim.scenario import FaultSpec, FleetSpec, ReleaseSpec, Scenario
from tests.support.fleet import live_fleet
from tests.support.prometheus import Sample, running_prometheus

OLD, NEW = "40.20240504.3.0", "40.20240519.3.0"
HOSTS = 8
SPEED = 60.0
RELEASE_AT, ROLLOUT = 120.0, 3600.0
FAST = BundleConfig(rollout_rules_interval="1s", phase_window="30s", stale_after_seconds=20)


def _plan_queries() -> tuple[str, str]:
    """The overview's "Progress against plan" queries (actual, planned), with every variable at All."""
    overview = json.loads(dashboards.render(FAST)["dashboards/rollout-overview.json"])
    (panel,) = [p for p in overview["panels"] if p.get("title") == "Progress against plan"]
    actual, planned = (target["expr"] for target in panel["targets"])
    values = {"cluster": ".*", "job": ".+", "os": ".*"}
    for name, text in values.items():
        actual, planned = actual.replace(f"${name}", text), planned.replace(f"${name}", text)
    return actual, planned


def _series(result: list[Sample]) -> list[float]:
    assert len(result) == 1, result
    return [float(v) for _, v in result[0]["values"]]


async def test_the_fleet_follows_the_servers_phased_rollout_plan(short_dir: Path, tmp_path: Path) -> None:
    scenario = Scenario(
        "plan",
        "",
        duration=6 * 3600.0,
        fleet=FleetSpec(hosts=HOSTS, version=OLD),
        releases=(ReleaseSpec(NEW, RELEASE_AT, ROLLOUT),),
        # The hosts cannot reach the server for the rollout's first ten scenario minutes: the
        # release is listed while no host can have it yet.
        faults=(FaultSpec("check_errors", tuple(range(HOSTS)), 0.0, RELEASE_AT + 600.0),),
        reboot=30.0,
    )
    write(tmp_path / "bundle", FAST)
    rule_file = tmp_path / "bundle" / "prometheus" / "rules" / "recording.yml"
    actual, planned = _plan_queries()
    options = LiveOptions(short_dir, speed=SPEED, bridge_port_base=0, airlock_port=None, scrape_interval="1s")
    async with live_fleet(scenario, options):
        jobs = yaml.safe_load((short_dir / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
        with running_prometheus(tmp_path / "prometheus", jobs, rule_files=[rule_file]) as prometheus:
            # As soon as the server lists the release, it is the newest, whatever the hosts run.
            newest = await asyncio.to_thread(prometheus.wait_for, f'{rules.NEWEST}{{os_version="{NEW}"}}', bool, 30.0)
            assert [s["metric"]["stream"] for s in newest] == ["stable"]
            # Half way through the plan, some hosts have followed it.
            await asyncio.to_thread(prometheus.wait_for, f"({planned}) >= 0.5", bool, 90.0)
            await asyncio.to_thread(prometheus.wait_for, f"({actual}) > 0", bool, 30.0)
            window = 60.0
            plan = _series(await asyncio.to_thread(prometheus.query_range, planned, window))
            progress = _series(await asyncio.to_thread(prometheus.query_range, actual, window))
            while_newest = _series(
                await asyncio.to_thread(
                    prometheus.query_range,
                    f'{rules.NEWEST_RATIO} and on (os, stream) {rules.NEWEST}{{os_version="{NEW}"}}',
                    window,
                )
            )
    # The release was the newest from when the server listed it, while no host ran it: not once
    # the hosts got there (as when the newest was guessed from what hosts booted).
    assert min(while_newest) == 0, while_newest
    # The plan rose through the rollout as the server throttles it, never back; the fleet
    # followed, from no host on the newest release to some while the plan was still partial.
    assert plan == sorted(plan) and 0 <= plan[0] < 0.5 <= plan[-1] < 1, plan
    assert min(progress) == 0 and 0 < progress[-1] < 1, progress
