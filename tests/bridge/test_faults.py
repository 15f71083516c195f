"""The fault-injection suite: each fault with a real source, the status and one-line reason the
scrape gets, the outcome it is counted as, and no file descriptor left behind after repeating it.

DBus faults (name not owned, method error, timeout, wrong reply signature, dbus-daemon
restarted) run against a private dbus-daemon in tests/bridge/sources/test_dbus.py. The web config's
faults (wrong password, no client certificate, a disallowed SAN) are at the end of this file,
on a bridge served for real with TLS; the server's (over-long query and other malformed
requests, slow headers) are in tests/bridge/test_server.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from tests.support.bridges import bridge_app, sample
from tests.support.processes import (
    LOOPBACK,
    DeadlineExceeded,
    free_port,
    http_get,
    local_exporter_args,
    poll,
    python_env,
    running,
    wait_http,
)
from tests.support.unix_servers import Behaviour, close_without_writing, drip, never_write, unix_server, write_and_close
from tests.support.web import PASSWORD, TLS_CLIENT_CERTS, USER, Pki, get, served_bridge, users_yaml

REQUESTS = "local_exporter_bridge_requests_total"
REJECTED = "local_exporter_bridge_rejected_requests_total"
REPEATS = 15


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@dataclass(frozen=True)
class Fault:
    name: str
    #: The selector's TOML, with {dir} for the test's directory and {port} for a free port.
    selector: str
    status: int
    reason: str
    #: Counted outcome (requests_total{outcome}), or a rejection reason when `rejected`.
    outcome: str
    #: A Unix-socket daemon's behaviour at {dir}/s.sock, or an HTTP handler at {port}/x.
    daemon: Behaviour | None = None
    http: Callable[[web.Request], Any] | None = None
    #: The file at {dir}/f.prom.
    file: bytes | None = None
    query: str = "selector=f"
    rejected: bool = False


async def _http_500(request: web.Request) -> web.Response:
    return web.Response(status=500, text="boom")


async def _http_slow(request: web.Request) -> web.Response:
    await asyncio.sleep(3)
    return web.Response(text="late 1\n")


FAULTS = [
    Fault(
        "missing path",
        'f = {{ kind = "file", path = "{dir}/none.prom" }}',
        503,
        "No such file or directory",
        "unavailable",
    ),
    Fault(
        "missing socket",
        'f = {{ kind = "uds", path = "{dir}/none.sock" }}',
        503,
        "No such file or directory",
        "unavailable",
    ),
    Fault(
        "connection refused",
        'f = {{ kind = "uds", path = "{dir}/dead.sock" }}',
        503,
        "Connection refused",
        "unavailable",
    ),
    Fault(
        "accept and never write",
        'f = {{ kind = "uds", path = "{dir}/s.sock", timeout = 0.3 }}',
        504,
        "no complete answer within the 0.3 s deadline",
        "timeout",
        daemon=never_write,
    ),
    Fault(
        "one byte per second",
        'f = {{ kind = "uds", path = "{dir}/s.sock", timeout = 0.3 }}',
        504,
        "no complete answer within the 0.3 s deadline",
        "timeout",
        daemon=drip(b"x", 1.0),
    ),
    Fault(
        "endless stream",
        'f = {{ kind = "uds", path = "{dir}/s.sock", max_bytes = 100000 }}',
        502,
        "payload exceeds max_bytes (100000 bytes)",
        "too_large",
        daemon=drip(b"x 1\n" * 1024, 0.0),
    ),
    Fault(
        "zero-byte close",
        'f = {{ kind = "uds", path = "{dir}/s.sock" }}',
        502,
        "closed without writing any bytes",
        "bad_payload",
        daemon=close_without_writing,
    ),
    Fault(
        "garbage bytes",
        'f = {{ kind = "uds", path = "{dir}/s.sock" }}',
        502,
        "bad_payload",
        "bad_payload",
        daemon=write_and_close(bytes(range(256))),
    ),
    Fault(
        "half-written file",
        'f = {{ kind = "file", path = "{dir}/f.prom" }}',
        502,
        "bad_payload",
        "bad_payload",
        file=b"up 1\nhalf_writ",
    ),
    Fault(
        "over-cap file",
        'f = {{ kind = "file", path = "{dir}/f.prom", max_bytes = 10 }}',
        502,
        "payload exceeds max_bytes (10 bytes)",
        "too_large",
        file=b"up 1\n" * 10,
    ),
    Fault(
        "HTTP 500",
        'f = {{ kind = "http", url = "http://127.0.0.1:{port}/x" }}',
        502,
        "HTTP 500",
        "failed",
        http=_http_500,
    ),
    Fault(
        "HTTP source timeout",
        'f = {{ kind = "http", url = "http://127.0.0.1:{port}/x", timeout = 0.3 }}',
        504,
        "no complete answer within the 0.3 s deadline",
        "timeout",
        http=_http_slow,
    ),
    Fault(
        "missing selector",
        'f = {{ kind = "file", path = "{dir}/f.prom" }}',
        400,
        "missing selector",
        "bad_request",
        query="",
        rejected=True,
    ),
    Fault(
        "unknown selector",
        'f = {{ kind = "file", path = "{dir}/f.prom" }}',
        404,
        "unknown selector 'nope'",
        "unknown_selector",
        query="selector=nope",
        rejected=True,
    ),
    Fault(
        "repeated selector",
        'f = {{ kind = "file", path = "{dir}/f.prom" }}',
        400,
        "selector given 2 times",
        "bad_request",
        query="selector=f&selector=f",
        rejected=True,
    ),
]


@contextlib.asynccontextmanager
async def _daemon(fault: Fault, directory: Path, port: int) -> AsyncIterator[None]:
    if fault.file is not None:
        (directory / "f.prom").write_bytes(fault.file)
    if "dead.sock" in fault.selector:
        with socket.socket(socket.AF_UNIX) as dead:
            dead.bind(str(directory / "dead.sock"))  # bound, never listening: connect is refused
    if fault.daemon is not None:
        async with unix_server(directory / "s.sock", fault.daemon):
            yield
        return
    if fault.http is not None:
        app = web.Application()
        app.router.add_get("/x", fault.http)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, LOOPBACK, port).start()
        try:
            yield
        finally:
            await runner.cleanup()
        return
    yield


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
async def test_fault(aiohttp_client, short_dir: Path, fault: Fault) -> None:
    port = free_port()
    registry = CollectorRegistry()
    toml = (
        "[bridge.selectors]\n"
        + fault.selector.format(dir=short_dir, port=port).replace("{{", "{").replace("}}", "}")
        + "\n"
    )
    client: TestClient = await aiohttp_client(bridge_app(toml, registry))

    async def scrape() -> tuple[int, str]:
        async with client.get(f"/bridge?{fault.query}" if fault.query else "/bridge") as response:
            return response.status, await response.text()

    async with client.get("/-/healthy") as response:  # the test client's keep-alive connection
        assert response.status == 200
    # Counted with the daemon stopped on both sides: a misbehaving daemon (one that drips) holds
    # its own end open until its next write fails, and that is not the bridge's.
    before = _open_fds()
    async with _daemon(fault, short_dir, port):
        status, body = await scrape()
        assert status == fault.status, body
        assert fault.reason in body and body.endswith("\n") and body.count("\n") == 1, body
        for _ in range(REPEATS):
            assert (await scrape())[0] == fault.status
    await asyncio.sleep(0.05)  # closes scheduled by the last scrape run
    assert _open_fds() <= before, f"{_open_fds() - before} file descriptors left over {REPEATS + 1} scrapes"
    if fault.rejected:
        assert sample(registry, REJECTED, reason=fault.outcome) == REPEATS + 1
    else:
        assert sample(registry, REQUESTS, selector="f", outcome=fault.outcome) == REPEATS + 1


async def test_client_disconnect_mid_scrape_is_counted_and_leaks_nothing(aiohttp_client, short_dir: Path) -> None:
    registry = CollectorRegistry()
    toml = f'[bridge.selectors]\nf = {{ kind = "uds", path = "{short_dir}/s.sock", timeout = 5 }}\n'
    client = await aiohttp_client(bridge_app(toml, registry))
    async with unix_server(short_dir / "s.sock", never_write):
        before = _open_fds()
        for attempt in range(1, 6):
            request = asyncio.ensure_future(client.get("/bridge?selector=f"))
            await asyncio.sleep(0.1)
            request.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await request
            for _ in range(100):
                if registry.get_sample_value(REQUESTS, {"selector": "f", "outcome": "cancelled"}) == attempt:
                    break
                await asyncio.sleep(0.02)
            assert sample(registry, REQUESTS, selector="f", outcome="cancelled") == attempt
        await asyncio.sleep(0.1)
        # The test client's cancelled connections are its own: only growth beyond them would be a leak.
        assert _open_fds() <= before + 5


@dataclass(frozen=True)
class WebFault:
    name: str
    #: Credentials sent, and the client certificate's SAN (None: no certificate).
    auth: tuple[str, str] | None
    san: str | None
    status: int
    reason: str
    rejected: str


WEB_FAULTS = [
    WebFault(
        "wrong password",
        (USER, "wrong"),
        "prometheus.example",
        401,
        "unauthorized: a valid user and password",
        "unauthorized",
    ),
    WebFault(
        "unknown user",
        ("mallory", PASSWORD),
        "prometheus.example",
        401,
        "unauthorized: a valid user and password",
        "unauthorized",
    ),
    WebFault("no client certificate", (USER, PASSWORD), None, 403, "a client certificate is required", "forbidden"),
    WebFault("disallowed SAN", (USER, PASSWORD), "intruder.example", 403, "none of the allowed SANs", "forbidden"),
]


@pytest.mark.parametrize("fault", WEB_FAULTS, ids=[f.name for f in WEB_FAULTS])
async def test_web_fault(short_dir: Path, fault: WebFault) -> None:
    pki = Pki(short_dir)
    (short_dir / "f.prom").write_text("up 1\n")
    toml = f'[bridge.selectors]\nf = {{ kind = "file", path = "{short_dir}/f.prom" }}\n'
    client = pki.client(fault.san) if fault.san else pki.client(certificate=False)
    async with served_bridge(short_dir, toml, TLS_CLIENT_CERTS + users_yaml()) as served:
        url = f"{served.url}/bridge?selector=f"
        assert (await get(url, pki.client(), (USER, PASSWORD)))[0] == 200  # the control
        before = _open_fds()
        for _ in range(REPEATS + 1):
            status, body, _ = await get(url, client, fault.auth)
            assert status == fault.status and fault.reason in body and body.count("\n") == 1, body
        await asyncio.sleep(0.05)
        assert _open_fds() <= before
        assert served.rejected(fault.rejected) == REPEATS + 1
        assert sample(served.registry, REQUESTS, selector="f", outcome="success") == 1


def _without_dac_override() -> list[str]:
    """How to start a process the kernel checks file modes for: as root (CI), without the two
    capabilities that let root read and open anything; as anyone else, nothing to add."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "setpriv (util-linux) is needed to drop root's CAP_DAC_OVERRIDE"
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps", "-dac_override,-dac_read_search"]


def test_permission_denied_is_503_unavailable_in_a_real_process(short_dir: Path) -> None:
    (short_dir / "secret.prom").write_text("up 1\n")
    (short_dir / "secret.prom").chmod(0)
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(short_dir / "closed.sock"))
        listening.listen()
        (short_dir / "closed.sock").chmod(0)  # connect needs write permission on the socket file
        port = free_port()
        (short_dir / "config.toml").write_text(
            f'[service]\naddress = "{LOOPBACK}"\nport = {port}\n[bridge.selectors]\n'
            f'file = {{ kind = "file", path = "{short_dir}/secret.prom" }}\n'
            f'sock = {{ kind = "uds", path = "{short_dir}/closed.sock" }}\n'
        )
        args = [*_without_dac_override(), *local_exporter_args("serve", "-c", str(short_dir / "config.toml"))]
        with running("serve", args, short_dir, python_env()) as child:
            url = f"http://{LOOPBACK}:{port}"
            wait_http(f"{url}/-/ready", 20, watch=[child])
            fds = len(os.listdir(f"/proc/{child.pid}/fd"))
            for selector, action in (("file", "open"), ("sock", "connect")):
                for _ in range(REPEATS + 1):
                    answer = http_get(f"{url}/bridge?selector={selector}")
                    assert answer.status == 503, answer
                    assert answer.text.startswith(f"selector {selector}: unavailable: {action} {short_dir}/"), (
                        answer.text
                    )
                    assert answer.text.endswith(": Permission denied\n"), answer.text
            metrics = http_get(f"{url}/metrics").text

            # The server closes its end of the last connection just after answering: give it
            # that moment, or the count races it (seen as one socket too many now and then).
            def count() -> int:
                return len(os.listdir(f"/proc/{child.pid}/fd"))

            with contextlib.suppress(DeadlineExceeded):
                poll("the last connection closed", lambda: True if count() <= fds else None, 2)
            assert count() <= fds
        for selector in ("file", "sock"):
            line = (
                f'local_exporter_bridge_requests_total{{outcome="unavailable",selector="{selector}"}} {REPEATS + 1}.0'
            )
            assert line in metrics
        # Logged once per selector, not per scrape.
        assert child.stderr().count('msg="scrape failed"') == 2, child.stderr()
