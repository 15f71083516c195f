"""`TLSSettings` -> an `ssl.SSLContext`, and the context that lets certificates rotate.

asyncio and uvloop take one SSLContext when the server starts and call its `wrap_bio` for each
connection. `RotatingContext` is that context: its `wrap_bio` hands the connection to whatever
context the web config holds now, so a renewed certificate (or CA, or version bound) applies to
the next connection without a restart, while connections already open keep theirs.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

from local_exporter.bridge.webconfig.config import CLIENT_AUTH_TYPES, TLSSettings

_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# Go's TLS 1.2 cipher suite names (crypto/tls) -> OpenSSL's.
CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
# TLS 1.3's suites are not configurable, in Go as in OpenSSL's cipher list: accepted, ignored.
TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")


class TLSSetupError(Exception):
    """A TLS setting that does not load; `key` is its key under tls_server_config."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class _CountedHandshake(ssl.SSLObject):
    """A connection's TLS object, reporting a failed handshake to its context's `on_failure`
    (asyncio and uvloop call do_handshake until it passes or raises)."""

    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except ssl.SSLError as exc:
            on_failure = getattr(self.context, "on_failure", None)
            if on_failure is not None:
                on_failure(exc)
            raise


def build_context(settings: TLSSettings, on_failure: Callable[[ssl.SSLError], None] | None = None) -> ssl.SSLContext:
    """The context for `settings`; `on_failure` hears of every failed handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if on_failure is not None:
        context.sslobject_class = _CountedHandshake
        context.on_failure = on_failure  # type: ignore[attr-defined]
    context.minimum_version = _VERSIONS[settings.min_version]
    context.maximum_version = _VERSIONS[settings.max_version]
    if not settings.prefer_server_cipher_suites:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    _load_certificate(context, settings)
    # A certificate is asked for and, if given, verified here, in the handshake. That one is
    # *required* is enforced per request (guard.py), as the toolkit does since it learned
    # auth_excluded_paths: a client without one gets a 403 that says so and is counted, not a
    # handshake alert, and excluded paths stay reachable.
    if CLIENT_AUTH_TYPES[settings.client_auth_type] is not None:
        context.verify_mode = ssl.CERT_OPTIONAL
    _load_client_ca(context, settings)
    if settings.cipher_suites:
        _set_ciphers(context, _openssl_ciphers(settings.cipher_suites))
    return context


def setup_problems(settings: TLSSettings, reported: Collection[str] = ()) -> list[TLSSetupError]:
    """Every TLS file of `settings` that does not load, each with its key: the certificate pair
    and the client CA are tried apart, so a check reports both, not the first. A part whose keys
    are `reported` wrong already is not tried (a certificate without its key cannot load)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    found = []
    for keys, load in (
        ({"cert_file", "cert", "key_file", "key"}, _load_certificate),
        ({"client_ca_file", "client_ca"}, _load_client_ca),
    ):
        if keys.isdisjoint(reported):
            try:
                load(context, settings)
            except TLSSetupError as exc:
                found.append(exc)
    return found


def _load_client_ca(context: ssl.SSLContext, settings: TLSSettings) -> None:
    if settings.client_ca_file is None and settings.client_ca is None:
        return
    key = "client_ca_file" if settings.client_ca_file is not None else "client_ca"
    try:
        context.load_verify_locations(cafile=settings.client_ca_file, cadata=settings.client_ca)
    except OSError as exc:
        raise TLSSetupError(key, _reason(exc, settings.client_ca_file)) from None


def _load_certificate(context: ssl.SSLContext, settings: TLSSettings) -> None:
    key = "cert_file" if settings.cert_file is not None else "cert"
    try:
        with _as_file(settings.cert_file, settings.cert) as cert, _as_file(settings.key_file, settings.key) as private:
            context.load_cert_chain(cert, private)
    except OSError as exc:
        raise TLSSetupError(key, _reason(exc, settings.cert_file, settings.key_file)) from None


def _reason(exc: OSError, *files: Path | None) -> str:
    if isinstance(exc, ssl.SSLError):
        # e.g. "[X509: KEY_VALUES_MISMATCH] key values mismatch" -> its reason, in words.
        return f"does not load: {(exc.reason or str(exc)).lower().replace('_', ' ')}"
    named = exc.filename or next((f for f in files if f is not None), "")
    return f"cannot read {named}: {exc.strerror or exc}"


@contextlib.contextmanager
def _as_file(path: Path | None, inline: str | None) -> Iterator[str]:
    """A file name for `load_cert_chain`, which reads only files: inline PEM goes to a private
    temporary file that is removed at once."""
    if path is not None or inline is None:
        yield str(path)
        return
    with tempfile.TemporaryDirectory(prefix="local-exporter-tls-") as directory:
        name = os.path.join(directory, "pem")
        with open(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write(inline)
        yield name


def _openssl_ciphers(names: tuple[str, ...]) -> str:
    unknown = [name for name in names if name not in CIPHER_SUITES and name not in TLS13_SUITES]
    if unknown:
        raise TLSSetupError("cipher_suites", f"unknown cipher suite {unknown[0]!r} (Go's names, as in crypto/tls)")
    # Only TLS 1.3 suites listed: the TLS 1.2 list stays OpenSSL's default, as Go's would.
    return ":".join(CIPHER_SUITES[name] for name in names if name in CIPHER_SUITES) or "DEFAULT"


def _set_ciphers(context: ssl.SSLContext, ciphers: str) -> None:
    try:
        context.set_ciphers(ciphers)
    except ssl.SSLError:
        raise TLSSetupError("cipher_suites", "none of these cipher suites is available in this OpenSSL") from None


class RotatingContext(ssl.SSLContext):
    """The server's context: each connection is wrapped by the context `current()` returns."""

    _current: Callable[[], ssl.SSLContext]

    def __new__(cls, current: Callable[[], ssl.SSLContext]) -> RotatingContext:
        context = super().__new__(cls, ssl.PROTOCOL_TLS_SERVER)
        context._current = current
        return context

    def __init__(self, current: Callable[[], ssl.SSLContext]) -> None:
        pass

    def wrap_bio(  # type: ignore[override]
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return self._current().wrap_bio(incoming, outgoing, server_side, server_hostname, session)
