"""The `local-exporter` command: serve, check-config, example, simulate, bundle, demo.

A drop-in for the original's command line: `serve -c FILE` (or `--config FILE`, also before
the subcommand), `-v` repeatable, default config `/etc/local_exporter/config.toml`.

Each command imports what it runs when it runs: `serve` loads the daemon only (bridge/), never
the bundle, the simulator or the demo, and a web config's TLS and bcrypt only when it has one.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from local_exporter import __version__
from local_exporter.bridge.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load
from local_exporter.common import arguments, logs
from local_exporter.common.fields import ProblemsError

if TYPE_CHECKING:
    import ssl

    from aiohttp import web

log = logging.getLogger("local_exporter")
T = TypeVar("T")

#: Commands whose options are declared beside their code, by the module's `configure(parser)`:
#: their help line here, their module loaded only when the command is used (or its --help).
LAZY_COMMANDS = {
    "simulate": (
        "simulate Fedora CoreOS and Flatcar hosts behind real bridges, live or as backfilled history",
        "local_exporter.sim.arguments",
    ),
    "demo": (
        "run a simulated fleet with real bridges, Prometheus and Alertmanager, and print its alerts",
        "local_exporter.demo.arguments",
    ),
}


#: Commands whose printed output is their interface: their logs default to warnings (the
#: bridges a demo runs would otherwise add a line per recovered scrape).
QUIET_COMMANDS = frozenset(("simulate", "demo", "bundle", "check-config", "check-web-config"))


class _Subcommands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """Subcommands that add a lazy command's options when that command is parsed, so that
    `serve` never loads the simulator or the demo to list options it does not have."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        name = values[0] if isinstance(values, list) and values else None
        subparser = self._name_parser_map.get(name) if isinstance(name, str) else None
        if name in LAZY_COMMANDS and subparser is not None and not subparser._actions[1:]:
            importlib.import_module(LAZY_COMMANDS[name][1]).configure(subparser)
        super().__call__(parser, namespace, values, option_string)


def _common(parser: argparse.ArgumentParser, *, top: bool, config: bool = True) -> None:
    # Options exist on the top parser and on each subcommand that uses them, as the original's
    # persistent flags did; SUPPRESS keeps a subcommand from resetting what was given before it.
    default = (lambda value: value) if top else (lambda value: argparse.SUPPRESS)
    if config:
        parser.add_argument(
            "-c",
            "--config",
            type=Path,
            default=default(DEFAULT_CONFIG_PATH),
            help=f"the bridge's configuration file, for serve and check-config (default {DEFAULT_CONFIG_PATH})",
        )
    parser.add_argument(
        "-v", "--verbose", action="count", default=default(0), help="as the original: -vv logs at debug level"
    )
    parser.add_argument(
        "--log.level",
        dest="log_level",
        choices=tuple(logs.LEVELS),
        default=default(None),
        help=f"only log lines of this level or above (default {logs.DEFAULT_LEVEL})",
    )
    parser.add_argument(
        "--log.format",
        "--log-format",
        dest="log_format",
        choices=logs.FORMATS,
        default=default("logfmt"),
        help="log line format (default logfmt)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="local-exporter", description="Bridge host-local metrics sources to Prometheus."
    )
    parser.add_argument("--version", action="version", version=version_text())
    _common(parser, top=True)
    commands = parser.add_subparsers(
        dest="command",
        metavar="COMMAND",
        action=_Subcommands,
        help="run `local-exporter COMMAND --help` for its options",
    )
    serve = commands.add_parser("serve", help="serve /bridge, /metrics and the health endpoints")
    _common(serve, top=False)
    serve.add_argument(
        "--web.listen-address",
        dest="listen_address",
        type=listen_address,
        metavar="HOST:PORT",
        help="where to listen (`:9598` for every address), instead of the config's [service] address and port",
    )
    serve.add_argument(
        "--web.enable-lifecycle",
        dest="enable_lifecycle",
        action="store_true",
        help="let POST /-/reload reload the config (off: 403; SIGHUP always reloads), as Prometheus' flag",
    )
    serve.add_argument(
        "--web.config.file",
        dest="web_config_file",
        type=Path,
        help="web config (exporter-toolkit format): TLS, client certificates, basic auth, headers, rate limit",
    )
    check_web = commands.add_parser(
        "check-web-config", help="validate a web config file: exit 0 if usable, 1 with every problem"
    )
    _common(check_web, top=False, config=False)
    check_web.add_argument("file", type=Path, help="web config file")
    check = commands.add_parser("check-config", help="validate a config file: exit 0 if usable, 1 with every problem")
    _common(check, top=False)
    check.add_argument("file", nargs="?", type=Path, help="config file (default: --config)")
    example = commands.add_parser("example", help="serve a bundled example source: a working /bridge in one command")
    _common(example, top=False, config=False)
    example.add_argument("--address", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    example.add_argument("--port", type=arguments.port, default=9598, help="listen port (default 9598)")
    receive = commands.add_parser(
        "receive",
        help="print each alert Alertmanager's webhooks send, one line per alert: a receiver to try routes with",
    )
    _common(receive, top=False, config=False)
    receive.add_argument("--address", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    receive.add_argument("--port", type=arguments.port, default=9099, help="listen port (default 9099)")
    for name, (line, _) in LAZY_COMMANDS.items():
        commands.add_parser(name, help=line)
    bundle = commands.add_parser(
        "bundle",
        help="write the monitoring bundle (rules, alerts, Alertmanager, dashboards, deployment) from a bundle config",
    )
    _common(bundle, top=False, config=False)
    bundle.add_argument(
        "--config",
        dest="bundle_config",
        metavar="FILE",
        type=Path,
        help="bundle config TOML file (docs/bundle-config.md); default: every setting's default",
    )
    bundle.add_argument("--out", type=Path, default=Path("."), help="directory to write into (default .)")
    bundle.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file differs from what the config generates"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet = args.command in QUIET_COMMANDS
    logs.setup(logs.level_of(args.log_level, args.verbose, "warn" if quiet else logs.DEFAULT_LEVEL), args.log_format)
    if args.command == "check-config":
        return check_config(args.file or args.config)
    if args.command == "serve":
        return serve(args.config, args.web_config_file, args.listen_address, args.enable_lifecycle)
    if args.command == "check-web-config":
        return check_web_config(args.file)
    if args.command == "example":
        return example(args.address, args.port)
    if args.command == "receive":
        return receive(args.address, args.port)
    if args.command == "simulate":
        from local_exporter.sim import command as simulate_command

        return simulate_command.run(args)
    if args.command == "demo":
        from local_exporter.demo import command as demo_command

        return demo_command.run(args)
    if args.command == "bundle":
        return bundle(args.bundle_config, args.out, args.check)
    parser.print_help(sys.stderr)
    return 2


def _load(loader: Callable[[Path], T], path: Path, verdict: str) -> T | None:
    """`loader(path)`, or None after printing every problem (a config's or a web config's)."""
    try:
        return loader(path)
    except ProblemsError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{path}: {len(exc.problems)} problem(s); {verdict}", file=sys.stderr)
        return None


def bundle(config_path: Path | None, root: Path, check: bool) -> int:
    from local_exporter.bundle.config import BundleConfig
    from local_exporter.bundle.config_file import load as load_bundle_config
    from local_exporter.bundle.generate import differences, refusal, write

    config = BundleConfig() if config_path is None else _load(load_bundle_config, config_path, "nothing written")
    if config is None:
        return 1
    source = "the default bundle config" if config_path is None else str(config_path)
    if check:
        stale = differences(root, config)
        for relative in stale:
            print(f"{root / relative}: differs from what {source} generates", file=sys.stderr)
        if stale:
            again = "" if config_path is None else f" --config {config_path}"
            print(f"run `local-exporter bundle{again} --out {root}` and commit the result", file=sys.stderr)
            return 1
        print(f"{root}: the bundle is up to date")
        return 0
    refused = refusal(root, config)
    if refused is not None:
        print(
            f"local-exporter bundle: {refused}: nothing written; "
            "give an empty or new directory, or one holding a bundle, with --out",
            file=sys.stderr,
        )
        return 1
    for relative in write(root, config):
        print(f"wrote {root / relative}")
    return 0


def check_config(path: Path) -> int:
    config = _load(load, path, "not usable")
    if config is None:
        return 1
    print(f"{path}: OK, {len(config.selectors)} selector(s): {', '.join(s.name for s in config.selectors)}")
    return 0


def check_web_config(path: Path) -> int:
    from local_exporter.bridge.webconfig.config import describe
    from local_exporter.bridge.webconfig.loader import load as load_web_config

    web_config = _load(load_web_config, path, "not usable")
    if web_config is None:
        return 1
    print(f"{path}: OK, " + ", ".join(f"{key} {value}" for key, value in describe(web_config).items()))
    return 0


def version_text() -> str:
    import platform

    from local_exporter import revision

    return f"local-exporter {__version__} (revision {revision()}, python {platform.python_version()})"


def listen_address(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `[IPV6]:PORT` or `:PORT` (every address), as Prometheus exporters take it."""
    host, colon, port = text.rpartition(":")
    if not colon or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT with a port from 1 to 65535")
    host = host.removeprefix("[").removesuffix("]") if host.startswith("[") else host
    if ":" in host and not text.startswith("["):
        raise argparse.ArgumentTypeError(f"{text!r}: write an IPv6 address in brackets, [::1]:9598")
    return host or "0.0.0.0", int(port)


def serve(
    path: Path,
    web_config_path: Path | None = None,
    address: tuple[str, int] | None = None,
    lifecycle: bool = False,
) -> int:
    config = _load(load, path, "not starting")
    if config is None:
        return 1
    where = f"[service] address and port of {path}"
    if address is not None:
        # The flag wins over the file, as for every Prometheus exporter; a reload keeps it.
        config = dataclasses.replace(
            config, service=dataclasses.replace(config.service, address=address[0], port=address[1])
        )
        where = "--web.listen-address"
    web_config = None
    if web_config_path is not None:
        from local_exporter.bridge.webconfig.config import describe
        from local_exporter.bridge.webconfig.loader import load as load_web_config

        web_config = _load(load_web_config, web_config_path, "not starting")
        if web_config is None:
            return 1
        log.info("web config loaded", extra=logs.fields(path=str(web_config_path), **describe(web_config)))
    from local_exporter.bridge.app import WEB, make_app

    web = (web_config_path, web_config) if web_config_path is not None and web_config is not None else None
    app = make_app(config, path=path, sighup=True, lifecycle=lifecycle, web_config=web)
    guard = app.get(WEB)
    return run(app, config, guard.server_context() if guard is not None else None, where)


def example(address: str, port: int) -> int:
    import tempfile

    from local_exporter.demo import example as example_module

    with tempfile.TemporaryDirectory(prefix="local-exporter-example-") as directory:
        try:
            app, config = example_module.build(Path(directory), address, port)
        except ConfigError as exc:  # only if the template itself is broken
            print("\n".join(exc.problems), file=sys.stderr)
            return 1
        base = f"http://{address}:{port}"
        print(f"local-exporter example: serving {len(config.selectors)} example selectors (Ctrl-C stops)")
        for selector in config.selectors:
            print(f"  {base}/bridge?selector={selector.name}    ({selector.source.describe()})")
        print(f"  {base}/metrics    (the bridge's own metrics)")
        print(f"  {base}/           (landing page)", flush=True)
        return run(app, config)


def receive(address: str, port: int) -> int:
    from aiohttp import web

    from local_exporter.demo.receiver import Receiver

    receiver = Receiver(out=lambda line: print(line, flush=True), remember=False)
    host = f"[{address}]" if ":" in address else address
    print(
        f"local-exporter receive: webhooks at http://{host}:{port}/pager, /ticket, /heartbeat (Ctrl-C stops)",
        flush=True,
    )
    try:
        web.run_app(receiver.app(), host=address, port=port, print=None)
    except OSError as exc:
        print(
            f"local-exporter receive: cannot listen on {address}:{port} (--address, --port): {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    return 0


def run(
    app: web.Application,
    config: Config,
    ssl_context: ssl.SSLContext | None = None,
    where: str = "--address and --port",
) -> int:
    """Serve until SIGINT/SIGTERM (server.py); a port that cannot be bound is a clear error that
    names `where` the address came from."""
    import asyncio

    from local_exporter.bridge import server
    from local_exporter.bridge.app import METRICS
    from local_exporter.common.loop import new_loop

    address, port = config.service.address, config.service.port
    log.debug(
        "starting", extra=logs.fields(address=address, port=port, selectors=",".join(s.name for s in config.selectors))
    )
    with asyncio.Runner(loop_factory=new_loop) as runner:
        code = runner.run(
            server.serve_until_stopped(app, config.service, ssl_context, app[METRICS], where, len(config.selectors))
        )
    if code == 0:
        log.info("stopped")
    return code
