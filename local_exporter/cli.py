"""The `local-exporter` command: serve, check-config, example, simulate, bundle, demo.

A drop-in for the original's command line: `serve -c FILE` (or `--config FILE`, also before
the subcommand), `-v` repeatable, default config `/etc/local_exporter/config.toml`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import ssl
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from aiohttp import web

from local_exporter import __version__, logs
from local_exporter.config import DEFAULT_CONFIG_PATH, Config, ConfigError, load
from local_exporter.demo import command as demo_command
from local_exporter.fields import ProblemsError
from local_exporter.loop import new_loop
from local_exporter.sim import command as simulate_command
from local_exporter.webconfig.config import describe
from local_exporter.webconfig.config import load as load_web_config

log = logging.getLogger("local_exporter")
T = TypeVar("T")


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # Options exist on the top parser and on each subcommand, as the original's persistent
    # flags did; SUPPRESS keeps a subcommand from resetting what was given before it.
    default = (lambda value: value) if top else (lambda value: argparse.SUPPRESS)
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=default(DEFAULT_CONFIG_PATH),
        help=f"configuration file (default {DEFAULT_CONFIG_PATH})",
    )
    parser.add_argument("-v", "--verbose", action="count", default=default(0), help="more logging: -v info, -vv debug")
    parser.add_argument(
        "--log-format", choices=logs.FORMATS, default=default("logfmt"), help="log line format (default logfmt)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="local-exporter", description="Bridge host-local metrics sources to Prometheus."
    )
    parser.add_argument("--version", action="version", version=f"local-exporter {__version__}")
    _common(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="serve /bridge, /metrics and the health endpoints")
    _common(serve, top=False)
    serve.add_argument(
        "--web.config.file",
        dest="web_config_file",
        type=Path,
        help="web config (exporter-toolkit format): TLS, client certificates, basic auth, headers, rate limit",
    )
    check_web = commands.add_parser(
        "check-web-config", help="validate a web config file: exit 0 if usable, 1 with every problem"
    )
    _common(check_web, top=False)
    check_web.add_argument("file", type=Path, help="web config file")
    check = commands.add_parser("check-config", help="validate a config file: exit 0 if usable, 1 with every problem")
    _common(check, top=False)
    check.add_argument("file", nargs="?", type=Path, help="config file (default: --config)")
    example = commands.add_parser("example", help="serve a bundled example source: a working /bridge in one command")
    _common(example, top=False)
    example.add_argument("--address", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    example.add_argument("--port", type=int, default=9598, help="listen port (default 9598)")
    simulate_command.add_parser(commands)
    demo_command.add_parser(commands)
    bundle = commands.add_parser(
        "bundle", help="write the monitoring bundle (rules, Alertmanager config) from its config object"
    )
    bundle.add_argument("--out", type=Path, default=Path("."), help="repository root to write into (default .)")
    bundle.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated file differs")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.setup(args.verbose, args.log_format)
    if args.command == "check-config":
        return check_config(args.file or args.config)
    if args.command == "serve":
        return serve(args.config, args.web_config_file)
    if args.command == "check-web-config":
        return check_web_config(args.file)
    if args.command == "example":
        return example(args.address, args.port)
    if args.command == "simulate":
        return simulate_command.run(args)
    if args.command == "demo":
        return demo_command.run(args)
    if args.command == "bundle":
        return bundle(args.out, args.check)
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


def bundle(root: Path, check: bool) -> int:
    from local_exporter.bundle.config import BundleConfig
    from local_exporter.bundle.generate import differences, write

    config = BundleConfig()
    if check:
        stale = differences(root, config)
        for relative in stale:
            print(f"{root / relative}: differs from what local_exporter/bundle generates", file=sys.stderr)
        if stale:
            print("run `local-exporter bundle` and commit the result", file=sys.stderr)
            return 1
        print(f"{root}: the bundle is up to date")
        return 0
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
    web_config = _load(load_web_config, path, "not usable")
    if web_config is None:
        return 1
    print(f"{path}: OK, " + ", ".join(f"{key} {value}" for key, value in describe(web_config).items()))
    return 0


def serve(path: Path, web_config_path: Path | None = None) -> int:
    config = _load(load, path, "not starting")
    if config is None:
        return 1
    web_config = None
    if web_config_path is not None:
        web_config = _load(load_web_config, web_config_path, "not starting")
        if web_config is None:
            return 1
        log.info("web config loaded", extra=logs.fields(path=str(web_config_path), **describe(web_config)))
    from local_exporter.app import WEB, make_app

    web = (web_config_path, web_config) if web_config_path is not None and web_config is not None else None
    app = make_app(config, path=path, sighup=True, web_config=web)
    guard = app.get(WEB)
    return run(app, config, guard.server_context() if guard is not None else None)


def example(address: str, port: int) -> int:
    from local_exporter import example as example_module

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


def run(app: web.Application, config: Config, ssl_context: ssl.SSLContext | None = None) -> int:
    """Serve until SIGINT/SIGTERM (server.py); a port that cannot be bound is a clear error."""
    from local_exporter import server
    from local_exporter.app import METRICS

    address, port = config.service.address, config.service.port
    log.info(
        "starting", extra=logs.fields(address=address, port=port, selectors=",".join(s.name for s in config.selectors))
    )
    with asyncio.Runner(loop_factory=new_loop) as runner:
        code = runner.run(server.serve_until_stopped(app, config.service, ssl_context, app[METRICS].rejected))
    if code == 0:
        log.info("stopped")
    return code
