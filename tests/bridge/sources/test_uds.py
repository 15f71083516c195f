"""`kind = "uds"`, Zincati's protocol, against real Unix sockets: connect, read to EOF, close."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest
from prometheus_client import CollectorRegistry

from local_exporter.bridge import config
from local_exporter.bridge.errors import BadPayload, PayloadTooLarge, SourceFailed, SourceUnavailable
from local_exporter.bridge.sources.uds import BACKLOG_FULL, MAX_PATH_BYTES, UdsSettings, UdsSource
from tests.support.bridges import bridge_app, sample
from tests.support.unix_servers import close_without_writing, drip, never_write, unix_server, write_and_close

BODY = b"zincati_update_agent_updates_enabled 1\n" * 5_000  # ~195 KB: several 64 KiB reads


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_the_whole_exposition_is_read_to_eof(short_dir: Path) -> None:
    path = short_dir / "z.sock"
    async with unix_server(path, write_and_close(BODY)) as server:
        assert await UdsSource(str(path), max_bytes=len(BODY)).fetch() == BODY
        # A fresh connection per scrape: the daemon writes to each new connection and closes.
        assert await UdsSource(str(path), max_bytes=len(BODY)).fetch() == BODY
    assert server.accepted == 2


async def test_exactly_max_bytes_is_accepted_and_one_more_refused(short_dir: Path) -> None:
    path = short_dir / "z.sock"
    async with unix_server(path, write_and_close(BODY)):
        assert await UdsSource(str(path), max_bytes=len(BODY)).fetch() == BODY
        with pytest.raises(PayloadTooLarge):
            await UdsSource(str(path), max_bytes=len(BODY) - 1).fetch()


async def test_an_endless_stream_stops_at_the_cap(short_dir: Path) -> None:
    path = short_dir / "z.sock"
    async with unix_server(path, drip(b"x 1\n" * 1000, 0.001)):
        with pytest.raises(PayloadTooLarge):
            await asyncio.wait_for(UdsSource(str(path), max_bytes=100_000).fetch(), 10)


async def test_a_close_without_bytes_is_a_bad_payload_not_an_empty_success(short_dir: Path) -> None:
    path = short_dir / "z.sock"
    async with unix_server(path, close_without_writing):
        with pytest.raises(BadPayload, match="closed without writing any bytes"):
            await UdsSource(str(path), max_bytes=1000).fetch()


async def test_a_missing_socket_is_unavailable(short_dir: Path) -> None:
    with pytest.raises(SourceUnavailable, match=f"connect {short_dir}/absent.sock: No such file or directory"):
        await UdsSource(str(short_dir / "absent.sock"), max_bytes=1000).fetch()


async def test_a_socket_nobody_listens_on_is_unavailable(short_dir: Path) -> None:
    path = short_dir / "stale.sock"
    with socket.socket(socket.AF_UNIX) as bound:
        bound.bind(str(path))  # bound, never listening: what a crashed daemon leaves behind
        with pytest.raises(SourceUnavailable, match="Connection refused"):
            await UdsSource(str(path), max_bytes=1000).fetch()


async def test_a_regular_file_at_the_path_is_unavailable(short_dir: Path) -> None:
    path = short_dir / "not-a-socket"
    path.write_text("x 1\n")
    with pytest.raises(SourceUnavailable, match=f"connect {path}"):
        await UdsSource(str(path), max_bytes=1000).fetch()


async def test_a_reset_connection_is_a_failure(short_dir: Path) -> None:
    path = short_dir / "z.sock"

    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"x 1\n")
        await writer.drain()
        raw = writer.get_extra_info("socket")
        # SO_LINGER 0: the close sends a reset instead of an orderly end of stream.
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.transport.abort()

    async with unix_server(path, reset):
        (result,) = await asyncio.gather(UdsSource(str(path), max_bytes=1000).fetch(), return_exceptions=True)
    if isinstance(result, BaseException):
        assert isinstance(result, SourceFailed) and str(result).startswith(f"read {path}: "), result
    else:
        # The kernel may deliver the bytes written before the reset: then they are the answer.
        assert result == b"x 1\n"


async def test_cancellation_at_the_deadline_releases_the_socket(short_dir: Path) -> None:
    path = short_dir / "z.sock"
    async with unix_server(path, never_write) as server:
        before = _open_fds()
        for _ in range(16):
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(UdsSource(str(path), max_bytes=1000).fetch(), 0.05)
        await asyncio.wait_for(server.client_closed.wait(), 5)
        assert _open_fds() <= before


@contextlib.contextmanager
def full_backlog(path: Path) -> Iterator[tuple[socket.socket, list[socket.socket]]]:
    """A socket listening at `path` that never accepts, and the connections that filled its
    backlog: a daemon that stopped accepting (hung, or stopped in a debugger)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    queued: list[socket.socket] = []
    try:
        listener.bind(str(path))
        listener.listen(0)
        while True:
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.setblocking(False)
            try:
                client.connect(str(path))
            except BlockingIOError:
                client.close()
                break
            queued.append(client)
            assert len(queued) < 100, "the backlog never filled"
        yield listener, queued
    finally:
        for item in (*queued, listener):
            item.close()


async def test_loop_sock_connect_takes_a_full_backlog_for_a_connection(short_dir: Path) -> None:
    """Why the source connects without asyncio's help (uds.py): sock_connect returns as if
    connected, and the read fails with EINVAL, which said "Invalid argument" (502)."""
    path = short_dir / "full.sock"
    with full_backlog(path), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.setblocking(False)
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, str(path)), 5)
        with pytest.raises(OSError, match="Invalid argument") as caught:
            sock.recv(1)
        assert caught.value.errno == errno.EINVAL


async def test_a_full_listen_backlog_is_unavailable_and_leaves_no_fd(short_dir: Path) -> None:
    path = short_dir / "full.sock"
    with full_backlog(path):
        before = _open_fds()
        for _ in range(16):
            with pytest.raises(SourceUnavailable) as caught:
                await UdsSource(str(path), max_bytes=1000).fetch()
            assert str(caught.value) == f"connect {path}: {BACKLOG_FULL}"
        assert _open_fds() <= before


async def test_a_full_backlog_is_a_counted_503_logged_once_until_it_drains(
    aiohttp_client, short_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = short_dir / "z.sock"
    registry = CollectorRegistry()
    client = await aiohttp_client(
        bridge_app(f'[bridge.selectors]\nz = {{ kind = "uds", path = "{path}" }}\n', registry)
    )
    loop = asyncio.get_running_loop()
    with full_backlog(path) as (listener, queued), caplog.at_level(logging.INFO, logger="local_exporter.bridge"):
        for _ in range(3):
            async with client.get("/bridge?selector=z") as response:
                assert response.status == 503
                assert await response.text() == f"selector z: unavailable: connect {path}: {BACKLOG_FULL}\n"
        # The daemon accepts again: the queued connections are taken, then the next one served.
        for _ in queued:
            listener.accept()[0].close()
        listener.setblocking(False)

        async def serve_one() -> None:
            connection, _ = await loop.sock_accept(listener)
            with connection:
                await loop.sock_sendall(connection, BODY)

        server = asyncio.ensure_future(serve_one())
        async with client.get("/bridge?selector=z") as response:
            assert response.status == 200
            assert await response.read() == BODY
        await server
    assert sample(registry, "local_exporter_bridge_requests_total", selector="z", outcome="unavailable") == 3
    assert sample(registry, "local_exporter_bridge_requests_total", selector="z", outcome="success") == 1
    logged = [r for r in caplog.records if r.name.startswith("local_exporter")]
    assert [r.getMessage() for r in logged] == ["scrape failed", "scrape recovered"]
    assert logged[0].le_fields["outcome"] == "unavailable"  # type: ignore[attr-defined]
    assert BACKLOG_FULL in logged[0].le_fields["reason"]  # type: ignore[attr-defined]


def test_the_settings_open_a_source_on_their_path() -> None:
    parsed = config.parse('[bridge.selectors]\nz = { kind = "uds", path = "/run/zincati/public/metrics.promsock" }\n')
    (selector,) = parsed.selectors
    assert selector.source == UdsSettings(path=PurePosixPath("/run/zincati/public/metrics.promsock"))
    assert selector.source.describe() == "uds /run/zincati/public/metrics.promsock"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ('"relative.sock"', "bridge.selectors.z.path: must be an absolute path, got 'relative.sock'"),
        (
            '"/' + "d" * MAX_PATH_BYTES + '"',
            f"bridge.selectors.z.path: is {MAX_PATH_BYTES + 1} bytes long; "
            f"Unix socket paths are limited to {MAX_PATH_BYTES} bytes",
        ),
    ],
)
def test_config_problems_name_the_key(value: str, problem: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.parse(f'[bridge.selectors]\nz = {{ kind = "uds", path = {value} }}\n', "test.toml")
    assert caught.value.problems == [f"test.toml:2: {problem}"]
