"""Hosts that report their own phase, end to end: simulated Fedora CoreOS hosts with rpm-ostree on
buses of their own, each behind its real bridge serving `os_update` as its agent selector, a real
Prometheus scraping them and evaluating the generated rules. Every case the PromQL inference got
wrong lands in the phase the host knows, and the recorded per-host phase follows it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import yaml

from local_exporter.agents import os_update as host_state
from local_exporter.bundle import rules
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.generate import write
from local_exporter.sim.live import LiveOptions
from local_exporter.sim.scenario import FaultSpec, FleetSpec, ReleaseSpec, Scenario
from tests.support.fleet import live_fleet
from tests.support.prometheus import Prometheus, running_prometheus

OLD, NEW = "40.20240504.3.0", "40.20240519.3.0"
HOSTS = 7
SPEED = 60.0
FAST = BundleConfig(
    rollout_rules_interval="1s", phase_window="30s", stale_after_seconds=20, disabled_stale_after_seconds=600
)


def _observe(prometheus: Prometheus, seen: dict[str, set[tuple[str, ...]]]) -> None:
    own = {s["metric"]["instance"]: s["metric"]["phase"] for s in prometheus.query(host_state.PHASE)}
    kinds = {s["metric"]["instance"]: s["metric"]["kind"] for s in prometheus.query(host_state.FAILURE)}
    reasons = {s["metric"]["instance"]: s["metric"]["reason"] for s in prometheus.query(host_state.WAITING)}
    recorded = {s["metric"]["instance"]: s["metric"]["phase"] for s in prometheus.query(rules.PHASE)}
    for instance, phase in own.items():
        detail = kinds.get(instance) or reasons.get(instance, "")
        seen.setdefault(instance, set()).add((phase, detail, recorded.get(instance, "")))


def _saw(seen: dict[str, set[tuple[str, ...]]], instance: str, case: tuple[str, str, str]) -> bool:
    """The host reported `case`'s phase and detail, and its recorded phase was `case`'s mapped one,
    each sampled on its own (the rule runs a scrape and an evaluation behind the host)."""
    phase, detail, recorded = case
    cases = seen.get(instance, set())
    return any((p, d) == (phase, detail) for p, d, _ in cases) and any(r == recorded for _, _, r in cases)


@pytest.mark.timeout(240)
async def test_every_case_lands_in_the_phase_the_host_knows(short_dir: Path, tmp_path: Path) -> None:
    fleet = FleetSpec(hosts=HOSTS, version=OLD, strategy="fleet_lock", groups=(("default", 2),))
    name = fleet.host_name
    scenario = Scenario(
        "host-phases",
        "",
        duration=24 * 3600.0,
        fleet=fleet,
        releases=(ReleaseSpec(NEW, 600.0),),
        faults=(
            # After its boot the FleetLock server refuses to take its slot back: failed_lock/lock_held.
            FaultSpec("steady_state_errors", (1,), 0.0, None),
            # Registering as rpm-ostree's driver keeps failing: the refresh stands still.
            FaultSpec("driver_registration", (2,), 0.0, None),
            # Logged-in users postpone the reboot (10 times, then Zincati reboots anyway).
            FaultSpec("finalize_blocked", (3,), 0.0, None, users=2),
            # Booted on a release marked a dead end.
            FaultSpec("deadend", (4,), 0.0, None),
            # Zincati down for 3 minutes, then restarted without a reboot.
            FaultSpec("agent_down", (5,), 240.0, 420.0),
        ),
        reboot=30.0,
        download=60.0,
    )
    write(tmp_path / "bundle", FAST)
    rule_file = tmp_path / "bundle" / "prometheus" / "rules" / "recording.yml"
    options = LiveOptions(short_dir, speed=SPEED, bridge_port_base=0, airlock_port=0, rpm_ostree=True)
    seen: dict[str, set[tuple[str, ...]]] = {}
    async with live_fleet(scenario, options):
        jobs = yaml.safe_load((short_dir / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
        for job in jobs:
            job["scrape_interval"] = job["scrape_timeout"] = "1s"
        with running_prometheus(tmp_path / "prometheus", jobs, rule_files=[rule_file]) as prometheus:
            wanted = {
                name(1): ("failing", "reboot_lock_release", "error"),
                name(2): ("failing", "driver_registration", "error"),
                name(3): ("staged", "logged_in_users", "staged"),
                name(4): ("dead_end", "", "checking"),
                name(6): ("rebooted", "", "rebooted"),
            }
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline:
                await asyncio.to_thread(_observe, prometheus, seen)
                if all(_saw(seen, instance, case) for instance, case in wanted.items()):
                    break
                await asyncio.sleep(0.5)
    for instance, case in wanted.items():
        assert _saw(seen, instance, case), (instance, case, seen.get(instance))
    # A host waiting for one of two slots, and one that downloads, on the way.
    assert any(phase == "downloading" for phase, _, _ in set().union(*seen.values())), seen
    # The recorded phase follows the host's own: never `rebooted` while the host says otherwise
    # (Zincati restarting on host 5 is not a reboot, which the inference alone would record).
    assert _saw(seen, name(5), ("agent_down", "", "down")), seen.get(name(5))
    for instance, cases in seen.items():
        assert not any(recorded == "rebooted" and phase not in ("rebooted", "idle") for phase, _, recorded in cases), (
            instance,
            cases,
        )
