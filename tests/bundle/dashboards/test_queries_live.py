"""The decisive test: every panel's query, with its dashboard's variables filled in as Grafana
would, returns data from a real Prometheus that scrapes a simulated FleetLock rollout through
real bridges, beside Flatcar hosts rolling out through locksmith, and evaluates the generated
recording rules; and the numbers add up, both OSes' hosts counted. Once with Fedora CoreOS
hosts whose phase is inferred, once with hosts that report it themselves (os_update); panels
marked "(reported)" read what only the latter say, and must return data there.

The fleet runs 60 times faster than real time, so the rules come from a config whose windows
are scaled the same way (as in tests/bundle/test_phases_live.py); the dashboards' queries do
not depend on those windows.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from local_exporter.bundle import dashboards, rules
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.dashboards.common import REPORTED_ONLY
from local_exporter.bundle.generate import write
from local_exporter.bundle.promql import substituted
from local_exporter.sim.live import LiveOptions
from local_exporter.sim.scenario import FLATCAR, FaultSpec, FlatcarFleetSpec, FleetSpec, ReleaseSpec, Scenario
from tests.support.fleet import live_fleet
from tests.support.prometheus import Prometheus, running_prometheus, value

OLD, NEW = "40.20240504.3.0", "40.20240519.3.0"
HOSTS = 12
#: Flatcar hosts beside: they report their own phase (update_engine) in every case.
FLATCAR_HOSTS = 4
SPEED = 60.0
FAST = BundleConfig(
    rollout_rules_interval="1s", phase_window="30s", stale_after_seconds=20, disabled_stale_after_seconds=600
)
#: The host the drill-down is pointed at: it takes a reboot slot and fails to finalize, so it has
#: errors, FleetLock requests and answers from its strategy.
DRILLED = 3
#: Grafana's interval variables at a 1 s scrape interval, and the range a table covers.
INTERVALS = {"__rate_interval": "10s", "__range": "2m"}
#: How far back a time-series panel's query reaches.
RANGE_SECONDS = 90.0

Panel = dict[str, Any]


def scenario() -> Scenario:
    # One reboot slot, the release offered to every host at once: the hosts queue for the slot
    # until the drilled host takes it and keeps it (it cannot finalize), and the rest wait.
    fleet = FleetSpec(hosts=HOSTS, version=OLD, strategy="fleet_lock", groups=(("default", 1),))
    return Scenario(
        "dashboards",
        "",
        duration=24 * 3600.0,
        fleet=fleet,
        releases=(ReleaseSpec(NEW, 300.0), ReleaseSpec("4230.2.1", 0.0, os=FLATCAR)),
        faults=(
            FaultSpec("check_errors", (1,), os=FLATCAR),
            # A Flatcar host that never reboots keeps locksmith's only slot (it is the first to
            # take it, about 95 scenario seconds in): the others wait for good.
            FaultSpec("keeps_slot", (2,), os=FLATCAR),
            FaultSpec("keeps_slot", (DRILLED,)),
            FaultSpec("check_errors", (6,), error="generic_http_503"),
            FaultSpec("check_errors", (7,), error="client_failed_request"),
            FaultSpec("deploy_failures", (8,)),
            FaultSpec("updates_disabled", (9,)),
            FaultSpec("agent_down", (10,), 600.0, None),
        ),
        reboot=30.0,
        flatcar=FlatcarFleetSpec(hosts=FLATCAR_HOSTS, version="4152.2.0", locks=(("default", 1),)),
    )


def _variables(dashboard: dict[str, Any], drilled: str, os: str = "") -> dict[str, str]:
    """Grafana's values: "All" for every variable (the drilled host for a single one), or one OS."""
    values = {**INTERVALS}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            values[variable["name"]] = variable.get("allValue") or drilled
    if os:
        values["os"] = os
    return values


def _targets(rendered: dict[str, str], drilled: str, os: str = "") -> list[tuple[str, Panel, dict[str, Any], str]]:
    """(dashboard title, panel, target, query with the variables filled in) for every target."""
    out = []
    for text in rendered.values():
        dashboard = json.loads(text)
        values = _variables(dashboard, drilled, os)
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                out.append((dashboard["title"], panel, target, substituted(target["expr"], values)))
    return out


def _has_data(prometheus: Prometheus, target: dict[str, Any], query: str) -> bool:
    if target["instant"]:
        return bool(prometheus.query(query))
    return any(series["values"] for series in prometheus.query_range(query, RANGE_SECONDS, 2.0))


def _instant(prometheus: Prometheus, query: str) -> list[dict[str, Any]]:
    return prometheus.query(query)


@pytest.mark.timeout(300)
# Inferred: hosts expose Zincati's socket alone. Reported: each host also runs rpm-ostree and its
# bridge's agent selector is os_update (`simulate --rpm-ostree`), with Zincati's families beside;
# once with the default rules, once with those for a fleet where every host reports.
@pytest.mark.parametrize(
    ("reporting", "infer"),
    [(False, True), (True, True), (True, False)],
    ids=["inferred", "reported", "reported-only"],
)
async def test_every_panel_query_returns_data_and_the_numbers_add_up(
    short_dir: Path, tmp_path: Path, reporting: bool, infer: bool
) -> None:
    live_scenario = scenario()
    drilled = live_scenario.fleet.host_name(DRILLED)
    config = replace(FAST, infer_phases=infer)
    write(tmp_path / "bundle", config)
    rule_file = tmp_path / "bundle" / "prometheus" / "rules" / "recording.yml"
    rendered = dashboards.render(config)
    targets = _targets(rendered, drilled)
    options = LiveOptions(
        short_dir, speed=SPEED, bridge_port_base=0, airlock_port=0, scrape_interval="1s", rpm_ostree=reporting
    )
    async with live_fleet(live_scenario, options):
        jobs = yaml.safe_load((short_dir / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
        with running_prometheus(tmp_path / "prometheus", jobs, rule_files=[rule_file]) as prometheus:

            def empty() -> list[str]:
                return [
                    f"{title} / {panel['title']}: {query}"
                    for title, panel, target, query in targets
                    if (reporting or not panel["title"].endswith(REPORTED_ONLY))
                    and not _has_data(prometheus, target, query)
                ]

            deadline = time.monotonic() + 180
            missing = await asyncio.to_thread(empty)
            while missing and time.monotonic() < deadline:
                print(f"{len(missing)} empty:", *missing[:5], sep="\n  ")
                await asyncio.sleep(3)
                missing = await asyncio.to_thread(empty)
            assert missing == [], "\n".join(missing)

            # Every panel returns data with either OS chosen too (those that read what only
            # reporting hosts say, where hosts report).
            per_os = [(os, _targets(rendered, drilled, os)) for os in ("fedora-coreos", "flatcar")]

            def empty_per_os() -> list[str]:
                return [
                    f"{os}: {title} / {panel['title']}: {query}"
                    for os, chosen in per_os
                    for title, panel, target, query in chosen
                    if (reporting or not panel["title"].endswith(REPORTED_ONLY))
                    # Nebraska plans a rate, not a schedule: Flatcar streams have no planned share.
                    and not (os == FLATCAR and rules.PLANNED_SHARE in query)
                    and not _has_data(prometheus, target, query)
                ]

            missing = await asyncio.to_thread(empty_per_os)
            while missing and time.monotonic() < deadline + 60:
                await asyncio.sleep(3)
                missing = await asyncio.to_thread(empty_per_os)
            assert missing == [], "\n".join(missing)

            def query_of(dashboard: str, panel_title: str, ref: str = "A") -> str:
                return next(
                    q
                    for t, p, target, q in targets
                    if t == dashboard and p["title"] == panel_title and target["refId"] == ref
                )

            overview = "OS updates / Fleet rollout overview"
            # The phase stats add up to the host count, and that is every host of the fleet.
            phase_titles = [
                p["title"] for t, p, _, _ in targets if t == overview and "Hosts in phase" in p.get("description", "")
            ]
            assert len(phase_titles) == 10
            counts = await asyncio.to_thread(
                lambda: [value(_instant(prometheus, query_of(overview, title))[0]) for title in phase_titles]
            )
            hosts = await asyncio.to_thread(lambda: value(_instant(prometheus, query_of(overview, "Hosts"))[0]))
            assert sum(counts) == hosts == HOSTS + FLATCAR_HOSTS

            # With one OS chosen, its phase stats add up to its own hosts (shares of 1 per OS).
            for os, expected in (("fedora-coreos", HOSTS), ("flatcar", FLATCAR_HOSTS)):
                chosen = _targets(rendered, drilled, os)

                def of_os(title: str, chosen: list = chosen) -> str:
                    return str(next(q for t, p, target, q in chosen if t == overview and p["title"] == title))

                counts = await asyncio.to_thread(
                    lambda: [value(_instant(prometheus, of_os(title))[0]) for title in phase_titles]
                )
                hosts = await asyncio.to_thread(lambda: value(_instant(prometheus, of_os("Hosts"))[0]))
                assert sum(counts) == hosts == expected, (os, counts)

            # The version breakdown's shares of each stream add up to 100 %.
            shares = await asyncio.to_thread(
                _instant, prometheus, query_of("OS updates / Version breakdown", "Version breakdown", "B")
            )
            # Both OSes have a stream called "stable": each adds up on its own.
            per_stream: dict[tuple[str, str], float] = {}
            for sample in shares:
                stream = (sample["metric"]["os"], sample["metric"]["stream"])
                per_stream[stream] = per_stream.get(stream, 0.0) + value(sample)
            assert set(per_stream) == {("fedora-coreos", "stable"), ("flatcar", "stable")}, per_stream
            assert all(abs(total - 1.0) < 1e-9 for total in per_stream.values()), per_stream

            # The status breakdown's shares of the phases add up to 100 % too.
            phase_shares = await asyncio.to_thread(
                _instant, prometheus, query_of("OS updates / Status breakdown", "Hosts per phase", "B")
            )
            assert abs(sum(value(s) for s in phase_shares) - 1.0) < 1e-9
