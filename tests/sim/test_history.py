"""A scenario backfilled as history, loaded by promtool into a real Prometheus and queried."""

from __future__ import annotations

import json
import time
import urllib.parse
from pathlib import Path

from local_exporter.sim.history import write_history
from local_exporter.sim.scenario import FaultSpec, FleetSpec, ReleaseSpec, Scenario
from tests.support.processes import http_get
from tests.support.prometheus import Prometheus, create_blocks, running_prometheus

OLD, NEW = "40.20240504.3.0", "40.20240519.3.0"
HOSTS = 8
INTERVAL = 60.0


def query_at(prometheus: Prometheus, promql: str, at: float) -> dict[str, float]:
    """`promql` at `at`, as {the value of its first label but the name (or ""): value}."""
    answer = http_get(f"{prometheus.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql, "time": at}))
    data = json.loads(answer.body)
    assert answer.status == 200 and data["status"] == "success", answer.text
    result = {}
    for sample in data["data"]["result"]:
        labels = [value for name, value in sample["metric"].items() if name != "__name__"]
        result[labels[0] if labels else ""] = float(sample["value"][1])
    return result


def test_a_backfilled_rollout_is_queryable_as_prometheus_would_have_stored_it(tmp_path: Path) -> None:
    # A 6-hour fleet_lock rollout ending two minutes ago; one host down in the last hour.
    end = (int(time.time()) // 60) * 60 - 120
    fleet = FleetSpec(hosts=HOSTS, version=OLD, strategy="fleet_lock", groups=(("default", 2),))
    scenario = Scenario(
        "history",
        "",
        6 * 3600.0,
        fleet,
        (ReleaseSpec(NEW, 3600.0, rollout=3600.0),),
        (FaultSpec("agent_down", (7,), 5 * 3600.0, None),),
        start=end - 6 * 3600.0,
    )
    om = tmp_path / "history.om"
    history = write_history(scenario, om, interval=INTERVAL)
    assert (history.start, history.end, history.scrapes) == (end - 6 * 3600.0, end, 361)
    assert history.stats.samples > HOSTS * 361 * 15

    data = tmp_path / "prometheus" / "data"
    create_blocks(om, data)

    breakdown = 'count by (os_version) (zincati_identity_os_info{job="zincati"})'
    # Backfills carry no staleness markers (OpenMetrics text cannot): a series that stops, such
    # as the old os_info after a reboot, would linger for the default 5-minute lookback. With a
    # lookback under one scrape interval, a query sees exactly what the last scrape stored, as a
    # live scrape's staleness markers would make it.
    flags = ["--query.lookback-delta=45s"]
    with running_prometheus(tmp_path / "prometheus", [], retention="1d", flags=flags) as prometheus:
        # Before the release every host is on the old version; at the end on the new one.
        assert query_at(prometheus, breakdown, history.start + 1800) == {OLD: HOSTS}
        # During the phased rollout both versions show, and every host is counted once, but a
        # host rebooting then (its agent down: `up` 0 and no os_info).
        times = [history.start + 3600 + 600 * i + 30 for i in range(1, 9)]
        during = [query_at(prometheus, breakdown, t) for t in times]
        down = [query_at(prometheus, 'count(up{job="zincati"} == 0)', t).get("", 0) for t in times]
        assert all(sum(split.values()) + rebooting == HOSTS for split, rebooting in zip(during, down, strict=True)), (
            during,
            down,
        )
        assert any(set(split) == {OLD, NEW} for split in during), during
        # The down host's last os_info is past the lookback: only up tells of it.
        assert query_at(prometheus, breakdown, history.end) == {NEW: HOSTS - 1}
        assert query_at(prometheus, 'up{job="zincati"} == 0', history.end) == {fleet.host_name(7): 0}
        assert query_at(prometheus, 'count(up{job="zincati"} == 1)', history.end) == {"": HOSTS - 1}
        # Counters are stored under their exact names, resets included: every host rebooted once.
        starts = query_at(prometheus, 'changes(process_start_time_seconds{job="zincati"}[6h])', history.end)
        assert starts == {fleet.host_name(i): 1 for i in range(HOSTS)}
        checks = query_at(
            prometheus, 'sum(increase(zincati_cincinnati_update_checks_total{job="zincati"}[1h]))', history.end
        )
        assert checks[""] > (HOSTS - 1) * 8
        # The airlock was scraped too: two slots, and every host asked for one.
        assert query_at(prometheus, 'airlock_config_semaphore_slots{job="airlock"}', history.end) == {"default": 2}
        asked = query_at(prometheus, "airlock_v1_pre_reboot_incoming_requests_total", history.end)
        assert next(iter(asked.values())) >= HOSTS
