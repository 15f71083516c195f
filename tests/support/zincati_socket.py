"""A standalone Zincati-protocol Unix socket server, run as its own process by end-to-end tests.

    python -m tests.support.zincati_socket --serve PATH=PAYLOAD_FILE [--silent PATH] ...

`--serve`: on each connection write the payload file's bytes (read once at start) and close,
as Zincati does. `--silent`: accept and never write, until the client closes. Runs until
SIGTERM or SIGINT, then closes its sockets and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Callable
from pathlib import Path

from local_exporter.sim.promsock import start_promsock

_held: set[asyncio.Task[None]] = set()


async def _hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # Write nothing: wait for the client to give up (or for shutdown), then close our end.
    task = asyncio.current_task()
    assert task is not None
    _held.add(task)
    try:
        with contextlib.suppress(ConnectionError, OSError):
            await reader.read()
    finally:
        _held.discard(task)
        writer.close()


def _constant(payload: bytes) -> Callable[[], bytes]:
    return lambda: payload


def _pair(text: str) -> tuple[Path, Path]:
    path, sep, payload = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected PATH=PAYLOAD_FILE, got {text!r}")
    return Path(path), Path(payload)


async def _main(serve: list[tuple[Path, Path]], silent: list[Path]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    servers: list[asyncio.Server] = []
    for path, payload_file in serve:
        servers.append(await start_promsock(path, _constant(payload_file.read_bytes())))
    for path in silent:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        servers.append(await asyncio.start_unix_server(_hold, path=str(path)))
    try:
        await stop.wait()
    finally:
        for server in servers:
            server.close()
        for task in list(_held):
            task.cancel()
        await asyncio.gather(*_held, return_exceptions=True)
        for server in servers:
            await server.wait_closed()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--serve", type=_pair, action="append", default=[], metavar="PATH=PAYLOAD_FILE")
    parser.add_argument("--silent", type=Path, action="append", default=[], metavar="PATH")
    args = parser.parse_args()
    asyncio.run(_main(args.serve, args.silent))


if __name__ == "__main__":
    main()
