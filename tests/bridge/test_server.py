"""The server around the app (server.py): the header deadline against slowloris clients,
one-line 400s for malformed requests, keep-alive, and shutdown — on real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path

import pytest

from local_exporter.bridge import limits
from tests.support.unix_servers import unix_server
from tests.support.web import served_bridge

FILE_BRIDGE = '[bridge.selectors]\nf = {{ kind = "file", path = "{dir}/f.prom" }}\n'
HEADER_TIMEOUT = 0.5


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _exchange(url: str, chunks: list[bytes], pause: float = 0.0, wait: float = 5.0) -> bytes:
    """Send `chunks` on a raw connection, `pause` apart, until the server answers and closes;
    everything it sent."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    received: list[bytes] = []

    async def read_all() -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                received.append(chunk)

    reading = asyncio.ensure_future(read_all())
    try:
        for chunk in chunks:
            if reading.done():
                break
            try:
                writer.write(chunk)
                await writer.drain()
            except ConnectionError:
                break
            await asyncio.sleep(pause)
        await asyncio.wait_for(reading, wait)
        return b"".join(received)
    finally:
        reading.cancel()
        writer.close()


def _bridge(directory: Path) -> str:
    (directory / "f.prom").write_text("up 1\n")
    return FILE_BRIDGE.format(dir=directory)


async def test_a_header_trickled_byte_by_byte_gets_408_at_the_deadline(short_dir: Path) -> None:
    async with served_bridge(short_dir, _bridge(short_dir), None, header_timeout=HEADER_TIMEOUT) as served:
        request = b"GET /bridge?selector=f HTTP/1.1\r\nHost: x\r\n\r\n"
        started = time.monotonic()
        answer = await _exchange(served.url, [bytes([b]) for b in request], pause=0.1)
        took = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
        assert answer.endswith(b"\r\n\r\nno complete request header within 0.5 s\n")
        # Closed at the deadline, long before the last byte would have been sent.
        assert took < len(request) * 0.1
        assert served.rejected("header_timeout") == 1


async def test_a_connection_that_sends_nothing_is_closed_and_leaks_nothing(short_dir: Path) -> None:
    async with served_bridge(short_dir, _bridge(short_dir), None, header_timeout=HEADER_TIMEOUT) as served:
        before = _open_fds()
        answers = await asyncio.gather(*(_exchange(served.url, []) for _ in range(16)))
        assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers)
        assert served.rejected("header_timeout") == 16
        await asyncio.sleep(0.05)
        assert _open_fds() <= before


async def test_the_deadline_covers_the_header_only_not_a_slow_source(short_dir: Path) -> None:
    toml = f'[bridge.selectors]\ns = {{ kind = "uds", path = "{short_dir}/s.sock" }}\n'

    async def late(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(HEADER_TIMEOUT * 4)
        writer.write(b"up 1\n")
        await writer.drain()

    # The source takes 4 header deadlines to answer; the request header came at once.
    async with (
        unix_server(short_dir / "s.sock", late),
        served_bridge(short_dir, toml, None, header_timeout=HEADER_TIMEOUT) as served,
    ):
        answer = await _exchange(
            served.url, [b"GET /bridge?selector=s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]
        )
        assert answer.startswith(b"HTTP/1.1 200 OK"), answer
        assert served.rejected("header_timeout") == 0


async def test_a_keep_alive_connection_serves_request_after_request(short_dir: Path) -> None:
    async with served_bridge(short_dir, _bridge(short_dir), None, header_timeout=HEADER_TIMEOUT) as served:
        request = b"GET /bridge?selector=f HTTP/1.1\r\nHost: x\r\n\r\n"
        last = b"GET /bridge?selector=f HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        answer = await _exchange(served.url, [request, request, last], pause=HEADER_TIMEOUT * 1.5)
        assert answer.count(b"HTTP/1.1 200 OK") == 3, answer


MALFORMED = [
    (
        "over-long query",
        b"GET /bridge?selector=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        f"request line or header field longer than {limits.MAX_REQUEST_LINE_BYTES} bytes",
    ),
    (
        "over-long header",
        b"GET /bridge?selector=f HTTP/1.1\r\nHost: x\r\nX-Long: " + b"b" * 9000 + b"\r\n\r\n",
        f"request line or header field longer than {limits.MAX_REQUEST_LINE_BYTES} bytes",
    ),
    (
        "control byte in a header",
        b"GET /bridge?selector=f HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
        "malformed HTTP request: ",
    ),
    ("TLS to the plain port", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 40, "malformed HTTP request: "),
    (
        "too many headers",
        b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
        "malformed HTTP request: ",
    ),
]


@pytest.mark.parametrize(("request_bytes", "reason"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
async def test_a_malformed_request_gets_a_one_line_400(
    short_dir: Path, caplog: pytest.LogCaptureFixture, request_bytes: bytes, reason: str
) -> None:
    async with served_bridge(short_dir, _bridge(short_dir), None) as served:
        before = _open_fds()
        with caplog.at_level(logging.DEBUG):
            for _ in range(16):
                answer = await _exchange(served.url, [request_bytes])
                head, _, body = answer.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 400 Bad Request") or head.startswith(b"HTTP/1.0 400 Bad Request"), (
                    answer
                )
                text = body.decode()
                assert text.startswith(reason) and text.endswith("\n") and text.count("\n") == 1, text
                assert len(text) < 200 and "aaaa" not in text and "bbbb" not in text
        assert served.rejected("bad_request") == 16
        # Logged at debug only (clients' mistakes), one line each, never a traceback.
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert not [r for r in caplog.records if r.exc_text or r.stack_info]
        await asyncio.sleep(0.05)
        assert _open_fds() <= before
