"""What both benchmarks share: the featureless relay, the sources it and the bridge serve.

The relay is the baseline the bridge is measured against: an aiohttp handler that reads the
file, or connects to the Unix socket and reads to EOF, and returns the bytes with the same
Content-Type. No deadline, no checks, no metrics, no logs. It reads with the same primitives
as the bridge (one os.read of the size fstat reports plus one byte; a bare non-blocking socket
with 64 KiB receives), so the difference is what the bridge adds, not how it reads.

    python3 bench/baseline.py SOCKET=PAYLOAD_FILE ...   # serve Zincati-protocol sockets
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

from aiohttp import web

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SCRAPE_TIMEOUT_HEADER = ("X-Prometheus-Scrape-Timeout-Seconds", "10")
# The bridge's own receive size (local_exporter/bridge/sources/uds.py).
_CHUNK = 64 * 1024


def exposition(size: int) -> bytes:
    """A valid text exposition of about `size` bytes (whole lines, ending with a newline)."""
    lines = [b"# HELP bench_series A synthetic series.\n", b"# TYPE bench_series gauge\n"]
    total = sum(map(len, lines))
    i = 0
    while total < size:
        line = f'bench_series{{host="bench-host-{i % 7}",series="{i:06d}"}} {i * 1.5}\n'.encode()
        lines.append(line)
        total += len(line)
        i += 1
    return b"".join(lines)


def relay_app(routes: dict[str, tuple[str, str]]) -> web.Application:
    """The featureless relay: selector name -> (kind "file" or "uds", path)."""

    async def handle(request: web.Request) -> web.Response:
        kind, path = routes[request.query["selector"]]
        if kind == "file":
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                body = os.read(fd, os.fstat(fd).st_size + 1)
            finally:
                os.close(fd)
        else:
            loop = asyncio.get_running_loop()
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)
                await loop.sock_connect(sock, path)
                chunks = []
                while chunk := await loop.sock_recv(sock, _CHUNK):
                    chunks.append(chunk)
                body = b"".join(chunks)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="Ready.")

    app = web.Application()
    app.router.add_get("/bridge", handle)
    app.router.add_get("/-/ready", ready)
    return app


def serve_sockets(pairs: list[str]) -> None:
    """Serve each PAYLOAD_FILE on SOCKET with Zincati's protocol until SIGTERM or SIGINT."""
    import uvloop

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from local_exporter.sim.promsock import start_promsock

    served = [(Path(path), Path(payload).read_bytes()) for path, _, payload in (p.partition("=") for p in pairs)]

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        servers = [await start_promsock(path, lambda body=body: body) for path, body in served]
        await stop.wait()
        for server in servers:
            server.close()

    uvloop.run(main())


if __name__ == "__main__":
    serve_sockets(sys.argv[1:])
