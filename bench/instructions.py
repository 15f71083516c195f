"""Instructions per scrape, bridge against the featureless relay, counted by callgrind.

Requests/s on a shared machine move by ±20 % between runs; instruction counts do not. Each
server runs under `valgrind --tool=callgrind` and serves N, then 3N requests from a keep-alive
client in another process (not traced); the difference divided by 2N is what the server spends
on one request, start-up and shut-down excluded. Both servers run aiohttp on uvloop, read the
same sources (a file; a Zincati-protocol Unix socket served by another untraced process) and
get Prometheus' `X-Prometheus-Scrape-Timeout-Seconds` header and no Accept-Encoding.

    python3 bench/instructions.py [--cases file-2k,file-50k,uds-2k,uds-50k] [--requests 800]

Needs valgrind (Debian package `valgrind`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from baseline import SCRAPE_TIMEOUT_HEADER, exposition

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"2k": 2 * 1024, "50k": 50 * 1024}
CASES = tuple(f"{kind}-{size}" for kind in ("file", "uds") for size in SIZES)
CONNECTIONS = 8


def serve(which: str, kind: str, path: str, requests: int) -> None:
    """In this (traced) process: serve `requests` requests from an untraced client process."""
    import uvloop
    from aiohttp import web
    from baseline import relay_app

    from local_exporter.bridge import config
    from local_exporter.bridge.app import make_app

    async def main() -> None:
        if which == "relay":
            app = relay_app({"s": (kind, path)})
        else:
            app = make_app(config.parse(f'[bridge.selectors]\ns = {{ kind = "{kind}", path = "{path}" }}\n'))
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        client = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--client", str(port), "--requests", str(requests)
        )
        if await client.wait() != 0:
            raise SystemExit("the client failed")
        await runner.cleanup()

    uvloop.run(main())


def load(port: int, requests: int) -> None:
    """In the untraced client process: `requests` scrapes over CONNECTIONS keep-alive connections."""
    name, value = SCRAPE_TIMEOUT_HEADER
    request = f"GET /bridge?selector=s HTTP/1.1\r\nHost: bench\r\n{name}: {value}\r\n\r\n".encode()

    async def client(count: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(count):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200 "):
                raise SystemExit(f"not a 200: {head[:200]!r}")
            start = head.lower().index(b"content-length:") + 15
            await reader.readexactly(int(head[start : head.index(b"\r\n", start)]))
        writer.close()

    async def main() -> None:
        await asyncio.gather(*(client(requests // CONNECTIONS) for _ in range(CONNECTIONS)))

    asyncio.run(main())


def _traceable_python() -> str:
    """This Python as valgrind can run it.

    A venv's python is a symlink to the real binary: run it as is, so the venv's packages are
    found. A pyenv shim is a shell script: trace the binary it would run.
    """
    with open(sys.executable, "rb") as executable:
        if executable.read(4) == b"\x7fELF":
            return sys.executable
    return os.path.realpath(sys.executable)


def count(which: str, kind: str, path: str, requests: int) -> int:
    """Instructions callgrind counts for a whole server process serving `requests` requests."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", _traceable_python(), __file__]
    command += ["--serve", which, "--kind", kind, "--path", path, "--requests", str(requests)]
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'bench'}")
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    found = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode or not found:
        raise SystemExit(f"{which} {kind}: callgrind run failed:\n{result.stderr[-2000:]}")
    return int(found.group(1))


def wait_for_socket(path: Path, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while not path.exists():
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the socket server did not start")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=800, help="N: runs of N and 3N requests (default 800)")
    parser.add_argument("--cases", type=lambda s: s.split(","), default=list(CASES), help=f"default {','.join(CASES)}")
    parser.add_argument("--serve", choices=["relay", "bridge"], help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--client", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.kind, args.path, args.requests)
        return
    if args.client:
        load(args.client, args.requests)
        return
    n = args.requests
    print(f"instructions per request, server only (callgrind; runs of {n} and {3 * n} requests)")
    print(f"{'case':10s} {'relay':>9s} {'bridge':>9s} {'bridge/relay':>13s} {'extra':>8s}", flush=True)
    with tempfile.TemporaryDirectory(prefix="le-instr-", dir="/tmp") as directory:
        for case in args.cases:
            kind, _, size = case.partition("-")
            payload = Path(directory) / f"{size}.prom"
            payload.write_bytes(exposition(SIZES[size]))
            path, server = str(payload), None
            if kind == "uds":
                path = str(Path(directory) / f"{size}.sock")
                baseline = str(Path(__file__).with_name("baseline.py"))
                server = subprocess.Popen([sys.executable, baseline, f"{path}={payload}"])
                wait_for_socket(Path(path), server)
            try:
                cost = {}
                for which in ("relay", "bridge"):
                    low, high = count(which, kind, path, n), count(which, kind, path, 3 * n)
                    cost[which] = (high - low) / (2 * n)
            finally:
                if server is not None:
                    server.terminate()
                    server.wait()
            ratio = cost["bridge"] / cost["relay"]
            extra = cost["bridge"] - cost["relay"]
            print(f"{case:10s} {cost['relay']:9.0f} {cost['bridge']:9.0f} {ratio:13.3f} {extra:+8.0f}", flush=True)


if __name__ == "__main__":
    main()
