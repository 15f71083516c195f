"""A bridge served for real (server.py, on 127.0.0.1 and a free port) behind a web config, and
the certificates to reach it: a CA of our own (trustme), a server certificate for 127.0.0.1,
client certificates with the SANs a test asks for, and one from a CA the bridge does not trust.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp
import bcrypt
import trustme
from prometheus_client import CollectorRegistry

from local_exporter.bridge import config as bridge_config
from local_exporter.bridge import server
from local_exporter.bridge.app import METRICS, WEB, make_app
from local_exporter.bridge.webconfig import loader as web_config
from local_exporter.bridge.webconfig.guard import WebGuard
from tests.support.processes import LOOPBACK

#: The SAN the example client certificate carries, and the one web configs here allow.
PROMETHEUS_SAN = "prometheus.example"
USER, PASSWORD = "prometheus", "correct horse"
# Cost 4, bcrypt's lowest: the tests check behaviour, bench/basic_auth.py measures the cost.
TEST_COST = 4


def bcrypt_hash(password: str, cost: int = TEST_COST) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()


@dataclass
class Pki:
    directory: Path
    ca: trustme.CA = field(default_factory=trustme.CA)
    stranger: trustme.CA = field(default_factory=trustme.CA)

    def __post_init__(self) -> None:
        self.ca.cert_pem.write_to_path(str(self.directory / "ca.pem"))
        self.write_server_certificate()

    def write_server_certificate(self, *identities: str) -> trustme.LeafCert:
        leaf = self.ca.issue_cert(LOOPBACK, *identities)
        leaf.cert_chain_pems[0].write_to_path(str(self.directory / "server.crt"))
        leaf.private_key_pem.write_to_path(str(self.directory / "server.key"))
        return leaf

    def client(self, *identities: str, trusted: bool = True, certificate: bool = True) -> ssl.SSLContext:
        """A client context trusting our CA, presenting a certificate for `identities` (issued by
        our CA, or by a stranger's) unless `certificate` is False."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        if certificate:
            issuer = self.ca if trusted else self.stranger
            issuer.issue_cert(*(identities or (PROMETHEUS_SAN,))).configure_cert(context)
        return context


TLS_CLIENT_CERTS = f"""tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.pem
  client_allowed_sans: [{PROMETHEUS_SAN}]
"""


def users_yaml(password: str = PASSWORD, user: str = USER) -> str:
    return f"basic_auth_users:\n  {user}: {bcrypt_hash(password)}\n"


@dataclass
class Served:
    url: str
    registry: CollectorRegistry
    #: The web config's guard and file (with a web config).
    guard_or_none: WebGuard | None
    path: Path

    @property
    def guard(self) -> WebGuard:
        assert self.guard_or_none is not None, "served without a web config"
        return self.guard_or_none

    def rejected(self, reason: str) -> float:
        return (
            self.registry.get_sample_value("local_exporter_bridge_rejected_requests_total", {"reason": reason}) or 0.0
        )


@contextlib.asynccontextmanager
async def served_bridge(
    directory: Path, toml: str, web_yaml: str | None, *, header_timeout: float | None = None
) -> AsyncIterator[Served]:
    """The bridge of `toml`, behind the web config `web_yaml` (written to directory/web.yml)
    or, with None, without one."""
    path = directory / "web.yml"
    config = bridge_config.parse(toml, "test.toml")
    service = replace(config.service, address=LOOPBACK, port=0)
    if header_timeout is not None:
        service = replace(service, header_timeout=header_timeout)
    registry = CollectorRegistry()
    if web_yaml is not None:
        path.write_text(web_yaml)
    app = make_app(
        config, registry, lifecycle=True, web_config=(path, web_config.load(path)) if web_yaml is not None else None
    )
    guard = app.get(WEB)
    context = guard.server_context() if guard is not None else None
    runner, site = await server.start(app, service, context, app[METRICS])
    try:
        scheme = "https" if context is not None else "http"
        yield Served(f"{scheme}://{LOOPBACK}:{site.port}", registry, guard, path)
    finally:
        await runner.cleanup()


async def get(
    url: str,
    context: ssl.SSLContext | None = None,
    auth: tuple[str, str] | None = None,
) -> tuple[int, str, dict[str, str]]:
    """One GET on a fresh connection: status, body, headers."""
    connector = aiohttp.TCPConnector(ssl=context if context is not None else False, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        headers = {"Authorization": aiohttp.encode_basic_auth(*auth)} if auth else {}
        async with session.get(url, headers=headers) as response:
            return response.status, await response.text(), dict(response.headers)
