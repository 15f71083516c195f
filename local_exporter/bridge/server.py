"""Serving the app: aiohttp's runner, with our own site and connection handler for what
`web.run_app` cannot be told.

- **A header deadline.** aiohttp waits for a request's header as long as its keep-alive timer
  allows (an hour by default), however slowly the bytes come: a slowloris client holds a
  socket that long. Here every connection must deliver a complete request header within
  `service.header_timeout` of connecting, or it gets a 408 and is closed; idle keep-alive
  connections, and the header of any later request on them, are bounded by
  `service.idle_timeout`.
- **Malformed requests** (a request line or header over the caps in limits.py, bytes HTTP
  forbids, TLS spoken to a plain port) get a one-line 400 reason and are counted; aiohttp would
  echo the request back over several lines and log each at error level.
- **TLS** through the web config's rotating context (webconfig/tls.py), its handshake bounded
  by the header deadline too.
- **A connection cap** below the open-file limit, raised at start (connections.py), and a listen
  backlog that holds a burst (`service.listen_backlog`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import ssl
import sys
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_request import BaseRequest
from yarl import URL

from local_exporter.bridge import limits
from local_exporter.bridge.answers import return_freed_memory
from local_exporter.bridge.config import ServiceConfig
from local_exporter.bridge.connections import Connections, connection_cap, raise_open_files_limit
from local_exporter.bridge.metrics import ExporterMetrics
from local_exporter.bridge.responses import text
from local_exporter.common import logs
from local_exporter.common.loop import stop_on_signals

log = logging.getLogger("local_exporter")
# How long in-flight scrapes may finish after SIGTERM before connections are closed.
SHUTDOWN_GRACE_SECONDS = 5.0
_HEADER_END = (b"\n\r\n", b"\n\n")


class GuardedHandler(web.RequestHandler):
    """aiohttp's per-connection protocol, with the header deadline and one-line 400s."""

    __slots__ = ("_admitted", "_connections", "_header_deadline", "_header_timeout", "_rejected", "_tail")

    def __init__(
        self,
        manager: web.Server,
        *,
        header_timeout: float,
        rejected: Callable[[str], None],
        connections: Connections,
        **options: Any,
    ) -> None:
        super().__init__(manager, **options)
        self._header_timeout = header_timeout
        self._rejected = rejected
        self._connections = connections
        self._admitted = False
        self._header_deadline: asyncio.TimerHandle | None = None
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._admitted = self._connections.admit(self)
        if not self._admitted:
            # Over the cap with every connection past its header: nothing to say it with.
            self.displace()
            return
        self._header_deadline = self._loop.call_later(self._header_timeout, self._header_timed_out)

    def displace(self) -> None:
        """Close at once, without a response: a newer connection needs the descriptor."""
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None
        self.force_close()
        transport = self.transport
        if transport is not None:
            transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._header_deadline is not None:
            # An empty line ends the header; two bytes kept from the last chunk find one split
            # across chunks.
            window = self._tail + data
            if any(end in window for end in _HEADER_END):
                self._header_deadline.cancel()
                self._header_deadline = None
                self._connections.header_received(self)
            else:
                self._tail = window[-2:]
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None
        if self._admitted:
            self._admitted = False
            self._connections.closed(self)
        super().connection_lost(exc)

    def _header_timed_out(self) -> None:
        self._header_deadline = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self._rejected("header_timeout")
        body = f"no complete request header within {self._header_timeout:g} s\n".encode()
        head = (
            "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        transport.write(head.encode() + body)
        self.force_close()
        transport.close()

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if status != 400 or not isinstance(exc, HttpProcessingError) or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        reason = malformed_reason(exc)
        self._rejected("bad_request")
        log.debug("malformed request refused", extra=logs.fields(remote=request.remote, reason=reason))
        response = text(400, reason)
        response.force_close()
        return response


def malformed_reason(exc: HttpProcessingError) -> str:
    if isinstance(exc, LineTooLong):
        return f"request line or header field longer than {limits.MAX_REQUEST_LINE_BYTES} bytes"
    lines = (exc.message or type(exc).__name__).strip().splitlines()
    first = (lines[0] if lines else type(exc).__name__).rstrip(": ")
    return f"malformed HTTP request: {first[:120]}"


class GuardedSite(web.BaseSite):
    """A TCP site whose connections are `GuardedHandler`s."""

    def __init__(
        self, runner: web.BaseRunner, service: ServiceConfig, ssl_context: ssl.SSLContext | None, **options: Any
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self.service = service
        self.options = options

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return str(URL.build(scheme=scheme, host=self.service.address, port=self.port))

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the one the kernel chose for port 0)."""
        sockets = getattr(self._server, "sockets", None)  # an asyncio.Server once started
        if not sockets:
            return self.service.port
        return int(sockets[0].getsockname()[1])

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        service = self.service
        options = {
            "loop": loop,
            "keepalive_timeout": service.idle_timeout,
            "header_timeout": service.header_timeout,
            "max_line_size": limits.MAX_REQUEST_LINE_BYTES,
            "max_field_size": limits.MAX_REQUEST_LINE_BYTES,
            "max_headers": limits.MAX_REQUEST_HEADERS,
            **self.options,
        }
        self._server = await loop.create_server(
            lambda: GuardedHandler(server, **options),
            service.address,
            service.port,
            ssl=self._ssl_context,
            ssl_handshake_timeout=service.header_timeout if self._ssl_context else None,
            reuse_address=True,
            backlog=service.listen_backlog,
        )


async def start(
    app: web.Application, service: ServiceConfig, ssl_context: ssl.SSLContext | None, metrics: ExporterMetrics
) -> tuple[web.AppRunner, GuardedSite]:
    """Set the app up and listen; the caller stops it with `runner.cleanup()`."""
    open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if open_files == resource.RLIM_INFINITY:
        open_files = limits.MAX_MAX_CONNECTIONS
    connections = Connections(connection_cap(service.max_connections, open_files))
    metrics.connections = connections
    access = logging.getLogger("aiohttp.access")
    runner = web.AppRunner(
        app, handle_signals=False, handler_cancellation=True, shutdown_timeout=SHUTDOWN_GRACE_SECONDS
    )
    await runner.setup()
    # aiohttp's access logger costs per request even when its level drops the line.
    access_log = access if access.isEnabledFor(logging.INFO) else None
    site = GuardedSite(
        runner, service, ssl_context, rejected=metrics.rejected, connections=connections, access_log=access_log
    )
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, site


async def serve_until_stopped(
    app: web.Application,
    service: ServiceConfig,
    ssl_context: ssl.SSLContext | None,
    metrics: ExporterMetrics,
    where: str,
    selectors: int,
) -> int:
    """Serve until SIGINT or SIGTERM; a port that cannot be bound is a clear error naming `where`
    the address came from (a flag, the config's keys), not a traceback. One info line once
    listening: where, and how many selectors."""
    open_files = raise_open_files_limit()
    return_freed_memory()
    try:
        runner, site = await start(app, service, ssl_context, metrics)
    except OSError as exc:
        print(
            # asyncio's own text repeats the address: errno's words are the reason.
            f"local-exporter: cannot listen on {service.address}:{service.port} ({where}): "
            f"{os.strerror(exc.errno) if exc.errno else exc}",
            file=sys.stderr,
        )
        return 1
    log.info("listening", extra=logs.fields(url=site.name, selectors=selectors))
    cap = metrics.connections.limit if metrics.connections is not None else service.max_connections
    log.debug("connections", extra=logs.fields(open_files=open_files, max_connections=cap))
    try:
        await stop_on_signals().wait()
    finally:
        await runner.cleanup()
    return 0
