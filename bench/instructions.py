"""Instructions per scrape, bridge against a featureless relay, counted by callgrind.

Requests/s on a shared machine move by ±20 % between runs; instruction counts do not. Each
server runs in-process with a small keep-alive client under `valgrind --tool=callgrind`, once
for N and once for 3N requests; the difference divided by 2N is the cost of one request
(server and client; the client is the same for both). Both are served by aiohttp on uvloop
from the same 2 KB file, with `X-Prometheus-Scrape-Timeout-Seconds` set as Prometheus does.

    python3 bench/instructions.py [--requests 800]

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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST = b"GET /bridge?selector=f HTTP/1.1\r\nHost: bench\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n"
CONNECTIONS = 8


def exposition(size: int) -> bytes:
    line = b"# HELP bench_metric A metric.\n# TYPE bench_metric gauge\n"
    body = bytearray(line)
    i = 0
    while len(body) < size:
        body += b'bench_metric{n="%d"} %d\n' % (i, i)
        i += 1
    return bytes(body)


def serve_and_load(which: str, path: str, requests: int) -> None:
    """In this process: start one server on loopback and send it `requests` requests."""
    import uvloop
    from aiohttp import web

    from local_exporter import config
    from local_exporter.app import make_app

    async def relay(request: web.Request) -> web.Response:
        request.query["selector"]
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            body = os.read(fd, os.fstat(fd).st_size + 1)
        finally:
            os.close(fd)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def client(port: int, count: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(count):
            writer.write(REQUEST)
            head = await reader.readuntil(b"\r\n\r\n")
            start = head.lower().index(b"content-length:") + 15
            await reader.readexactly(int(head[start : head.index(b"\r\n", start)]))
        writer.close()

    async def main() -> None:
        if which == "relay":
            app = web.Application()
            app.router.add_get("/bridge", relay)
        else:
            app = make_app(config.parse(f'[bridge.selectors]\nf = {{ kind = "file", path = "{path}" }}\n'))
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        await asyncio.gather(*(client(port, requests // CONNECTIONS) for _ in range(CONNECTIONS)))
        await runner.cleanup()

    uvloop.run(main())


def count(which: str, path: str, requests: int) -> int:
    """Instructions callgrind counts for a whole process serving `requests` requests."""
    python = os.path.realpath(sys.executable)  # a pyenv shim is a shell script: trace the binary
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", python, __file__]
    command += ["--serve", which, "--path", path, "--requests", str(requests)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    found = re.search(r"Collected : (\d+)", result.stderr)
    if not found:
        raise SystemExit(f"callgrind printed no count:\n{result.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=800, help="N: runs of N and 3N requests (default 800)")
    parser.add_argument("--size", type=int, default=2000, help="exposition size in bytes (default 2000)")
    parser.add_argument("--serve", choices=["relay", "bridge"], help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_and_load(args.serve, args.path, args.requests)
        return
    with tempfile.TemporaryDirectory() as directory:
        path = str(Path(directory) / "metrics.prom")
        Path(path).write_bytes(exposition(args.size))
        n = args.requests
        per_request = {}
        for which in ("relay", "bridge"):
            low, high = count(which, path, n), count(which, path, 3 * n)
            per_request[which] = (high - low) / (2 * n)
            print(f"{which:6s} {per_request[which]:10.0f} instructions/request", flush=True)
    ratio = per_request["bridge"] / per_request["relay"]
    print(f"bridge/relay {ratio:.3f} (+{per_request['bridge'] - per_request['relay']:.0f} instructions/request)")


if __name__ == "__main__":
    main()
