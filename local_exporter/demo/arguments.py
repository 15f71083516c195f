"""`local-exporter demo`'s options and help (run by command.py, loaded when it runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from local_exporter.common.arguments import port_or_any

DESCRIPTION = "See the whole product work: a simulated fleet mid-rollout, its bridges, Prometheus and Alertmanager."
EPILOG = """\
Runs the `demo` scenario (24 Fedora CoreOS hosts rolling out a release through FleetLock, with
faults on the way: failing update checks, users blocking a reboot, an agent going down, one
that stops refreshing) --speed times faster than real time, each host behind its own real
bridge, which reports the host's exact update phase from Zincati and the host's rpm-ostree (on
a dbus-daemon of its own; --inferred: Zincati alone, the phase inferred by the rules).
Prometheus (Debian's `prometheus`) scrapes them and evaluates the generated recording rules
and alerts, every window scaled by --speed; Alertmanager (`prometheus-alertmanager`) routes
the alerts to a receiver that prints each one here. Every --progress-every seconds a line shows
the rollout's progress, the hosts per update phase and the alerts firing. Ctrl-C (or
--duration) stops everything and removes what it made (a --dir is kept, its sockets removed).
If the simulated fleet fails, the demo stops the same way and says why in one line (exit 1).
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's options and help to its subparser (cli.py calls this when it is used)."""
    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--speed", type=float, default=30.0, help="scenario seconds per wall second (default 30)")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (default: Ctrl-C)")
    parser.add_argument("--progress-every", type=float, default=10.0, help="seconds between progress lines")
    parser.add_argument("--address", default="127.0.0.1", help="address every server listens on")
    parser.add_argument("--prometheus-port", type=port_or_any, default=9090, help="0: any free port")
    parser.add_argument("--alertmanager-port", type=port_or_any, default=9093, help="0: any free port")
    parser.add_argument(
        "--receiver-port", type=port_or_any, default=9099, help="the alert receiver's port; 0: any free"
    )
    parser.add_argument(
        "--airlock-port", type=port_or_any, default=19099, help="the FleetLock server's port; 0: any free"
    )
    parser.add_argument(
        "--bridge-port-base", type=port_or_any, default=19100, help="host N's bridge port; 0: any free ports"
    )
    parser.add_argument(
        "--shards",
        type=int,
        default=0,
        help="run the bundle's scale-out topology: this many Prometheus shards (agent mode) splitting the "
        "bridges between them and writing into VictoriaMetrics, where vmalert evaluates the rules "
        "(Debian's victoria-metrics); default 0: one Prometheus",
    )
    parser.add_argument(
        "--victoria-metrics-port", type=port_or_any, default=8428, help="with --shards; 0: any free port"
    )
    parser.add_argument("--vmalert-port", type=port_or_any, default=8880, help="with --shards; 0: any free port")
    parser.add_argument("--dir", type=Path, help="keep the demo's files here (default: a temporary directory)")
    parser.add_argument(
        "--inferred",
        action="store_true",
        help="hosts expose Zincati's socket alone and the bundle infers each phase (default: each host also runs "
        "rpm-ostree on a bus of its own and its bridge reports the host's exact phase)",
    )
