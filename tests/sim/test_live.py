"""A scenario through real bridges into a real Prometheus: the version breakdown moves as scripted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml

from local_exporter.sim.live import LiveFleet, LiveOptions
from local_exporter.sim.scenario import FaultSpec, FleetSpec, ReleaseSpec, Scenario
from tests.support.fleet import live_fleet
from tests.support.prometheus import running_prometheus, value

OLD, NEW = "40.20240504.3.0", "40.20240519.3.0"
HOSTS = 6
# 300 scenario seconds a wall second: a refresh every ~1 s, the release 10 s after start.
SPEED = 300.0
RELEASE_AT = 3000.0


def breakdown(prometheus, promql: str = 'count by (os_version) (zincati_identity_os_info{job="zincati"})'):
    return {sample["metric"].get("os_version", ""): value(sample) for sample in prometheus.query(promql)}


def jobs_from(config: Path) -> list[dict[str, object]]:
    """The generated scrape config's jobs, scraping every second for the test."""
    jobs: list[dict[str, object]] = yaml.safe_load(config.read_text())["scrape_configs"]
    for job in jobs:
        job["scrape_interval"] = job["scrape_timeout"] = "1s"
    return jobs


async def test_version_breakdown_moves_from_old_to_new_through_real_bridges(short_dir: Path, tmp_path: Path) -> None:
    fleet = FleetSpec(hosts=HOSTS, version=OLD, strategy="fleet_lock", groups=(("default", 2),))
    scenario = Scenario(
        "e2e",
        "",
        duration=4 * 3600.0,
        fleet=fleet,
        # Offered to every host at once: at 300x a phased rollout could not last less than a wall
        # minute (Cincinnati counts its duration in minutes), five scenario hours.
        releases=(ReleaseSpec(NEW, RELEASE_AT),),
        faults=(FaultSpec("agent_down", (5,), RELEASE_AT + 2400.0, None),),
        reboot=30.0,
    )
    async with live_fleet(scenario, LiveOptions(short_dir, speed=SPEED, bridge_port_base=0, airlock_port=0)):
        targets = json.loads((short_dir / "prometheus" / "bridges.json").read_text())
        assert [t["labels"]["instance"] for t in targets] == [fleet.host_name(i) for i in range(HOSTS)]
        jobs = jobs_from(short_dir / "prometheus" / "prometheus.yml")
        assert [job["job_name"] for job in jobs] == ["zincati", "local_exporter", "release_feed", "airlock"]
        with running_prometheus(tmp_path / "prometheus", jobs) as prometheus:
            # Before the release: every host its own instance, all on the old version.
            first = await asyncio.to_thread(
                prometheus.wait_for,
                'count by (os_version) (zincati_identity_os_info{job="zincati"})',
                lambda result: sum(value(s) for s in result) == HOSTS,
            )
            assert {s["metric"]["os_version"]: value(s) for s in first} == {OLD: HOSTS}, "started too late"
            instances = await asyncio.to_thread(prometheus.query, 'up{job="zincati"} == 1')
            assert sorted(s["metric"]["instance"] for s in instances) == [fleet.host_name(i) for i in range(HOSTS)]
            await asyncio.to_thread(
                prometheus.wait_for,
                'count(up{job="local_exporter"} == 1)',
                lambda result: bool(result) and value(result[0]) == HOSTS,
            )

            # The rollout, two reboots at a time under fleet_lock: the breakdown moves to NEW.
            def all_new(result: list[dict[str, object]]) -> bool:
                return {s["metric"]["os_version"]: value(s) for s in result} == {NEW: HOSTS}  # type: ignore[index]

            await asyncio.to_thread(
                prometheus.wait_for,
                'count by (os_version) (zincati_identity_os_info{job="zincati"})',
                all_new,
                40.0,
            )
            # The release feed bridge read the simulated Cincinnati: NEW is the stream's newest.
            newest = await asyncio.to_thread(
                prometheus.wait_for, 'os_release_newest_info{job="release_feed", stream="stable"}', bool, 30.0
            )
            assert [s["metric"]["version"] for s in newest] == [NEW]
            airlock = await asyncio.to_thread(prometheus.query, 'airlock_config_semaphore_slots{job="airlock"}')
            assert [value(s) for s in airlock] == [2]
            # Every host asked airlock for a slot (its scrape may trail the hosts' by a second).
            await asyncio.to_thread(
                prometheus.wait_for,
                f'airlock_v1_pre_reboot_incoming_requests_total{{job="airlock"}} >= {HOSTS}',
            )

            # Then host 5's agent goes down: its bridge answers 503, so up is 0 for that instance only.
            down = await asyncio.to_thread(prometheus.wait_for, 'up{job="zincati"} == 0', bool, 30.0)
            assert [s["metric"]["instance"] for s in down] == [fleet.host_name(5)]
            failures = await asyncio.to_thread(
                prometheus.wait_for,
                f'local_exporter_bridge_requests_total{{instance="{fleet.host_name(5)}",outcome="unavailable"}} > 0',
            )
            assert failures
    # Nothing is left listening or on disk: every host's socket is gone.
    assert not list((short_dir / "hosts").glob("*/zincati.sock"))


@pytest.mark.parametrize("transport", ["file", "uds"])
async def test_down_hosts_lose_their_transport_and_bridges_answer_503(
    short_dir: Path, transport: str, aiohttp_client
) -> None:
    import aiohttp

    fleet = FleetSpec(hosts=2, version=OLD)
    scenario = Scenario("down", "", 3600.0, fleet, faults=(FaultSpec("agent_down", (1,), 0.0, None),))
    live = LiveFleet(
        scenario,
        LiveOptions(short_dir, transport=transport, bridge_port_base=0, airlock_port=None),  # type: ignore[arg-type]
    )
    await live.start()
    try:
        await live.run(asyncio.Event(), until=0.0)
        async with aiohttp.ClientSession() as session:
            answers = []
            for port in live.bridge_ports:
                async with session.get(f"http://127.0.0.1:{port}/bridge?selector=zincati") as response:
                    answers.append((response.status, (await response.read())[:1]))
        assert answers == [(200, b"#"), (503, b"s")]
        kept = "zincati.sock" if transport == "uds" else "zincati.prom"
        assert (short_dir / "hosts" / fleet.host_name(0) / kept).exists()
        assert not (short_dir / "hosts" / fleet.host_name(1) / kept).exists()
    finally:
        await live.close()
