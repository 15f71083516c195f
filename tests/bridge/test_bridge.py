"""The /bridge handler against real files and real Unix-socket servers: every status-table row."""

from __future__ import annotations

import asyncio
import errno
import gzip
import logging
import os
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from local_exporter.bridge import limits
from local_exporter.bridge.app import BRIDGE
from local_exporter.bridge.deadlines import Deadlines
from local_exporter.bridge.errors import SourceUnavailable
from local_exporter.bridge.payload import OPENMETRICS, TEXT_0_0_4
from local_exporter.bridge.sources import file as file_source
from local_exporter.bridge.sources import uds as uds_source
from tests.support.bridges import bridge_app, sample, until
from tests.support.unix_servers import close_without_writing, drip, never_write, unix_server, write_and_close

REQUESTS = "local_exporter_bridge_requests_total"


def toml_for(directory: Path, extra: str = "") -> str:
    return f"""
[bridge.selectors]
good-file = {{ kind = "file", path = "{directory}/good.prom" }}
missing-file = {{ kind = "file", path = "{directory}/missing.prom" }}
sock = {{ kind = "uds", path = "{directory}/s.sock", timeout = 2 }}
small = {{ kind = "uds", path = "{directory}/s.sock", max_bytes = 100 }}
{extra}
"""


@pytest.fixture
async def bridge(aiohttp_client, short_dir: Path, zincati_payload: bytes) -> tuple[TestClient, CollectorRegistry, Path]:
    (short_dir / "good.prom").write_bytes(zincati_payload)
    registry = CollectorRegistry()
    client = await aiohttp_client(bridge_app(toml_for(short_dir), registry))
    return client, registry, short_dir


async def test_file_body_passes_through_unchanged(bridge, zincati_payload: bytes) -> None:
    client, registry, _ = bridge
    response = await client.get("/bridge", params={"selector": "good-file"})
    assert response.status == 200
    assert response.headers["Content-Type"] == TEXT_0_0_4
    assert await response.read() == zincati_payload
    assert sample(registry, REQUESTS, selector="good-file", outcome="success") == 1
    assert sample(registry, "local_exporter_bridge_last_payload_bytes", selector="good-file") == len(zincati_payload)
    last_success = sample(registry, "local_exporter_bridge_last_success_timestamp_seconds", selector="good-file")
    assert abs(last_success - time.time()) < 5


async def test_openmetrics_body_gets_openmetrics_content_type(bridge) -> None:
    client, _, directory = bridge
    body = b"# TYPE a counter\na_total 1\n# EOF\n"
    (directory / "good.prom").write_bytes(body)
    response = await client.get("/bridge?selector=good-file")
    assert response.headers["Content-Type"] == OPENMETRICS
    assert await response.read() == body


async def test_gzip_when_accepted_and_identity_otherwise(bridge, zincati_payload: bytes) -> None:
    client, _, _ = bridge
    zipped = await client.get("/bridge?selector=good-file", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(await zipped.read()) == zincati_payload
    refused = await client.get(
        "/bridge?selector=good-file", headers={"Accept-Encoding": "gzip;q=0"}, auto_decompress=False
    )
    assert "Content-Encoding" not in refused.headers
    assert await refused.read() == zincati_payload


async def test_large_body_is_compressed_off_the_loop(aiohttp_client, short_dir: Path) -> None:
    body = b"".join(b"metric_%d %d\n" % (i, i) for i in range(40_000))  # ~550 KB: over the inline limit
    (short_dir / "big.prom").write_bytes(body)
    client = await aiohttp_client(
        bridge_app(f'[bridge.selectors]\nbig = {{ kind = "file", path = "{short_dir}/big.prom" }}\n')
    )
    response = await client.get("/bridge?selector=big", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Vary"] == "Accept-Encoding"
    compressed = await response.read()
    assert len(compressed) < len(body) / 3
    assert gzip.decompress(compressed) == body


async def test_uds_zincati_protocol(bridge, zincati_payload: bytes) -> None:
    client, registry, directory = bridge
    async with unix_server(directory / "s.sock", write_and_close(zincati_payload)) as server:
        response = await client.get("/bridge?selector=sock")
        assert response.status == 200
        assert await response.read() == zincati_payload
    assert server.accepted == 1
    assert sample(registry, REQUESTS, selector="sock", outcome="success") == 1


async def expect(
    client: TestClient, selector: str, status: int, reason: str, headers: dict[str, str] | None = None
) -> str:
    response = await client.get("/bridge", params={"selector": selector}, headers=headers or {})
    text = await response.text()
    assert response.status == status, text
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert text.endswith("\n") and text.count("\n") == 1, "reason is one line"
    assert reason in text
    return text


@pytest.mark.parametrize(
    ("query", "status", "reason"),
    [
        ("/bridge", 400, "missing selector"),
        ("/bridge?selector=", 400, "missing selector"),
        ("/bridge?selector=a&selector=b", 400, "given 2 times"),
        ("/bridge?selector=nope", 404, "unknown selector 'nope'"),
        ("/bridge?selector=" + "x" * 500, 404, "unknown selector 'xxxx"),
    ],
)
async def test_request_errors(bridge, query: str, status: int, reason: str) -> None:
    client, registry, _ = bridge
    response = await client.get(query)
    text = await response.text()
    assert (response.status, response.headers["Content-Type"]) == (status, "text/plain; charset=utf-8")
    assert reason in text and text.count("\n") == 1 and len(text) < 200
    reason_label = "bad_request" if status == 400 else "unknown_selector"
    assert sample(registry, "local_exporter_bridge_rejected_requests_total", reason=reason_label) == 1


async def test_bad_scrape_timeout_header_is_400(bridge) -> None:
    client, _, _ = bridge
    for value in ("soon", "-1", "nan", "inf", "0"):
        await expect(
            client,
            "good-file",
            400,
            "X-Prometheus-Scrape-Timeout-Seconds",
            {"X-Prometheus-Scrape-Timeout-Seconds": value},
        )


async def test_missing_file_is_503(bridge, caplog: pytest.LogCaptureFixture) -> None:
    client, registry, _directory = bridge
    with caplog.at_level(logging.WARNING, logger="local_exporter.bridge"):
        text = await expect(client, "missing-file", 503, "No such file or directory")
    assert text.startswith("selector missing-file: unavailable: open ")
    assert sample(registry, REQUESTS, selector="missing-file", outcome="unavailable") == 1
    failures = [r for r in caplog.records if r.getMessage() == "scrape failed"]
    assert len(failures) == 1, "one log line per failure"
    assert failures[0].le_fields["selector"] == "missing-file"  # type: ignore[attr-defined]
    assert failures[0].le_fields["outcome"] == "unavailable"  # type: ignore[attr-defined]


@pytest.mark.parametrize("module", [file_source, uds_source])
@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM, errno.ENOENT])
def test_permission_errors_map_to_unavailable(module, code: int) -> None:
    # The kernel's refusal itself, as root too: tests/bridge/test_faults.py, in a real process.
    error = module._error("open", "/run/x", OSError(code, os.strerror(code)))
    assert isinstance(error, SourceUnavailable)
    assert str(error) == f"open /run/x: {os.strerror(code)}"


async def test_not_a_regular_file_is_502(aiohttp_client, short_dir: Path) -> None:
    os.mkfifo(short_dir / "fifo")
    client = await aiohttp_client(
        bridge_app(f'[bridge.selectors]\nf = {{ kind = "file", path = "{short_dir}/fifo" }}\n')
    )
    await expect(client, "f", 502, "not a regular file")


async def test_socket_missing_is_503(bridge) -> None:
    client, _, _ = bridge
    await expect(client, "sock", 503, "connect ")


async def test_socket_refused_is_503(bridge) -> None:
    client, registry, directory = bridge
    async with unix_server(directory / "s.sock", close_without_writing):
        pass  # closed: the socket file stays, nobody listens
    assert (directory / "s.sock").exists()
    await expect(client, "sock", 503, "Connection refused")
    assert sample(registry, REQUESTS, selector="sock", outcome="unavailable") == 1


async def test_zero_byte_close_is_502_not_empty_success(bridge) -> None:
    client, registry, directory = bridge
    async with unix_server(directory / "s.sock", close_without_writing):
        await expect(client, "sock", 502, "closed without writing any bytes")
    assert sample(registry, REQUESTS, selector="sock", outcome="bad_payload") == 1
    assert sample(registry, REQUESTS, selector="sock", outcome="success") == 0


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x89PNG\r\n\x1a\n", "starts with byte"),
        (b"\x1f\x8b\x08\x00gzipped", "starts with byte"),
        (b"# HELP a x\n# TYPE a gauge\na 1\nb 2", "does not end with a newline"),
        (b"a 1\nb 2\n" + bytes(4096), "does not end with a newline"),  # a zero-filled tail
        (b"# TYPE a gauge\na 1\n# EO", "does not end with a newline"),
    ],
)
async def test_garbage_or_truncated_payload_is_502(bridge, payload: bytes, reason: str) -> None:
    client, registry, directory = bridge
    (directory / "good.prom").write_bytes(payload)
    await expect(client, "good-file", 502, reason)
    assert sample(registry, REQUESTS, selector="good-file", outcome="bad_payload") == 1


async def test_grammar_is_left_to_prometheus_and_passes_through(bridge) -> None:
    # Well framed but not valid (invalid UTF-8, a NUL): Prometheus' parser reports it with the
    # line; the bridge, which checks framing only, relays the bytes unchanged.
    client, _, directory = bridge
    payload = b'metric{a="\xff\xfe"} 1\nmetric{a="\x00"} 2\n'
    (directory / "good.prom").write_bytes(payload)
    response = await client.get("/bridge?selector=good-file")
    assert response.status == 200
    assert await response.read() == payload


async def test_over_cap_is_502_and_reads_no_further(bridge) -> None:
    client, registry, directory = bridge
    async with unix_server(directory / "s.sock", drip(b"a 1\n" * 16, 0.01)) as server:
        await expect(client, "small", 502, "exceeds max_bytes (100 bytes)")
        # We stopped reading and closed: the endless writer sees the close.
        await asyncio.wait_for(server.client_closed.wait(), 5)
    assert sample(registry, REQUESTS, selector="small", outcome="too_large") == 1


async def test_file_over_cap_is_502(aiohttp_client, short_dir: Path) -> None:
    (short_dir / "big.prom").write_bytes(b"a 1\n" * 1000)
    config = f'[bridge.selectors]\nbig = {{ kind = "file", path = "{short_dir}/big.prom", max_bytes = 3999 }}\n'
    client = await aiohttp_client(bridge_app(config))
    await expect(client, "big", 502, "exceeds max_bytes (3999 bytes)")
    (short_dir / "big.prom").write_bytes(b"a 1\n" * 999 + b"b\n\n")  # exactly 3999 bytes
    assert (await client.get("/bridge?selector=big")).status == 200


async def test_never_writing_socket_is_504_before_the_scrape_timeout(bridge) -> None:
    client, registry, directory = bridge
    async with unix_server(directory / "s.sock", never_write) as server:
        started = time.monotonic()
        headers = {"X-Prometheus-Scrape-Timeout-Seconds": "1.0"}
        await expect(client, "sock", 504, "within the 0.5 s deadline", headers)
        elapsed = time.monotonic() - started
        await asyncio.wait_for(server.client_closed.wait(), 5)
    assert 0.45 <= elapsed < 1.0, elapsed
    assert sample(registry, REQUESTS, selector="sock", outcome="timeout") == 1


async def test_selector_timeout_applies_without_header(bridge) -> None:
    client, _, directory = bridge
    async with unix_server(directory / "s.sock", never_write):
        started = time.monotonic()
        await expect(client, "sock", 504, "within the 2 s deadline")
    assert 1.9 <= time.monotonic() - started < 3


async def test_slow_source_cannot_hold_the_request_past_its_deadline(bridge) -> None:
    client, _, directory = bridge
    async with unix_server(directory / "s.sock", drip(b"a 1\n", 0.1)):
        started = time.monotonic()
        await expect(client, "sock", 504, "deadline", {"X-Prometheus-Scrape-Timeout-Seconds": "1.2"})
    assert time.monotonic() - started < 1.2


async def test_client_disconnect_cancels_the_source(bridge) -> None:
    client, registry, directory = bridge
    async with unix_server(directory / "s.sock", never_write) as server:
        request = asyncio.ensure_future(client.get("/bridge?selector=sock"))
        await until(lambda: sample(registry, "local_exporter_bridge_in_flight_requests", selector="sock") == 1)
        request.cancel()
        # The bridge notices the client is gone and closes the source connection long before
        # the selector's 2 s timeout.
        started = time.monotonic()
        await asyncio.wait_for(server.client_closed.wait(), 1.5)
        assert time.monotonic() - started < 1.5
    await until(lambda: sample(registry, REQUESTS, selector="sock", outcome="cancelled") == 1)
    assert sample(registry, "local_exporter_bridge_in_flight_requests", selector="sock") == 0
    assert sample(registry, REQUESTS, selector="sock", outcome="timeout") == 0


async def test_recovery_is_logged_once(bridge, caplog: pytest.LogCaptureFixture) -> None:
    client, _, directory = bridge
    good = (directory / "good.prom").read_bytes()
    (directory / "good.prom").unlink()
    with caplog.at_level(logging.INFO, logger="local_exporter.bridge"):
        await expect(client, "good-file", 503, "No such file")
        (directory / "good.prom").write_bytes(good)
        for _ in range(2):
            assert (await client.get("/bridge?selector=good-file")).status == 200
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["scrape failed", "scrape recovered"]


async def test_a_failure_is_logged_once_until_its_reason_changes(bridge, caplog: pytest.LogCaptureFixture) -> None:
    client, registry, directory = bridge
    (directory / "good.prom").unlink()
    with caplog.at_level(logging.WARNING, logger="local_exporter.bridge"):
        for _ in range(5):
            await expect(client, "good-file", 503, "No such file")
        (directory / "good.prom").mkdir()  # another failure: not a regular file
        for _ in range(3):
            await expect(client, "good-file", 502, "not a regular file")
    reasons = [r.le_fields["outcome"] for r in caplog.records]  # type: ignore[attr-defined]
    assert reasons == ["unavailable", "failed"]
    # Counted every time all the same.
    assert sample(registry, REQUESTS, selector="good-file", outcome="unavailable") == 5
    assert sample(registry, REQUESTS, selector="good-file", outcome="failed") == 3


class BuggySource:
    """Stands in for a bug in a source (no real component raises this): a plain exception."""

    async def fetch(self) -> bytes:
        raise RuntimeError("bug\nwith a newline")

    async def aclose(self) -> None:
        return None

    def gauges(self) -> dict[str, float]:
        return {}


async def test_a_bug_in_a_source_is_a_counted_500_not_a_traceback(bridge) -> None:
    client, registry, _ = bridge
    selector = client.app[BRIDGE].selectors.by_name["good-file"]
    selector.source = BuggySource()
    text = await expect(client, "good-file", 500, "selector good-file: internal_error: internal error: RuntimeError")
    assert "Traceback" not in text
    assert sample(registry, REQUESTS, selector="good-file", outcome="internal_error") == 1


class BuggyDeadlines(Deadlines):
    """Stands in for a bug in the deadline machinery (as uvloop once provoked, tests/bridge/test_deadlines.py)."""

    def watch(self, task: asyncio.Task[object], seconds: float) -> None:
        raise AttributeError("bug")


async def test_a_bug_on_the_way_to_a_source_gives_back_its_in_flight_counts(aiohttp_client, short_dir: Path) -> None:
    toml = f'[bridge.selectors]\ns = {{ kind = "uds", path = "{short_dir}/s.sock" }}\n'
    client = await aiohttp_client(bridge_app(toml))
    bridge = client.app[BRIDGE]
    bridge.deadlines = BuggyDeadlines()
    async with unix_server(short_dir / "s.sock", write_and_close(b"up 1\n")):
        for _ in range(limits.DEFAULT_MAX_IN_FLIGHT + 1):
            await expect(client, "s", 500, "internal error: AttributeError")
    # Were the counts not given back, the last scrapes would have been refused as overloaded.
    assert (
        bridge.budget.in_flight == 0
        and bridge.budget.held == 0
        and bridge.selectors.by_name["s"].metrics.in_flight == 0
    )


async def test_a_stale_file_is_503_and_its_age_is_on_metrics(aiohttp_client, short_dir: Path) -> None:
    path = short_dir / "m.prom"
    path.write_text("up 1\n")
    old = time.time() - 3600
    os.utime(path, (old, old))
    registry = CollectorRegistry()
    toml = f'[bridge.selectors]\nm = {{ kind = "file", path = "{path}", max_age = 600 }}\n'
    client = await aiohttp_client(bridge_app(toml, registry))
    async with client.get("/bridge?selector=m") as response:
        assert response.status == 503
        assert "selector m: stale: " in await response.text()
    assert sample(registry, REQUESTS, selector="m", outcome="stale") == 1
    assert sample(registry, "local_exporter_bridge_file_mtime_seconds", selector="m") == pytest.approx(old)
    path.write_text("up 1\n")  # the daemon writes again
    async with client.get("/bridge?selector=m") as response:
        assert response.status == 200
