"""The generated recording rules on a live simulated fleet: every host gets the phase its faults say.

The fleet runs 60 times faster than real time, so the rules are generated from a config whose
windows and thresholds are scaled the same way (the generator's purpose: the bundle follows its
config). Real bridges, a real Prometheus evaluating the rule file every second.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from local_exporter.bundle import rules
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.generate import write
from local_exporter.sim.live import LiveOptions
from local_exporter.sim.scenario import FaultSpec, FleetSpec, ReleaseSpec, Scenario
from tests.support.fleet import live_fleet
from tests.support.prometheus import Prometheus, running_prometheus, value

OLD, NEW = "40.20240504.3.0", "40.20240519.3.0"
HOSTS = 8
SPEED = 60.0
# Scaled by SPEED: a 5-minute refresh is 5 s of wall time here.
FAST = BundleConfig(
    rollout_rules_interval="1s", phase_window="30s", stale_after_seconds=20, disabled_stale_after_seconds=600
)


def phases(prometheus: Prometheus) -> dict[str, str]:
    return {s["metric"]["instance"]: s["metric"]["phase"] for s in prometheus.query(rules.PHASE)}


async def test_each_host_gets_the_phase_its_faults_say(short_dir: Path, tmp_path: Path) -> None:
    fleet = FleetSpec(hosts=HOSTS, version=OLD)
    name = fleet.host_name
    scenario = Scenario(
        "phases",
        "",
        duration=24 * 3600.0,
        fleet=fleet,
        releases=(ReleaseSpec(NEW, 300.0),),
        faults=(
            FaultSpec("agent_down", (7,), 0.0, None),
            FaultSpec("check_errors", (6,), 0.0, None),
            FaultSpec("updates_disabled", (5,)),
            FaultSpec("deploy_failures", (4,), 0.0, None),
            FaultSpec("stale", (3,), 300.0, None),
        ),
        reboot=30.0,
    )
    write(tmp_path / "bundle", FAST)
    rule_file = tmp_path / "bundle" / "prometheus" / "rules" / "recording.yml"
    async with live_fleet(scenario, LiveOptions(short_dir, speed=SPEED, bridge_port_base=0, airlock_port=None)):
        jobs = yaml.safe_load((short_dir / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
        with running_prometheus(tmp_path / "prometheus", jobs, rule_files=[rule_file]) as prometheus:
            expected = {
                name(7): "down",
                name(6): "error",
                name(5): "disabled",
                name(4): "error",
                name(3): "stale",
                name(2): "up_to_date",
                name(1): "up_to_date",
                name(0): "up_to_date",
            }

            def settled(_: object) -> bool:
                return phases(prometheus) == expected

            await asyncio.to_thread(prometheus.wait_for, rules.PHASE, settled, 60.0)
            # Every host is counted once, in one phase.
            counts = await asyncio.to_thread(prometheus.query, rules.HOSTS_BY_PHASE)
            assert sum(value(s) for s in counts) == HOSTS
            newest = await asyncio.to_thread(prometheus.query, rules.NEWEST)
            assert [s["metric"]["os_version"] for s in newest] == [NEW]
            # On their way, the updated hosts were `rebooted` into the new version (at the start,
            # every host was: a fleet that just booted is `rebooted` into what was newest then).
            rebooted_into_new = (
                f'max_over_time(({rules.PHASE}{{phase="rebooted"}} * on (instance, job) group_left(os_version) '
                f'zincati_identity_os_info{{os_version="{NEW}"}})[5m:1s])'
            )
            passed = await asyncio.to_thread(prometheus.query, rebooted_into_new)
            assert {s["metric"]["instance"] for s in passed} == {name(0), name(1), name(2)}
