"""`local-exporter simulate`: run a scenario live behind real bridges, or write it as history."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path

from local_exporter.loop import new_loop, stop_on_signals
from local_exporter.sim import scenario_file as scenarios
from local_exporter.sim.history import write_history
from local_exporter.sim.live import TRANSPORTS, LiveFleet, LiveOptions, ensure_descriptors
from local_exporter.sim.scenario import FAULT_KINDS, Scenario, parse_duration
from local_exporter.sim.scenario_file import ScenarioError

DESCRIPTION = "Simulate a fleet of Fedora CoreOS hosts running Zincati, each behind its own bridge."
EPILOG = f"""\
A scenario is a small TOML file: a [fleet] (hosts, version, stream, strategy immediate or
fleet_lock with [fleet.groups] reboot slots, wariness, seed), the [[releases]] that appear on its
stream (version, at, rollout: a phased window in which a host of wariness w gets the release at
at + w * rollout) and the [[faults]] injected into some hosts between start and end
(kinds: {", ".join(FAULT_KINDS)}). Durations are seconds or "90s", "15m", "2h", "1d".
`--list-presets` shows the built-in scenarios, `--print-preset NAME` prints one to copy, and
docs/simulator.md documents every key, the model and what is exact versus approximated.

Live (the default): every host serves its metrics over the chosen transport, a real bridge
per host listens on --bridge-port-base + N, and DIR/prometheus/prometheus.yml scrapes them all
(each host is its own `instance`). --speed 60 runs an hour of scenario in a minute.
History: --backfill FILE writes the scenario as OpenMetrics for
`promtool tsdb create-blocks-from openmetrics FILE DIR`, one scrape per --interval.
"""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "simulate",
        help="simulate a fleet of Zincati hosts behind real bridges, live or as backfilled history",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--scenario", type=Path, metavar="FILE", help="a scenario TOML file")
    which.add_argument("--preset", default="demo", metavar="NAME", help="a built-in scenario (default demo)")
    parser.add_argument("--list-presets", action="store_true", help="list the built-in scenarios and exit")
    parser.add_argument("--print-preset", metavar="NAME", help="print a built-in scenario's TOML and exit")
    parser.add_argument("--check", action="store_true", help="only validate the scenario: exit 0, or 1 with problems")
    live = parser.add_argument_group("live")
    live.add_argument("--speed", type=float, default=1.0, help="scenario seconds per wall second (default 1)")
    live.add_argument("--dir", type=Path, help="where hosts, bridge configs and Prometheus files go (default: temp)")
    live.add_argument("--transport", choices=TRANSPORTS, default="uds", help="how hosts serve metrics (default uds)")
    live.add_argument("--dbus-address", default="", help="the bus for --transport dbus")
    live.add_argument("--address", default="127.0.0.1", help="address bridges and airlock listen on")
    live.add_argument(
        "--bridge-port-base", type=int, default=19100, help="host N's bridge port is this + N (0: any free ports)"
    )
    live.add_argument("--airlock-port", type=int, default=19099, help="airlock's port under fleet_lock (0: any free)")
    live.add_argument("--no-airlock", action="store_true", help="run no airlock (the hosts still share its slots)")
    live.add_argument("--scrape-interval", default="15s", help="scrape interval in the written prometheus.yml")
    live.add_argument(
        "--target-host", default="", help="host name Prometheus reaches the bridges at (default: --address)"
    )
    live.add_argument("--exit-at-end", action="store_true", help="stop when the scenario ends (default: keep serving)")
    history = parser.add_argument_group("history")
    history.add_argument("--backfill", type=Path, metavar="FILE", help="write the scenario as OpenMetrics and exit")
    history.add_argument("--interval", default="15s", help="scrape interval of the history (default 15s)")
    return parser


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
    history = write_history(scenario, args.backfill, interval=interval)
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
        )
        try:
            live = LiveFleet(scenario, options)
        except ValueError as exc:
            return _fail(str(exc))
        problem = ensure_descriptors(scenario.fleet.hosts)
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
    ports = f"{live.bridge_ports[0]}-{live.bridge_ports[-1]}" if len(live.bridge_ports) > 1 else live.bridge_ports[0]
    airlock = f"  airlock   http://{options.address}:{live.airlock_port}/metrics\n" if live.airlock_port else ""
    print(
        f"simulating {scenario.name!r}: {scenario.fleet.hosts} hosts at {options.speed:g}x "
        f"({_hours(scenario.duration)} of scenario in {_hours(scenario.duration / options.speed)}); Ctrl-C stops\n"
        f"  bridges   http://{options.address}:{ports}/bridge?selector=zincati (one per host)\n"
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
