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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout, web

from local_exporter.bundle import alertmanager, rules, scale_out
from local_exporter.bundle.config import BundleConfig, Receivers
from local_exporter.bundle.generate import write
from local_exporter.common import jobs
from local_exporter.common.loop import new_loop, stop_on_signals
from local_exporter.demo import servers, stores
from local_exporter.demo.receiver import Receiver
from local_exporter.demo.servers import DemoError
from local_exporter.sim import scenario_file
from local_exporter.sim.live import LiveFleet, LiveOptions, ensure_descriptors, port_range
from local_exporter.sim.scenario import FEDORA_COREOS, FLATCAR, Scenario

#: Where the bridges log (every failed scrape: a host rebooting is one), in the demo's directory.
BRIDGES_LOG = "bridges.log"

#: The queries the banner suggests: the rollout views the dashboards are built on.
EXAMPLE_QUERIES = (
    f"sum by (stream) ({rules.HOSTS_ON_NEWEST}) / sum by (stream) ({rules.HOSTS_BY_STREAM})",
    f"sum by (phase) ({rules.HOSTS_BY_PHASE})",
    f"sum by (os_version) ({rules.HOSTS_BY_VERSION})",
    'ALERTS{alertstate="firing"}',
)


@dataclass(frozen=True)
class Ports:
    prometheus: int
    alertmanager: int
    receiver: int
    victoria_metrics: int
    vmalert: int


def run(args: argparse.Namespace) -> int:
    scenario = scenario_file.preset("demo")
    try:
        if args.speed <= 0 or args.progress_every <= 0 or args.duration < 0:
            raise DemoError("--speed and --progress-every must be positive, --duration not negative")
        if not 0 <= args.shards <= scale_out.MAX_SHARDS:
            raise DemoError(f"--shards must be from 0 (one Prometheus) to {scale_out.MAX_SHARDS}, got {args.shards}")
        missing = servers.missing_binaries(sharded=args.shards > 0)
        if missing:
            packages = " ".join(dict.fromkeys(servers.PACKAGES[m] for m in missing))
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
        # Sharded, the demo runs no Prometheus of its own on a fixed port: the shards take any.
        *([] if args.shards else [(args.prometheus_port, "--prometheus-port")]),
        (args.alertmanager_port, "--alertmanager-port"),
        (args.receiver_port, "--receiver-port"),
        (args.airlock_port, "--airlock-port"),
    ]
    if args.shards:
        fixed += [(args.victoria_metrics_port, "--victoria-metrics-port"), (args.vmalert_port, "--vmalert-port")]
    if args.bridge_port_base:
        fixed += [(args.bridge_port_base + i, "--bridge-port-base") for i in range(scenario.hosts)]
    seen: dict[int, str] = {}
    for port, flag in fixed:
        if port and port in seen:
            raise DemoError(f"port {port} is asked for by both {seen[port]} and {flag}")
        seen[port] = flag
        servers.check_port(address, port, flag)

    taken = {port for port, _flag in fixed if port}

    def chosen(port: int) -> int:
        if not port:
            port = servers.free_port(address, avoid=taken)
            taken.add(port)
        return port

    return Ports(
        chosen(args.prometheus_port),
        chosen(args.alertmanager_port),
        chosen(args.receiver_port),
        chosen(args.victoria_metrics_port) if args.shards else 0,
        chosen(args.vmalert_port) if args.shards else 0,
    )


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
    if args.shards:
        config = replace(config, scale_out_shards=args.shards)
    write(directory / "bundle", config)
    _log_bridges_to(directory / BRIDGES_LOG)
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
    listen = stores.Listen(address, ports.prometheus, ports.alertmanager, ports.victoria_metrics, ports.vmalert)
    fleet_running: asyncio.Task[None] | None = None
    try:
        try:
            await live.start()
        except OSError as exc:
            raise DemoError(f"the simulated fleet cannot start: {exc.strerror or exc}") from None
        fleet_running = asyncio.create_task(live.run(stop))
        fleet_running.add_done_callback(lambda _: stop.set())  # a fleet that fails ends the demo
        await receiver_runner.setup()
        await web.TCPSite(receiver_runner, address, ports.receiver).start()
        started.append(await asyncio.to_thread(_alertmanager, config, directory, address, ports.alertmanager))
        fleet = live.options.directory
        if args.shards:
            store = await asyncio.to_thread(stores.sharded, config, fleet, directory, listen, args.shards, started)
        else:
            store = await asyncio.to_thread(stores.single, config, fleet, directory, listen, started)
        _banner(args, scenario, live, ports, store, directory)
        await _report_progress(store.query_url, live, receiver, stop, args.progress_every)
    finally:
        stop.set()
        for server in reversed(started):
            await asyncio.to_thread(servers.stop, server)
        await receiver_runner.cleanup()
        if fleet_running is not None:
            await asyncio.wait({fleet_running})  # its failure is reported below, once all is down
        await live.close()
        kept = f"; files kept in {directory}" if args.dir else ""
        stores_down = f"{args.shards} Prometheus shards, VictoriaMetrics, vmalert" if args.shards else "Prometheus"
        print(
            f"demo stopped: {stores_down}, Alertmanager, the receiver and "
            f"{len(live.bridge_ports) + len(live.flatcar_ports)} bridges are down{kept}"
        )
    assert fleet_running is not None
    failure = fleet_running.exception() if not fleet_running.cancelled() else None
    if failure is not None:
        logging.getLogger("local_exporter").error("the simulated fleet stopped", exc_info=failure)
        where = f" (its traceback is in {directory / BRIDGES_LOG})" if args.dir else ""
        raise DemoError(f"the simulated fleet stopped: {type(failure).__name__}: {failure}{where}")
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


def _banner(
    args: argparse.Namespace,
    scenario: Scenario,
    live: LiveFleet,
    ports: Ports,
    store: stores.Stores,
    directory: Path,
) -> None:
    address = args.address
    alertmanager_server = store.servers[0]
    release = next(r.version for r in scenario.releases if r.os == FEDORA_COREOS)
    bridges, flatcar_bridges = port_range(live.bridge_ports), port_range(live.flatcar_ports)
    flatcar = scenario.flatcar
    flatcar_release = next((r.version for r in scenario.releases if r.os == FLATCAR), "")
    also = f" and {flatcar.hosts} Flatcar hosts {flatcar_release} through locksmith" if flatcar is not None else ""
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
        f"{_store_lines(store)}"
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


def _store_lines(store: stores.Stores) -> str:
    """The banner's lines for where the series are: one Prometheus, or the scale-out topology."""
    if not store.shards:
        (_alertmanager, prometheus) = store.servers
        graph = "".join(
            f"                {prometheus.url}/graph?g0.expr={urllib.parse.quote(q)}&g0.tab=0\n"
            for q in EXAMPLE_QUERIES
        )
        return f"  Prometheus    {prometheus.url}  (pid {prometheus.process.pid}); the rollout views:\n{graph}"
    (_alertmanager, victoria_metrics, *shards, vmalert) = store.servers
    # Debian's VictoriaMetrics has no web UI: its query API, which Grafana reads as a Prometheus'.
    queries = "".join(
        f"                {victoria_metrics.url}/api/v1/query?query={urllib.parse.quote(q)}\n" for q in EXAMPLE_QUERIES
    )
    return (
        f"  VictoriaMetrics {victoria_metrics.url}  (pid {victoria_metrics.process.pid}): the store, "
        f"queried like a Prometheus; the rollout views:\n{queries}"
        f"  shards        {len(shards)} Prometheus in agent mode, each scraping the targets whose address hashes to it "
        f"and writing them into the store: "
        + ", ".join(f"{shard.url}/targets (pid {shard.process.pid})" for shard in shards)
        + "\n"
        f"  vmalert       {vmalert.url}  (pid {vmalert.process.pid}): the bundle's rules and alerts, on the store "
        "(its counts trail one Prometheus': the store shows a new series some 10 s after it is written, and a "
        "rule that reads another's result reads it from the store; docs/deploy.md)\n"
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
                async with asyncio.timeout(every):
                    await stop.wait()
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
