"""A scenario served live: every host over a real transport, behind its own real bridge.

How hosts meet bridges and Prometheus (docs/simulator.md): a real deployment runs one bridge
per host, so the simulator does too. Host `host-0007` gets a directory `DIR/hosts/host-0007/`
holding its transport (`zincati.sock`, Zincati's socket protocol; or `zincati.prom`, replaced
atomically; or a DBus name on the given bus) and `bridge.toml`, a config in the original
format whose selector `zincati` reads it. That bridge (the product's own app, in this process)
listens on `bridge_port_base + 7`. `DIR/prometheus/bridges.json` lists every bridge as a
file_sd target labelled `instance="host-0007"`, so each host is its own instance in the
`zincati` job (path /bridge, selector zincati) and in the `local_exporter` job (the bridge's
own /metrics), exactly as with one bridge per real host. `DIR/prometheus/prometheus.yml` is a
working scrape config for both, plus the airlock under fleet_lock. The update servers are served
too: Cincinnati's `/v1/graph` (the graph every Zincati host is answered from) on its own port,
and, beside Flatcar hosts, Nebraska's /metrics and API.

Time: scenario second `t` happens at wall time `start + t / speed`, and every timestamp a host
exports is that wall time, so Prometheus sees a consistent, faster-moving world.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yaml
from aiohttp import web

from local_exporter.bridge import config as config_module
from local_exporter.bridge.app import make_app
from local_exporter.bridge.sources.os_update import DEFAULT_REBOOTED_FOR
from local_exporter.common.files import replace_file
from local_exporter.common.jobs import (
    AGENT_JOB,
    AGENT_SELECTOR,
    AIRLOCK_INSTANCE,
    AIRLOCK_JOB,
    BRIDGE_JOB,
    FLATCAR_AGENT_JOB,
    FLATCAR_AGENT_SELECTOR,
    FLATCAR_RELEASE_FEED_SELECTOR,
    KUBE_STATE_METRICS_JOB,
    KURED_JOB,
    NEBRASKA_JOB,
    RELEASE_FEED_SELECTOR,
    release_feed_job,
)
from local_exporter.sim import prombus
from local_exporter.sim.airlock import make_airlock_app
from local_exporter.sim.fleet import FlatcarHost, Fleet
from local_exporter.sim.host_flatcar import HostFlatcar
from local_exporter.sim.host_rpm_ostree import HostRpmOstree
from local_exporter.sim.kubernetes import KubernetesMetrics
from local_exporter.sim.nebraska import NebraskaMetrics
from local_exporter.sim.promsock import start_promsock
from local_exporter.sim.scenario import Scenario
from local_exporter.sim.transports import Transport

DESCRIPTORS_PER_HOST = 3
DESCRIPTORS_SPARE = 256


@dataclass(frozen=True)
class LiveOptions:
    directory: Path
    speed: float = 1.0
    transport: Transport = "uds"
    #: The bus for the dbus transport (each host owns one name on it).
    dbus_address: str = ""
    address: str = "127.0.0.1"
    #: Host N's bridge listens on this + N; 0: on any free port each (tests).
    bridge_port_base: int = 19100
    #: The airlock's port under fleet_lock; 0: any free port; None: no airlock (the hosts still
    #: share the semaphores, as if it ran elsewhere).
    airlock_port: int | None = 19099
    #: Wall seconds between two advances of the fleet.
    step: float = 0.2
    scrape_interval: str = "15s"
    #: The host name Prometheus reaches the bridges and airlock at ("": `address`), as in a
    #: compose stack where they listen on 0.0.0.0 and are reached by the service's name.
    target_host: str = ""
    #: Each host also runs rpm-ostree on a bus of its own (a dbus-daemon per host), and its
    #: bridge's agent selector is `kind = "os_update"`: the host reports its own update phase.
    #: Needs the uds transport (the agent's socket).
    rpm_ostree: bool = False
    #: A simulated Nebraska for the Flatcar hosts, if the scenario has any: its /metrics and its
    #: API (channels, groups); 0: any free port.
    nebraska_port: int = 0
    #: The simulated Cincinnati's `GET /v1/graph` (the graph the Zincati hosts are answered
    #: from); 0: any free port.
    cincinnati_port: int = 0


class HostTransport(Protocol):
    async def sync(self, body: bytes | None) -> None:
        """Serve `body` now, or nothing at all while the agent is down (None)."""

    async def close(self) -> None: ...


class SocketTransport:
    """Zincati's protocol: a Unix socket that exists only while the agent runs."""

    def __init__(self, path: Path, render: Callable[[], bytes | None]) -> None:
        self.path = path
        self._render = render
        self._server: asyncio.Server | None = None

    async def sync(self, body: bytes | None) -> None:
        if body is not None and self._server is None:
            self._server = await start_promsock(self.path, lambda: self._render() or b"")
        elif body is None and self._server is not None:
            await self.close()

    async def close(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            await server.wait_closed()


class FileTransport:
    """A textfile, replaced atomically when the exposition changes and removed while down."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._written: bytes | None = None

    async def sync(self, body: bytes | None) -> None:
        if body is self._written:
            return
        if body is None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        else:
            replace_file(self.path, body)
        self._written = body

    async def close(self) -> None:
        await self.sync(None)


class DBusTransport:
    """The prombus interface on a bus name of the host's own, owned only while the agent runs."""

    def __init__(self, address: str, name: str, render: Callable[[], bytes | None]) -> None:
        self.address = address
        self.name = name
        self._render = render
        self._export: prombus.PrombusExport | None = None

    async def sync(self, body: bytes | None) -> None:
        if body is not None and self._export is None:
            self._export = await prombus.export_prombus(self.address, self.name, lambda: self._render() or b"")
        elif body is None and self._export is not None:
            await self.close()

    async def close(self) -> None:
        if self._export is not None:
            export, self._export = self._export, None
            await export.close()


class LiveFleet:
    """Runs `scenario` in real time (compressed by `speed`) until stopped."""

    def __init__(self, scenario: Scenario, options: LiveOptions) -> None:
        if options.transport == "dbus" and not options.dbus_address:
            raise ValueError("the dbus transport needs a bus address")
        if options.rpm_ostree and options.transport != "uds":
            raise ValueError("rpm-ostree hosts report through os_update, which reads the agent's socket: use uds")
        self.scenario = scenario
        self.options = options
        self.fleet: Fleet | None = None
        self.start_time = 0.0
        self._transports: list[HostTransport] = []
        self._rpm_ostree: list[HostRpmOstree] = []
        self._flatcar: list[HostFlatcar] = []
        #: Each Flatcar host's bridge port.
        self.flatcar_ports: list[int] = []
        self._runners: list[web.AppRunner] = []
        #: Each host's bridge port, and the airlock's, once started.
        self.bridge_ports: list[int] = []
        self.airlock_port: int | None = None
        self.nebraska_port: int | None = None
        self.kubernetes_port: int | None = None
        self.cincinnati_port: int | None = None
        self.release_feed_port: int | None = None
        self.release_feed_selectors: tuple[str, ...] = ()

    def host_directory(self, name: str) -> Path:
        return self.options.directory / "hosts" / name

    async def start(self) -> None:
        """Lay out the directory, start every bridge and the airlock, and put the hosts up."""
        options = self.options
        self.start_time = time.time()
        speed = options.speed
        start = self.start_time
        self.fleet = fleet = Fleet(self.scenario, lambda t: start + t / speed)
        try:
            for host in fleet.hosts:
                directory = self.host_directory(host.name)
                directory.mkdir(parents=True, exist_ok=True)
                transport, selector = self._transport(host.index, host.name, directory)
                self._transports.append(transport)
                if options.rpm_ostree:
                    rpm_ostree = HostRpmOstree(directory, self.scenario.fleet.stream)
                    self._rpm_ostree.append(rpm_ostree)
                    await rpm_ostree.start(host)
                    selector = self._os_update_selector(directory, rpm_ostree)
                listener = _listen(options.address, options.bridge_port_base and options.bridge_port_base + host.index)
                self.bridge_ports.append(listener.getsockname()[1])
                await self._start_bridge(directory, listener, {AGENT_SELECTOR: selector})
            listener = _listen(options.address, options.cincinnati_port)
            self.cincinnati_port = listener.getsockname()[1]
            await self._serve(fleet.cincinnati.app(lambda: fleet.now), listener)
            for flatcar in fleet.flatcar:
                await self._start_flatcar(flatcar)
            if fleet.flatcar:
                listener = _listen(options.address, options.nebraska_port)
                self.nebraska_port = listener.getsockname()[1]
                await self._serve(NebraskaMetrics(fleet).app(), listener)
                listener = _listen(options.address, 0)
                self.kubernetes_port = listener.getsockname()[1]
                await self._serve(KubernetesMetrics(fleet).app(), listener)
            await self._start_release_feed()
            if self.scenario.fleet.strategy == "fleet_lock" and options.airlock_port is not None:
                listener = _listen(options.address, options.airlock_port)
                self.airlock_port = listener.getsockname()[1]
                await self._serve(make_airlock_app(fleet.semaphores), listener)
            self._write_prometheus_files()
            await self._sync()
        except BaseException:
            await self.close()
            raise

    async def run(self, stop: asyncio.Event, *, until: float | None = None) -> None:
        """Advance and serve until `stop` is set or scenario time `until` has passed."""
        assert self.fleet is not None, "start() first"
        loop = asyncio.get_running_loop()
        offset = time.time() - self.start_time
        began = loop.time() - offset
        while not stop.is_set():
            t = (loop.time() - began) * self.options.speed
            self.fleet.advance(t)
            await self._sync()
            if until is not None and t >= until:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.step):
                    await stop.wait()

    async def close(self) -> None:
        for transport in self._transports:
            with contextlib.suppress(Exception):
                await transport.close()
        for rpm_ostree in self._rpm_ostree:
            with contextlib.suppress(Exception):
                await rpm_ostree.close()
        self._rpm_ostree.clear()
        for flatcar in self._flatcar:
            with contextlib.suppress(Exception):
                await flatcar.close()
        self._flatcar.clear()
        for runner in self._runners:
            await runner.cleanup()
        self._transports.clear()
        self._runners.clear()

    # --- pieces ----------------------------------------------------------------------------

    def _transport(self, index: int, name: str, directory: Path) -> tuple[HostTransport, str]:
        """The host's transport and the selector line its bridge needs for it."""
        assert self.fleet is not None
        fleet = self.fleet

        def render() -> bytes | None:
            return fleet.render(index)

        match self.options.transport:
            case "uds":
                path = directory / "zincati.sock"
                return SocketTransport(path, render), f'{{ kind = "uds", path = "{path}" }}'
            case "file":
                path = directory / "zincati.prom"
                return FileTransport(path), f'{{ kind = "file", path = "{path}" }}'
            case _:
                bus = prombus.bus_name(name)
                selector = (
                    f'{{ kind = "dbus", bus = "session", destination = "{bus}", path = "{prombus.PATH}", '
                    f'method = "{prombus.METHOD}" }}'
                )
                return DBusTransport(self.options.dbus_address, bus, render), selector

    def _os_update_selector(self, directory: Path, host: HostRpmOstree) -> str:
        """The agent selector of a host that reports its own phase: os_update, with the agent's
        metrics beside, its times scaled to the simulation's speed."""
        speed = self.options.speed
        keys = {
            "kind": "os_update",
            "agent_socket": str(directory / "zincati.sock"),
            "bus_address": host.bus.address,
            "update_driver_file": str(host.driver_file),
            "boot_record": str(host.boot_record),
            "boot_id_file": str(host.boot_id_file),
            "stat_file": str(host.stat_file),
        }
        numbers = {**_reads(speed), "agent_interval": 300.0 / speed, "refresh": 600.0 / speed}
        return _inline_table(keys, numbers)

    async def _start_flatcar(self, host: FlatcarHost) -> None:
        """A Flatcar host: update_engine on its own bus, its files, and a bridge whose
        os_update selector reads them."""
        options = self.options
        directory = self.host_directory(host.name)
        directory.mkdir(parents=True, exist_ok=True)
        flatcar = HostFlatcar(directory)
        self._flatcar.append(flatcar)
        await flatcar.start(host, self.start_time)
        speed = options.speed
        keys = {
            "kind": "os_update",
            "agent": "update_engine",
            "bus_address": flatcar.bus.address,
            **flatcar.selector_files(),
            "boot_record": str(flatcar.boot_record),
            "boot_id_file": str(flatcar.boot_id_file),
            "stat_file": str(flatcar.stat_file),
        }
        numbers = {**_reads(speed), "refresh": 60.0 / speed}
        port = options.bridge_port_base and options.bridge_port_base + len(self.bridge_ports) + host.index
        listener = _listen(options.address, port)
        self.flatcar_ports.append(listener.getsockname()[1])
        await self._start_bridge(directory, listener, {FLATCAR_AGENT_SELECTOR: _inline_table(keys, numbers)})

    async def _start_release_feed(self) -> None:
        """The bridge next to Prometheus that reads the update servers, as a real deployment runs
        it: the fleet's stream from Cincinnati, and with Flatcar hosts their tracks from Nebraska;
        answers kept for a scenario minute."""
        options = self.options
        directory = options.directory / "release_feed"
        directory.mkdir(parents=True, exist_ok=True)
        listener = _listen(options.address, 0)
        self.release_feed_port = listener.getsockname()[1]
        spec = self.scenario.fleet
        keys = {
            "kind": "cincinnati",
            "url": f"http://{options.address}:{self.cincinnati_port}",
            "stream": spec.stream,
            "basearch": spec.basearch,
        }
        cache = {"cache_for": 60.0 / options.speed}
        selectors = {RELEASE_FEED_SELECTOR: _inline_table(keys, cache)}
        if self.nebraska_port is not None:
            nebraska = {"kind": "nebraska", "url": f"http://{options.address}:{self.nebraska_port}"}
            selectors[FLATCAR_RELEASE_FEED_SELECTOR] = _inline_table(nebraska, cache)
        self.release_feed_selectors = tuple(selectors)
        await self._start_bridge(directory, listener, selectors, host=False)

    async def _start_bridge(
        self, directory: Path, listener: socket.socket, selectors: Mapping[str, str], *, host: bool = True
    ) -> None:
        """A bridge of the product's own, serving `selectors` (name -> inline table) from
        `directory/bridge.toml`."""
        config_path = directory / "bridge.toml"
        config_path.write_text(self._bridge_config(listener.getsockname()[1], selectors, host=host))
        await self._serve(make_app(config_module.load(config_path)), listener)

    def _bridge_config(self, port: int, selectors: Mapping[str, str], *, host: bool = True) -> str:
        whose = "this host's bridge" if host else "the release feed, next to Prometheus"
        lines = [
            f"# Written by `local-exporter simulate`: {whose}, in the original format.",
            "[service]",
            f'address = "{self.options.address}"',
            f"port = {port}",
            "tls = false",
            "",
        ]
        if host and self.options.transport == "dbus":
            lines += ["[bridge]", f'dbus_session_bus_address = "{self.options.dbus_address}"', ""]
        lines += ["[bridge.selectors]", *(f"{name} = {selector}" for name, selector in selectors.items()), ""]
        return "\n".join(lines)

    async def _serve(self, app: web.Application, listener: socket.socket) -> None:
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        self._runners.append(runner)
        await web.SockSite(runner, listener).start()

    async def _sync(self) -> None:
        assert self.fleet is not None
        for host, transport in zip(self.fleet.hosts, self._transports, strict=True):
            await transport.sync(self.fleet.render(host.index))
        for host, rpm_ostree in zip(self.fleet.hosts, self._rpm_ostree, strict=False):
            await rpm_ostree.sync(host)
        now = time.time()
        for flatcar_host, flatcar in zip(self.fleet.flatcar, self._flatcar, strict=False):
            await flatcar.sync(flatcar_host, now)

    def _write_prometheus_files(self) -> None:
        assert self.fleet is not None
        directory = self.options.directory / "prometheus"
        directory.mkdir(parents=True, exist_ok=True)
        reached_at = self.options.target_host or self.options.address
        targets = [
            {"targets": [f"{reached_at}:{port}"], "labels": {"instance": host.name}}
            for host, port in zip(self.fleet.hosts, self.bridge_ports, strict=True)
        ]
        bridges = directory / "bridges.json"
        _replace(bridges, targets)
        flatcar = [
            {"targets": [f"{reached_at}:{port}"], "labels": {"instance": host.name}}
            for host, port in zip(self.fleet.flatcar, self.flatcar_ports, strict=True)
        ]
        _replace(directory / "flatcar.json", flatcar)
        # The airlock as a file_sd target too: a Prometheus that reads both files finds it only
        # while a simulated fleet runs (the compose stack's demo profile).
        airlock = [{"targets": [f"{reached_at}:{self.airlock_port}"], "labels": {"instance": AIRLOCK_INSTANCE}}]
        _replace(directory / "airlock.json", airlock if self.airlock_port is not None else [])
        (directory / "prometheus.yml").write_text(prometheus_config(self, bridges))


def _reads(speed: float) -> dict[str, float]:
    """An os_update selector's read interval and `rebooted_for`, scaled to the simulation's speed."""
    return {"interval": max(0.2, min(15.0, 15.0 / speed)), "rebooted_for": DEFAULT_REBOOTED_FOR / speed}


def _inline_table(strings: Mapping[str, str], numbers: Mapping[str, float]) -> str:
    """A selector as one TOML inline table."""
    fields = [f'{key} = "{value}"' for key, value in strings.items()] + [f"{k} = {v:g}" for k, v in numbers.items()]
    return "{ " + ", ".join(fields) + " }"


def _replace(path: Path, targets: Sequence[Mapping[str, object]]) -> None:
    """Write a file_sd file whole: Prometheus never reads half of one."""
    replace_file(path, json.dumps(targets, indent=1) + "\n")


def port_range(ports: list[int]) -> str:
    """Listening ports for a banner: `first-last` when consecutive, else the first and a note."""
    if not ports:
        return "-"
    first, last = ports[0], ports[-1]
    return f"{first}-{last}" if last - first == len(ports) - 1 else f"{first}, ... (any free ports)"


def ensure_descriptors(hosts: int) -> str | None:
    """Raise this process' open-file limit to what `hosts` live hosts need, or say why it cannot.

    Each host holds about three descriptors once scraped (its socket listener, its bridge's
    listener, Prometheus' keep-alive connection); past the limit every scrape fails at once
    (measured at 7,000 hosts under a 20,000 limit: docs/benchmarks.md).
    """
    needed = hosts * DESCRIPTORS_PER_HOST + DESCRIPTORS_SPARE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            return (
                f"{hosts} hosts need about {needed} open files and the hard limit is {hard}: "
                f"raise it (ulimit -Hn) or simulate at most {(hard - DESCRIPTORS_SPARE) // DESCRIPTORS_PER_HOST} hosts"
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return None


def _listen(address: str, port: int) -> socket.socket:
    """A listening socket bound now, so the port is known (and taken) before anything is written."""
    listener = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((address, port))
        listener.listen(128)
    except OSError:
        listener.close()
        raise
    return listener


def prometheus_config(live: LiveFleet, bridges: Path) -> str:
    """A scrape config for the simulated fleet: every host its own instance in both jobs."""
    options = live.options
    interval = options.scrape_interval

    flatcar = bridges.with_name("flatcar.json")

    def file_sd(*files: Path) -> list[dict[str, object]]:
        # A fresh copy per job: a shared object would be written as a YAML anchor.
        return [{"files": [str(f) for f in files], "refresh_interval": "30s"}]

    jobs: list[dict[str, object]] = [
        {
            "job_name": AGENT_JOB,
            "metrics_path": "/bridge",
            "params": {"selector": [AGENT_SELECTOR]},
            "file_sd_configs": file_sd(bridges),
        },
    ]
    if live.flatcar_ports:
        jobs.append(
            {
                "job_name": FLATCAR_AGENT_JOB,
                "metrics_path": "/bridge",
                "params": {"selector": [FLATCAR_AGENT_SELECTOR]},
                "file_sd_configs": file_sd(flatcar),
            }
        )
    bridge_files = (bridges, flatcar) if live.flatcar_ports else (bridges,)
    jobs.append({"job_name": BRIDGE_JOB, "metrics_path": "/metrics", "file_sd_configs": file_sd(*bridge_files)})
    if live.release_feed_port is not None:
        jobs.append(release_feed_job(f"{options.address}:{live.release_feed_port}", live.release_feed_selectors))
    if live.nebraska_port is not None:
        jobs.append(
            {
                "job_name": NEBRASKA_JOB,
                "static_configs": [{"targets": [f"{options.address}:{live.nebraska_port}"]}],
            }
        )
    if live.kubernetes_port is not None:
        # As if FLUO and Kured ran beside: kube-state-metrics and Kured read from one endpoint.
        for job in (KUBE_STATE_METRICS_JOB, KURED_JOB):
            target = f"{options.address}:{live.kubernetes_port}"
            jobs.append({"job_name": job, "static_configs": [{"targets": [target]}]})
    if live.airlock_port is not None:
        target = f"{options.address}:{live.airlock_port}"
        jobs.append(
            {
                "job_name": AIRLOCK_JOB,
                "static_configs": [{"targets": [target], "labels": {"instance": AIRLOCK_INSTANCE}}],
            }
        )
    config = {"global": {"scrape_interval": interval, "evaluation_interval": interval}, "scrape_configs": jobs}
    header = f"# Written by `local-exporter simulate` for scenario {live.scenario.name!r}.\n"
    return header + yaml.safe_dump(config, sort_keys=False)
