"""`local-exporter simulate`'s options and help (run by command.py, loaded when it runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from local_exporter.common.arguments import port_or_any
from local_exporter.sim.scenario import FAULT_KINDS
from local_exporter.sim.transports import TRANSPORTS

DESCRIPTION = (
    "Simulate a fleet of Fedora CoreOS hosts running Zincati, and Flatcar hosts running update_engine "
    "and locksmith (a scenario's [flatcar] table), each behind its own bridge."
)
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


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options and help to its subparser (cli.py calls this when it is used)."""
    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
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
    live.add_argument(
        "--rpm-ostree",
        action="store_true",
        help="each host also runs rpm-ostree on a dbus-daemon of its own and reports its update phase "
        "(its bridge's agent selector is os_update); uds transport only. With --backfill: the history holds "
        "the phase families each host's bridge would have served",
    )
    live.add_argument("--address", default="127.0.0.1", help="address bridges and airlock listen on")
    live.add_argument(
        "--bridge-port-base",
        type=port_or_any,
        default=19100,
        help="host N's bridge port is this + N (0: any free ports)",
    )
    live.add_argument(
        "--airlock-port", type=port_or_any, default=19099, help="airlock's port under fleet_lock (0: any free)"
    )
    live.add_argument("--no-airlock", action="store_true", help="run no airlock (the hosts still share its slots)")
    live.add_argument("--scrape-interval", default="15s", help="scrape interval in the written prometheus.yml")
    live.add_argument(
        "--target-host", default="", help="host name Prometheus reaches the bridges at (default: --address)"
    )
    live.add_argument("--exit-at-end", action="store_true", help="stop when the scenario ends (default: keep serving)")
    history = parser.add_argument_group("history")
    history.add_argument("--backfill", type=Path, metavar="FILE", help="write the scenario as OpenMetrics and exit")
    history.add_argument("--interval", default="15s", help="scrape interval of the history (default 15s)")
