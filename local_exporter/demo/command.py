"""`local-exporter demo`: a simulated fleet rolling out behind real bridges, a real Prometheus with
the generated rules, a real Alertmanager with the generated routes, and a receiver printing alerts."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import ClientError, ClientSession, ClientTimeout, web

from local_exporter.bundle import alertmanager, rules
from local_exporter.bundle.config import BundleConfig, Receivers
from local_exporter.bundle.generate import write
from local_exporter.common import jobs
from local_exporter.common.loop import new_loop, stop_on_signals
from local_exporter.demo import servers
from local_exporter.demo.receiver import Receiver
from local_exporter.demo.servers import DemoError
from local_exporter.sim import scenario_file
from local_exporter.sim.live import LiveFleet, LiveOptions, ensure_descriptors, port_range
from local_exporter.sim.scenario import FEDORA_COREOS, FLATCAR, Scenario

#: The queries the banner suggests: the rollout views the dashboards are built on.
EXAMPLE_QUERIES = (
    f"sum by (stream) ({rules.HOSTS_ON_NEWEST}) / sum by (stream) ({rules.HOSTS_BY_STREAM})",
    f"sum by (phase) ({rules.HOSTS_BY_PHASE})",
    f"sum by (os_version) ({rules.HOSTS_BY_VERSION})",
    'ALERTS{alertstate="firing"}',
)
CLUSTER = "demo"


@dataclass(frozen=True)
class Ports:
    prometheus: int
    alertmanager: int
    receiver: int


def run(args: argparse.Namespace) -> int:
    scenario = scenario_file.preset("demo")
    try:
        if args.speed <= 0 or args.progress_every <= 0 or args.duration < 0:
            raise DemoError("--speed and --progress-every must be positive, --duration not negative")
        missing = servers.missing_binaries()
        if missing:
            packages = " ".join(servers.PACKAGES[m] for m in missing)
            raise DemoError(f"needs {', '.join(missing)}: run scripts/bootstrap, or `sudo apt-get install {packages}`")
        ports = _ports(args, scenario)
        problem = ensure_descriptors(scenario.hosts)
        if problem:
            raise DemoError(problem)
        with contextlib.ExitStack() as stack:
            directory = args.dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="le-demo-")))
            directory.mkdir(parents=True, exist_ok=True)
            with asyncio.Runner(loop_factory=new_loop) as runner:
                return runner.run(_demo(args, scenario, ports, directory))
    except DemoError as exc:
        print(f"local-exporter demo: {exc}", file=sys.stderr)
        return 1


def _ports(args: argparse.Namespace, scenario: Scenario) -> Ports:
    """Every port the demo will listen on, checked free before anything starts."""
    address = args.address
    fixed = [
        (args.prometheus_port, "--prometheus-port"),
        (args.alertmanager_port, "--alertmanager-port"),
        (args.receiver_port, "--receiver-port"),
        (args.airlock_port, "--airlock-port"),
    ]
    if args.bridge_port_base:
        fixed += [(args.bridge_port_base + i, "--bridge-port-base") for i in range(scenario.hosts)]
    seen: dict[int, str] = {}
    for port, flag in fixed:
        if port and port in seen:
            raise DemoError(f"port {port} is asked for by both {seen[port]} and {flag}")
        seen[port] = flag
        servers.check_port(address, port, flag)

    def chosen(port: int) -> int:
        return port or servers.free_port(address)

    return Ports(chosen(args.prometheus_port), chosen(args.alertmanager_port), chosen(args.receiver_port))


async def _demo(args: argparse.Namespace, scenario: Scenario, ports: Ports, directory: Path) -> int:
    address, speed = args.address, args.speed
    receiver_url = f"http://{address}:{ports.receiver}"
    receivers = Receivers(
        pager_url=f"{receiver_url}/pager",
        ticket_url=f"{receiver_url}/ticket",
        heartbeat_url=f"{receiver_url}/heartbeat",
    )
    # Every host reports its own phase unless --inferred: the bundle for such a fleet infers none.
    config = BundleConfig(receivers=receivers, infer_phases=args.inferred).scaled(speed)
    write(directory / "bundle", config)
    _log_bridges_to(directory / "bridges.log")
    stop = stop_on_signals()
    if args.duration:
        asyncio.get_running_loop().call_later(args.duration, stop.set)

    live = LiveFleet(
        scenario,
        LiveOptions(
            directory / "fleet",
            speed=speed,
            address=address,
            bridge_port_base=args.bridge_port_base,
            airlock_port=args.airlock_port,
            scrape_interval=config.scrape_interval,
            rpm_ostree=not args.inferred,
        ),
    )
    receiver = Receiver(out=lambda line: print(line, flush=True))
    receiver_runner = web.AppRunner(receiver.app(), access_log=None)
    started: list[servers.Server] = []
    fleet_running: asyncio.Task[None] | None = None
    try:
        try:
            await live.start()
        except OSError as exc:
            raise DemoError(f"the simulated fleet cannot start: {exc.strerror or exc}") from None
        fleet_running = asyncio.create_task(live.run(stop))
        await receiver_runner.setup()
        await web.TCPSite(receiver_runner, address, ports.receiver).start()
        started.append(await asyncio.to_thread(_alertmanager, config, directory, address, ports.alertmanager))
        started.append(await asyncio.to_thread(_prometheus, config, live, directory, address, ports))
        _banner(args, scenario, live, ports, started, directory)
        await _report_progress(started[-1].url, live, receiver, stop, args.progress_every)
    finally:
        stop.set()
        for server in reversed(started):
            await asyncio.to_thread(servers.stop, server)
        await receiver_runner.cleanup()
        if fleet_running is not None:
            await fleet_running
        await live.close()
        kept = f"; files kept in {directory}" if args.dir else ""
        print(
            f"demo stopped: Prometheus, Alertmanager, the receiver and "
            f"{len(live.bridge_ports) + len(live.flatcar_ports)} bridges are down{kept}"
        )
    return 0


def _log_bridges_to(path: Path) -> None:
    """The bridges log every failed scrape (a host rebooting is one): to a file, not the screen."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    bridges = logging.getLogger("local_exporter")
    bridges.handlers[:] = [handler]
    bridges.propagate = False
    bridges.setLevel(logging.INFO)


def _alertmanager(config: BundleConfig, directory: Path, address: str, port: int) -> servers.Server:
    bundle = directory / "bundle" / "alertmanager"
    data = alertmanager.config_data(config)
    # Notify at once and often enough to watch, whatever the day: no maintenance window.
    data["route"]["group_wait"] = "2s"
    data["route"]["group_interval"] = "10s"
    for route in data["route"]["routes"]:
        route.pop("mute_time_intervals", None)
    demo_config = bundle / "alertmanager-demo.yml"
    demo_config.write_text(json.dumps(data, indent=2))
    storage = directory / "alertmanager-data"
    storage.mkdir(exist_ok=True)
    argv = [
        servers.ALERTMANAGER,
        f"--config.file={demo_config}",
        f"--storage.path={storage}",
        f"--web.listen-address={address}:{port}",
        "--cluster.listen-address=",
    ]
    return servers.start("Alertmanager", argv, f"http://{address}:{port}", directory / "alertmanager.log")


def _prometheus(config: BundleConfig, live: LiveFleet, directory: Path, address: str, ports: Ports) -> servers.Server:
    written = yaml.safe_load((live.options.directory / "prometheus" / "prometheus.yml").read_text())
    data: dict[str, Any] = {
        "global": {
            "scrape_interval": config.scrape_interval,
            "scrape_timeout": config.scrape_interval,
            "evaluation_interval": config.scrape_interval,
            "external_labels": {config.cluster_label: CLUSTER},
        },
        "rule_files": [str(path) for path in sorted((directory / "bundle" / "prometheus" / "rules").glob("*.yml"))],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"{address}:{ports.alertmanager}"]}]}]},
        "scrape_configs": written["scrape_configs"],
    }
    path = directory / "prometheus.yml"
    path.write_text(json.dumps(data, indent=2))
    argv = [
        servers.PROMETHEUS,
        f"--config.file={path}",
        f"--storage.tsdb.path={directory / 'prometheus-data'}",
        f"--web.listen-address={address}:{ports.prometheus}",
        "--storage.tsdb.retention.time=1d",
        "--rules.alert.resend-delay=2s",
    ]
    return servers.start("Prometheus", argv, f"http://{address}:{ports.prometheus}", directory / "prometheus.log")


def _banner(
    args: argparse.Namespace,
    scenario: Scenario,
    live: LiveFleet,
    ports: Ports,
    started: list[servers.Server],
    directory: Path,
) -> None:
    address = args.address
    alertmanager_server, prometheus = started
    release = next(r.version for r in scenario.releases if r.os == FEDORA_COREOS)
    bridges, flatcar_bridges = port_range(live.bridge_ports), port_range(live.flatcar_ports)
    flatcar = scenario.flatcar
    flatcar_release = next((r.version for r in scenario.releases if r.os == FLATCAR), "")
    also = f" and {flatcar.hosts} Flatcar hosts {flatcar_release} through locksmith" if flatcar is not None else ""
    graph = "\n".join(
        f"                {prometheus.url}/graph?g0.expr={urllib.parse.quote(q)}&g0.tab=0" for q in EXAMPLE_QUERIES
    )
    flatcar_line = (
        f"  Flatcar       http://{address}:{flatcar_bridges}  one per host: "
        f"/bridge?selector={jobs.FLATCAR_AGENT_SELECTOR} (os_update reading update_engine), /metrics\n"
        if live.flatcar_ports
        else ""
    )
    print(
        f"local-exporter demo: {scenario.fleet.hosts} Fedora CoreOS hosts roll out {release} through FleetLock{also}, "
        f"{args.speed:g}x real "
        f"time ({scenario.duration / 3600:g} h of scenario in {scenario.duration / args.speed / 60:.0f} min). "
        "Ctrl-C stops.\n"
        f"  Prometheus    {prometheus.url}  (pid {prometheus.process.pid}); the rollout views:\n{graph}\n"
        f"  Alertmanager  {alertmanager_server.url}  (pid {alertmanager_server.process.pid})\n"
        f"  bridges       http://{address}:{bridges}  one per host: /bridge?selector={jobs.AGENT_SELECTOR}, /metrics"
        f"{'' if args.inferred else ' (the host reports its own phase: os_update)'}\n"
        f"{flatcar_line}"
        f"  release feed  http://{address}:{live.release_feed_port}  /bridge?selector="
        f"{', '.join(live.release_feed_selectors)}: the update servers' releases and rollout plan "
        f"(Cincinnati http://{address}:{live.cincinnati_port}/v1/graph"
        f"{f', Nebraska http://{address}:{live.nebraska_port}/api' if live.nebraska_port else ''})\n"
        f"  airlock       http://{address}:{live.airlock_port}/metrics\n"
        f"  receiver      http://{address}:{ports.receiver}  prints every alert Alertmanager sends, below\n"
        f"  files         {directory}  (the generated bundle, each host's socket and bridge config, the logs)\n"
        "Alerts print as they fire and resolve; a progress line every few seconds:",
        flush=True,
    )


async def _report_progress(
    prometheus: str, live: LiveFleet, receiver: Receiver, stop: asyncio.Event, every: float
) -> None:
    """A line of rollout progress every `every` seconds until `stop`."""
    async with ClientSession(timeout=ClientTimeout(total=5)) as session:

        async def query(promql: str) -> list[dict[str, Any]]:
            try:
                async with session.get(f"{prometheus}/api/v1/query", params={"query": promql}) as response:
                    result: list[dict[str, Any]] = (await response.json())["data"]["result"]
                    return result
            except (ClientError, TimeoutError, KeyError, ValueError):
                return []

        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            if stop.is_set():
                return
            print(await _progress(query, live, receiver), flush=True)


async def _progress(query: Any, live: LiveFleet, receiver: Receiver) -> str:
    newest = await query(f"max by (os, os_version) ({rules.NEWEST})")
    on_newest = await query(f"sum by (os) ({rules.HOSTS_ON_NEWEST})")
    hosts = await query(f"sum by (os) ({rules.HOSTS_BY_PHASE})")
    phases = await query(f"sum by (phase) ({rules.HOSTS_BY_PHASE})")
    firing = await query('count by (alertname) (ALERTS{alertstate="firing"})')
    elapsed = (time.time() - live.start_time) * live.options.speed

    def per_os(result: list[dict[str, Any]]) -> dict[str, int]:
        return {s["metric"].get("os", "?"): int(float(s["value"][1])) for s in result}

    done, total = per_os(on_newest), per_os(hosts)
    versions = {s["metric"].get("os", "?"): s["metric"].get("os_version", "?") for s in newest}
    rollouts = "; ".join(
        f"{os} newest {versions.get(os, '?')} on {done.get(os, 0)}/{count} hosts" for os, count in sorted(total.items())
    )
    counts = ", ".join(
        f"{s['metric']['phase']} {int(float(s['value'][1]))}"
        for s in sorted(phases, key=lambda s: -float(s["value"][1]))
    )
    alerts = ", ".join(sorted(s["metric"]["alertname"] for s in firing if "Heartbeat" not in s["metric"]["alertname"]))
    return (
        f"[scenario {int(elapsed // 3600)}:{int(elapsed % 3600 // 60):02d}] {rollouts or 'no hosts yet'}"
        f" | {counts or 'no phases yet'} | firing: {alerts or 'none'} | notifications: {len(receiver.received)}"
    )
