"""`local-exporter simulate`: run a scenario live behind real bridges, or write it as history.

Its options are in arguments.py, which the CLI reads without loading this.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path

from local_exporter.common.durations import parse_duration
from local_exporter.common.loop import new_loop, stop_on_signals
from local_exporter.sim import scenario_file as scenarios
from local_exporter.sim.history import write_history
from local_exporter.sim.live import LiveFleet, LiveOptions, ensure_descriptors, port_range
from local_exporter.sim.scenario import Scenario
from local_exporter.sim.scenario_file import ScenarioError


def run(args: argparse.Namespace) -> int:
    if args.list_presets:
        for name in scenarios.PRESETS:
            preset = scenarios.preset(name)
            print(f"{name:12s} {preset.fleet.hosts:5d} hosts  {_hours(preset.duration)}  {preset.description}")
        return 0
    if args.print_preset:
        if args.print_preset not in scenarios.PRESETS:
            return _fail(f"no preset {args.print_preset!r}; presets: {', '.join(scenarios.PRESETS)}")
        print(scenarios.preset_text(args.print_preset), end="")
        return 0
    scenario = _scenario(args)
    if scenario is None:
        return 1
    if args.check:
        print(f"{args.scenario or args.preset}: OK, {scenario.fleet.hosts} hosts, {_hours(scenario.duration)}")
        return 0
    if args.backfill:
        return _backfill(scenario, args)
    return _live(scenario, args)


def _scenario(args: argparse.Namespace) -> Scenario | None:
    try:
        if args.scenario is not None:
            return scenarios.load(args.scenario)
        if args.preset not in scenarios.PRESETS:
            _fail(f"no preset {args.preset!r}; presets: {', '.join(scenarios.PRESETS)}")
            return None
        return scenarios.preset(args.preset)
    except ScenarioError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{args.scenario}: {len(exc.problems)} problem(s); not simulating", file=sys.stderr)
        return None


def _backfill(scenario: Scenario, args: argparse.Namespace) -> int:
    try:
        interval = parse_duration(args.interval)
    except ValueError as exc:
        return _fail(f"--interval: {exc}")
    if interval <= 0:
        return _fail("--interval: must be positive")
    began = time.perf_counter()
    history = write_history(scenario, args.backfill, interval=interval, reported=args.rpm_ostree)
    stats = history.stats
    print(
        f"{args.backfill}: {scenario.fleet.hosts} hosts, {history.scrapes} scrapes each, {stats.samples} samples "
        f"in {stats.series} series, {stats.bytes / 1e6:.1f} MB, {time.perf_counter() - began:.1f} s\n"
        f"from {_utc(history.start)} to {_utc(history.end)}; load it with:\n"
        f"  promtool tsdb create-blocks-from openmetrics {args.backfill} DATA_DIR"
    )
    return 0


def _live(scenario: Scenario, args: argparse.Namespace) -> int:
    if args.speed <= 0:
        return _fail("--speed: must be positive")
    with contextlib.ExitStack() as stack:
        directory = args.dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="le-sim-")))
        options = LiveOptions(
            directory=directory,
            speed=args.speed,
            transport=args.transport,
            dbus_address=args.dbus_address,
            address=args.address,
            bridge_port_base=args.bridge_port_base,
            airlock_port=None if args.no_airlock else args.airlock_port,
            scrape_interval=args.scrape_interval,
            target_host=args.target_host,
            rpm_ostree=args.rpm_ostree,
        )
        try:
            live = LiveFleet(scenario, options)
        except ValueError as exc:
            return _fail(str(exc))
        problem = ensure_descriptors(scenario.hosts)
        if problem:
            return _fail(problem)
        with asyncio.Runner(loop_factory=new_loop) as runner:
            return runner.run(_serve(live, args.exit_at_end))


async def _serve(live: LiveFleet, exit_at_end: bool) -> int:
    stop = stop_on_signals()
    try:
        await live.start()
    except OSError as exc:
        return _fail(f"cannot start: {exc.strerror or exc}")
    options, scenario = live.options, live.scenario
    address = options.address
    airlock = f"  airlock   http://{address}:{live.airlock_port}/metrics\n" if live.airlock_port else ""
    flatcar = ""
    if scenario.flatcar is not None:
        flatcar = (
            f"  flatcar   http://{address}:{port_range(live.flatcar_ports)}/bridge?selector=update_engine "
            f"({scenario.flatcar.hosts} Flatcar hosts, one bridge each)\n"
            f"  nebraska  http://{address}:{live.nebraska_port}/metrics and /api/apps; kube-state-metrics and Kured as "
            f"http://{address}:{live.kubernetes_port}/metrics\n"
        )
    print(
        f"simulating {scenario.name!r}: {scenario.fleet.hosts} hosts at {options.speed:g}x "
        f"({_hours(scenario.duration)} of scenario in {_hours(scenario.duration / options.speed)}); Ctrl-C stops\n"
        f"  bridges   http://{address}:{port_range(live.bridge_ports)}/bridge?selector=zincati (one per host)\n"
        f"  updates   http://{address}:{live.cincinnati_port}/v1/graph?basearch={scenario.fleet.basearch}"
        f"&stream={scenario.fleet.stream} (Cincinnati)\n"
        f"{flatcar}"
        f"{airlock}"
        f"  hosts     {options.directory / 'hosts'}\n"
        f"  targets   {options.directory / 'prometheus' / 'bridges.json'}\n"
        f"  config    {options.directory / 'prometheus' / 'prometheus.yml'}",
        flush=True,
    )
    try:
        await live.run(stop, until=scenario.duration if exit_at_end else None)
    finally:
        await live.close()
    return 0


def _fail(message: str) -> int:
    print(f"local-exporter simulate: {message}", file=sys.stderr)
    return 1


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds / 60:g} min"


def _utc(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
