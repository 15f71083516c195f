"""TLS from the web config: versions, cipher suites, and certificates rotating without a
restart, in process and in a real `serve` process (on uvloop, as shipped)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
from pathlib import Path

import aiohttp
import pytest

from local_exporter.bridge.webconfig.guard import CHECK_INTERVAL_SECONDS
from tests.support.bridges import until
from tests.support.processes import (
    LOOPBACK,
    free_port,
    http_get,
    local_exporter_args,
    poll,
    python_env,
    running,
    wait_http,
)
from tests.support.web import PASSWORD, USER, Pki, get, served_bridge, users_yaml

HANDSHAKE_FAILURES = "local_exporter_tls_handshake_failures_total"
SERVER_ONLY = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"


def _bridge(directory: Path) -> str:
    (directory / "f.prom").write_text("up 1\n")
    return f'[bridge.selectors]\nf = {{ kind = "file", path = "{directory}/f.prom" }}\n'


async def _server_sans(url: str, context: ssl.SSLContext) -> list[str]:
    """The SANs of the certificate the server presents to a new connection."""
    host, port = url.removeprefix("https://").split(":")
    _, writer = await asyncio.open_connection(host, int(port), ssl=context)
    try:
        return [value for _, value in writer.get_extra_info("peercert")["subjectAltName"]]
    finally:
        await _close(writer)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        await writer.wait_closed()


def _client(pki: Pki, version: ssl.TLSVersion | None = None, ciphers: str | None = None) -> ssl.SSLContext:
    context = pki.client(certificate=False)
    if version is not None:
        context.maximum_version = version
    if ciphers is not None:
        context.set_ciphers(ciphers)
    return context


async def test_min_version_refuses_older_clients(short_dir: Path) -> None:
    pki = Pki(short_dir)
    async with served_bridge(short_dir, _bridge(short_dir), SERVER_ONLY + "  min_version: TLS13\n") as served:
        assert (await get(f"{served.url}/bridge?selector=f", _client(pki)))[:2] == (200, "up 1\n")
        with pytest.raises(aiohttp.ClientError):
            await get(f"{served.url}/bridge?selector=f", _client(pki, ssl.TLSVersion.TLSv1_2))
        await until(lambda: served.registry.get_sample_value(HANDSHAKE_FAILURES) == 1)


async def test_cipher_suites_are_go_names_applied_to_tls12(short_dir: Path) -> None:
    pki = Pki(short_dir)
    web = SERVER_ONLY + "  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n"
    async with served_bridge(short_dir, _bridge(short_dir), web) as served:
        host, port = served.url.removeprefix("https://").split(":")
        _, writer = await asyncio.open_connection(host, int(port), ssl=_client(pki))
        assert writer.get_extra_info("cipher")[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"
        await _close(writer)
        with pytest.raises(aiohttp.ClientError):
            await get(f"{served.url}/metrics", _client(pki, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256"))


async def test_a_renewed_certificate_is_served_to_new_connections_without_a_restart(short_dir: Path) -> None:
    pki = Pki(short_dir)
    async with served_bridge(short_dir, _bridge(short_dir), SERVER_ONLY) as served:
        assert await _server_sans(served.url, _client(pki)) == [LOOPBACK]
        # An open keep-alive connection keeps its session across the rotation.
        connector = aiohttp.TCPConnector(ssl=_client(pki))
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.get(f"{served.url}/metrics") as response:
                assert response.status == 200
            await asyncio.sleep(CHECK_INTERVAL_SECONDS)
            pki.write_server_certificate("renewed.example")
            assert await _server_sans(served.url, _client(pki)) == [LOOPBACK, "renewed.example"]
            async with session.get(f"{served.url}/metrics") as response:
                assert response.status == 200
        assert (
            "local_exporter_web_config_last_reload_successful 1.0"
            in (await get(f"{served.url}/metrics", _client(pki)))[1]
        )


async def test_a_rotation_that_does_not_load_keeps_the_old_certificate(short_dir: Path) -> None:
    pki = Pki(short_dir)
    async with served_bridge(short_dir, _bridge(short_dir), SERVER_ONLY) as served:
        await asyncio.sleep(CHECK_INTERVAL_SECONDS)
        # Half a rotation: a new certificate, the old key.
        pki.ca.issue_cert(LOOPBACK, "half.example").cert_chain_pems[0].write_to_path(str(short_dir / "server.crt"))
        assert await _server_sans(served.url, _client(pki)) == [LOOPBACK]
        status, body, _ = await get(f"{served.url}/metrics", _client(pki))
        assert status == 200 and "local_exporter_web_config_last_reload_successful 0.0" in body
        await asyncio.sleep(CHECK_INTERVAL_SECONDS)
        pki.write_server_certificate("whole.example")
        assert await _server_sans(served.url, _client(pki)) == [LOOPBACK, "whole.example"]


def test_serve_with_tls_and_auth_serves_a_renewed_certificate_in_a_real_process(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    port = free_port()
    (tmp_path / "config.toml").write_text(f'[service]\naddress = "{LOOPBACK}"\nport = {port}\n' + _bridge(tmp_path))
    (tmp_path / "web.yml").write_text(SERVER_ONLY + users_yaml() + "auth_excluded_paths: [/-/healthy]\n")
    args = local_exporter_args(
        "serve", "-c", str(tmp_path / "config.toml"), "--web.config.file", str(tmp_path / "web.yml")
    )
    url = f"https://{LOOPBACK}:{port}"
    context = _client(pki)
    auth = {"Authorization": aiohttp.encode_basic_auth(USER, PASSWORD)}
    with running("serve", args, tmp_path, python_env()) as child:
        wait_http(f"{url}/-/healthy", 20, watch=[child], context=context)
        assert http_get(f"{url}/bridge?selector=f", context=context).status == 401
        assert http_get(f"{url}/bridge?selector=f", auth, context=context).text == "up 1\n"
        pki.write_server_certificate("renewed.example")
        child.signal(signal.SIGHUP)

        def renewed() -> bool | None:
            sans = asyncio.run(_server_sans(url, context))
            return True if "renewed.example" in sans else None

        poll("the renewed certificate", renewed, 10, watch=[child])


def test_serve_refuses_to_start_with_a_broken_web_config(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "config.toml").write_text(f'[service]\naddress = "{LOOPBACK}"\nport = {port}\n' + _bridge(tmp_path))
    (tmp_path / "web.yml").write_text("basic_auth_users:\n  alice: hunter2\n")
    args = local_exporter_args(
        "serve", "-c", str(tmp_path / "config.toml"), "--web.config.file", str(tmp_path / "web.yml")
    )
    with running("serve", args, tmp_path, python_env()) as child:
        assert child.wait(20) == 1
    assert f"{tmp_path / 'web.yml'}:2: basic_auth_users.alice: is not a bcrypt hash" in child.stderr()
    assert "hunter2" not in child.stderr() and "Traceback" not in child.stderr()
