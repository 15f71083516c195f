"""The web config in force, and what applies it to every request and every TLS connection.

The toolkit reads its file on every request and answers 500 while it is broken. Here the file
and the TLS files it names are checked for a change (stat only) at most once a second, on a
request or a new connection, and on SIGHUP or `POST /-/reload`. A good file takes effect at
once; a broken one is logged (once per distinct problem), shown by
`local_exporter_web_config_last_reload_successful 0`, and the last good one keeps serving.

Order per request, the toolkit's: security headers on every answer, then the rate limit (429),
then, unless the path is in `auth_excluded_paths`, the client certificate (403 without one, or
without an allowed SAN) and basic auth (401 with `WWW-Authenticate`; 503 when no password check
can start in time, 429 with `Retry-After` to an address that has just failed too often).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.hdrs import AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE

from local_exporter.bridge.errors import OUTCOME_STATUS, REJECTION_STATUS
from local_exporter.bridge.metrics import ExporterMetrics
from local_exporter.bridge.responses import text
from local_exporter.bridge.webconfig import tls
from local_exporter.bridge.webconfig.basic_auth import BasicAuthUsers, ClientGone, PasswordChecks, Throttled
from local_exporter.bridge.webconfig.checks import Busy
from local_exporter.bridge.webconfig.config import CLIENT_AUTH_TYPES, WebConfig, WebConfigError
from local_exporter.bridge.webconfig.loader import load
from local_exporter.bridge.webconfig.rate_limit import TokenBucket
from local_exporter.common.logs import fields

log = logging.getLogger("local_exporter.webconfig")
# How often, at most, the files are looked at for a change.
CHECK_INTERVAL_SECONDS = 1.0
CHALLENGE = 'Basic realm="local_exporter", charset="UTF-8"'
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_Signature = tuple[tuple[int, int, int, int] | None, ...]


def _signature(paths: tuple[Path, ...]) -> _Signature:
    """What tells a rewritten or replaced file (an atomic rename changes the inode)."""
    stats: list[tuple[int, int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            stats.append(None)
            continue
        stats.append((st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino))
    return tuple(stats)


class WebGuard:
    def __init__(self, path: Path, config: WebConfig, metrics: ExporterMetrics) -> None:
        self.path = path
        self.metrics = metrics
        self.checks = PasswordChecks(metrics.password_checks)
        metrics.password_queue = self.checks.queue
        self.tls_at_start = config.tls is not None
        self.bucket: TokenBucket | None = None
        self._apply(config)
        self.checked = time.monotonic()
        self.last_problem: str | None = None
        metrics.web_config_successful = True

    def _files(self, config: WebConfig) -> tuple[Path, ...]:
        return (self.path, *(config.tls.files if config.tls is not None else ()))

    def _apply(self, config: WebConfig) -> None:
        # Built first: if the TLS files changed again since `load` checked them and no longer
        # load, this raises with nothing of the running config replaced.
        context = tls.build_context(config.tls, self._handshake_failed) if config.tls is not None else None
        self.config = config
        self.context = context
        self.auth = BasicAuthUsers(dict(config.users), self.checks) if config.users else None
        # An unchanged limit keeps its bucket: a fresh one would hand out a new burst.
        if config.rate_limit is None:
            self.bucket = None
        elif self.bucket is None or self.bucket.limit != config.rate_limit:
            self.bucket = TokenBucket(config.rate_limit)
        self.require_certificate = config.tls is not None and CLIENT_AUTH_TYPES[config.tls.client_auth_type] is True
        self.allowed_sans = frozenset(map(_san, config.tls.client_allowed_sans if config.tls is not None else ()))
        self.signature = _signature(self._files(config))

    def refresh(self) -> None:
        """Reload if a file changed; looks at most once per CHECK_INTERVAL_SECONDS."""
        now = time.monotonic()
        if now - self.checked < CHECK_INTERVAL_SECONDS:
            return
        self.checked = now
        signature = _signature(self._files(self.config))
        if signature != self.signature:
            self.signature = signature
            self.reload()

    def reload(self) -> tuple[bool, str]:
        try:
            new = load(self.path)
            if (new.tls is not None) != self.tls_at_start:
                raise WebConfigError([f"{self.path}: tls_server_config: turning TLS on or off takes a restart"])
            self._apply(new)
        except (WebConfigError, tls.TLSSetupError) as exc:
            problems = "; ".join(exc.problems) if isinstance(exc, WebConfigError) else str(exc)
            self.metrics.web_config_successful = False
            if problems != self.last_problem:
                log.error(
                    "web config reload failed, still serving the previous one",
                    extra=fields(path=str(self.path), problems=problems),
                )
                self.last_problem = problems
            return False, f"web config reload failed, still serving the previous one: {problems}"
        self.last_problem = None
        self.metrics.web_config_successful = True
        self.metrics.web_config_success_time = time.time()
        log.info("web config reloaded", extra=fields(path=str(self.path)))
        return True, "web config reloaded"

    def _handshake_failed(self, exc: ssl.SSLError) -> None:
        # A client's mistake (or a scanner's): counted, and logged at debug only.
        self.metrics.tls_handshake_failures += 1
        log.debug("TLS handshake failed", extra=fields(reason=exc.reason or str(exc)))

    def current_context(self) -> ssl.SSLContext:
        """For `tls.RotatingContext`: the context a new connection gets."""
        self.refresh()
        assert self.context is not None, "TLS was on at start and cannot be turned off"
        return self.context

    def server_context(self) -> ssl.SSLContext | None:
        return tls.RotatingContext(self.current_context) if self.tls_at_start else None

    async def add_headers(self, request: web.BaseRequest, response: web.StreamResponse) -> None:
        for name, value in self.config.headers:
            response.headers[name] = value

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.refresh()
        if self.bucket is not None and not self.bucket.allow():
            return self._refuse("rate_limited", "rate limit exceeded: try again later")
        if request.path in self.config.auth_excluded_paths:
            return await handler(request)
        if self.require_certificate:
            refusal = self._certificate_refusal(request)
            if refusal:
                return self._refuse("forbidden", refusal)
        if self.auth is not None:
            answer = await self._password_refusal(self.auth, request)
            if answer is not None:
                return answer
        return await handler(request)

    async def _password_refusal(self, auth: BasicAuthUsers, request: web.Request) -> web.Response | None:
        """The answer to a request without a right user and password; None for one with them."""
        try:
            if await auth.allows(request.headers.get(AUTHORIZATION), request.remote or "", lambda: _connected(request)):
                return None
        except Busy as exc:
            return self._refuse("auth_busy", str(exc))
        except Throttled as exc:
            response = self._refuse("auth_throttled", str(exc))
            response.headers[RETRY_AFTER] = str(exc.seconds)
            return response
        except ClientGone:
            # Its check was dropped (and counted as abandoned); nobody reads this answer either.
            return text(OUTCOME_STATUS["cancelled"], "the client went away")
        response = self._refuse("unauthorized", "unauthorized: a valid user and password are required")
        response.headers[WWW_AUTHENTICATE] = CHALLENGE
        return response

    def _refuse(self, reason: str, message: str) -> web.Response:
        self.metrics.rejected(reason)
        return text(REJECTION_STATUS[reason], message)

    def _certificate_refusal(self, request: web.Request) -> str:
        """Why the connection's client certificate is refused; "" if it is not.

        A certificate that was given has been verified by the handshake (tls.py); what is left is
        whether there is one, and its SANs: DNS names, IP addresses, e-mail addresses and URIs,
        matched exactly, as the toolkit does.
        """
        transport = request.transport
        certificate = transport.get_extra_info("peercert") if transport is not None else None
        if not certificate:
            return "a client certificate is required (client_auth_type RequireAndVerifyClientCert)"
        if self.allowed_sans and not any(
            _san(value) in self.allowed_sans for _, value in certificate.get("subjectAltName", ())
        ):
            return "the client certificate has none of the allowed SANs (client_allowed_sans)"
        return ""


def _connected(request: web.Request) -> bool:
    """Whether the request's client is still there: aiohttp drops the transport when it leaves."""
    transport = request.transport
    return transport is not None and not transport.is_closing()


def _san(value: str) -> str:
    """IP addresses in one spelling: OpenSSL writes IPv6 SANs uncompressed, Go (and users) compressed."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return value
