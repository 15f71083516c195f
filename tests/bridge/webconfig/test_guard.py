"""The web config applied to real requests: basic auth, client certificates, security headers,
the rate limit, and re-reading the file when it changes, on a bridge served for real."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from local_exporter.bridge.webconfig.basic_auth import _cost
from local_exporter.bridge.webconfig.guard import CHALLENGE, CHECK_INTERVAL_SECONDS
from local_exporter.bridge.webconfig.tls import TLSSetupError
from tests.support.bridges import until
from tests.support.web import PASSWORD, TLS_CLIENT_CERTS, USER, Pki, bcrypt_hash, get, served_bridge, users_yaml

BRIDGE = '[bridge.selectors]\nf = {{ kind = "file", path = "{dir}/f.prom" }}\n'


def _bridge(directory: Path) -> str:
    (directory / "f.prom").write_text("up 1\n")
    return BRIDGE.format(dir=directory)


async def _rewrite(path: Path, text: str) -> None:
    """Replace the web config as a config manager would, and let the guard's next look see it."""
    await asyncio.sleep(CHECK_INTERVAL_SECONDS)
    path.with_suffix(".new").write_text(text)
    path.with_suffix(".new").rename(path)


async def test_basic_auth_lets_the_right_password_in_and_challenges_the_rest(tmp_path: Path) -> None:
    async with served_bridge(tmp_path, _bridge(tmp_path), users_yaml()) as served:
        status, body, _ = await get(f"{served.url}/bridge?selector=f", auth=(USER, PASSWORD))
        assert (status, body) == (200, "up 1\n")
        for auth in ((USER, "wrong"), ("mallory", PASSWORD), None):
            status, body, headers = await get(f"{served.url}/bridge?selector=f", auth=auth)
            assert status == 401 and headers["WWW-Authenticate"] == CHALLENGE
            assert body == "unauthorized: a valid user and password are required\n"
        assert served.rejected("unauthorized") == 3


@pytest.mark.parametrize("header", ["Basic !!!", "Basic " + "bm8tY29sb24=", "Bearer abc", "Basic"])
async def test_a_malformed_authorization_header_is_a_401(tmp_path: Path, header: str) -> None:
    async with served_bridge(tmp_path, _bridge(tmp_path), users_yaml()) as served:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{served.url}/metrics", headers={"Authorization": header}) as response,
        ):
            assert response.status == 401
        assert served.rejected("unauthorized") == 1


async def test_verdicts_are_cached_and_unknown_users_cost_a_check_at_the_same_cost(tmp_path: Path) -> None:
    web = f"basic_auth_users:\n  {USER}: {bcrypt_hash(PASSWORD, 5)}\n  other: {bcrypt_hash('x', 4)}\n"
    async with served_bridge(tmp_path, _bridge(tmp_path), web) as served:
        auth = served.guard.auth
        assert auth is not None
        # The dummy hash an unknown user is checked against costs what the dearest user's does.
        assert _cost(auth.dummy) == b"05"
        for _ in range(3):
            assert (await get(f"{served.url}/metrics", auth=(USER, PASSWORD)))[0] == 200
            assert (await get(f"{served.url}/metrics", auth=("mallory", "guess")))[0] == 401
        # One bcrypt check each, then cached, whatever the number of requests.
        assert auth.checks.counts == {"match": 1, "mismatch": 1, "abandoned": 0}


async def test_excluded_paths_need_no_credentials(tmp_path: Path) -> None:
    web = users_yaml() + "auth_excluded_paths: [/-/healthy]\n"
    async with served_bridge(tmp_path, _bridge(tmp_path), web) as served:
        assert (await get(f"{served.url}/-/healthy"))[0] == 200
        assert (await get(f"{served.url}/-/ready"))[0] == 401


async def test_security_headers_are_on_every_answer(tmp_path: Path) -> None:
    web = users_yaml() + (
        "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
        "    Content-Security-Policy: default-src 'none'\n"
    )
    async with served_bridge(tmp_path, _bridge(tmp_path), web) as served:
        for path, auth, status in (
            ("/bridge?selector=f", (USER, PASSWORD), 200),
            ("/bridge?selector=none", (USER, PASSWORD), 404),
            ("/nowhere", (USER, PASSWORD), 404),
            ("/metrics", None, 401),
        ):
            got, _, headers = await get(served.url + path, auth=auth)
            assert got == status
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert headers["Content-Security-Policy"] == "default-src 'none'"


async def test_the_rate_limit_answers_429_past_the_burst_and_refills(tmp_path: Path) -> None:
    async with served_bridge(tmp_path, _bridge(tmp_path), "rate_limit:\n  interval: 200ms\n  burst: 3\n") as served:
        statuses = [(await get(f"{served.url}/bridge?selector=f"))[0] for _ in range(5)]
        assert statuses[:3] == [200, 200, 200] and 429 in statuses[3:]
        status, body, _ = await get(f"{served.url}/metrics")
        assert status == 429 and body == "rate limit exceeded: try again later\n"
        assert served.rejected("rate_limited") == statuses.count(429) + 1
        await asyncio.sleep(0.25)  # one interval: one more request
        assert (await get(f"{served.url}/bridge?selector=f"))[0] == 200


async def test_an_unchanged_rate_limit_keeps_its_bucket_and_a_changed_one_starts_full(tmp_path: Path) -> None:
    limited = "rate_limit:\n  interval: 1h\n  burst: 1\n"
    async with served_bridge(tmp_path, _bridge(tmp_path), limited) as served:
        assert [(await get(f"{served.url}/metrics"))[0] for _ in range(2)] == [200, 429]
        await _rewrite(served.path, "# the same limit, rewritten\n" + limited)
        assert (await get(f"{served.url}/metrics"))[0] == 429
        assert served.guard.reload()[0]
        assert (await get(f"{served.url}/metrics"))[0] == 429
        await _rewrite(served.path, "http_server_config:\n  http2: false\n")
        assert [(await get(f"{served.url}/metrics"))[0] for _ in range(3)] == [200, 200, 200]
        await _rewrite(served.path, limited)
        assert [(await get(f"{served.url}/metrics"))[0] for _ in range(2)] == [200, 429]


async def test_client_certificates_are_required_and_their_sans_checked(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    async with served_bridge(tmp_path, _bridge(tmp_path), TLS_CLIENT_CERTS) as served:
        url = f"{served.url}/bridge?selector=f"
        assert (await get(url, pki.client()))[:2] == (200, "up 1\n")
        status, body, _ = await get(url, pki.client(certificate=False))
        assert (status, body) == (
            403,
            "a client certificate is required (client_auth_type RequireAndVerifyClientCert)\n",
        )
        status, body, _ = await get(url, pki.client("intruder.example"))
        assert (status, body) == (403, "the client certificate has none of the allowed SANs (client_allowed_sans)\n")
        assert served.rejected("forbidden") == 2
        # A certificate from a CA the bridge does not trust fails the handshake itself, counted.
        assert served.registry.get_sample_value("local_exporter_tls_handshake_failures_total") == 0
        with pytest.raises(aiohttp.ClientError):
            await get(url, pki.client(trusted=False))
        # (aiohttp's client tries a GET twice when the server drops it: one or two failures.)
        await until(lambda: (served.registry.get_sample_value("local_exporter_tls_handshake_failures_total") or 0) >= 1)


async def test_an_ip_address_san_matches_however_it_is_spelt(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    web = TLS_CLIENT_CERTS.replace("[prometheus.example]", "['::1']")
    async with served_bridge(tmp_path, _bridge(tmp_path), web) as served:
        assert (await get(f"{served.url}/metrics", pki.client("0:0:0:0:0:0:0:1")))[0] == 200


async def test_a_changed_password_takes_effect_without_a_restart(tmp_path: Path) -> None:
    async with served_bridge(tmp_path, _bridge(tmp_path), users_yaml()) as served:
        assert (await get(f"{served.url}/metrics", auth=(USER, PASSWORD)))[0] == 200
        await _rewrite(served.path, users_yaml("new password"))
        assert (await get(f"{served.url}/metrics", auth=(USER, PASSWORD)))[0] == 401
        assert (await get(f"{served.url}/metrics", auth=(USER, "new password")))[0] == 200
        _, body, _ = await get(f"{served.url}/metrics", auth=(USER, "new password"))
        assert "local_exporter_web_config_last_reload_successful 1.0" in body


async def test_a_broken_file_is_reported_once_and_the_last_good_one_keeps_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with served_bridge(tmp_path, _bridge(tmp_path), users_yaml()) as served:
        with caplog.at_level(logging.ERROR, logger="local_exporter.webconfig"):
            await _rewrite(served.path, "basic_auth_users:\n  prometheus: not-a-hash\n")
            for _ in range(3):
                status, body, _ = await get(f"{served.url}/metrics", auth=(USER, PASSWORD))
                assert status == 200
                await asyncio.sleep(CHECK_INTERVAL_SECONDS / 2)
            assert "local_exporter_web_config_last_reload_successful 0.0" in body
            assert (await get(f"{served.url}/metrics"))[0] == 401
        failures = [r for r in caplog.records if r.getMessage().startswith("web config reload failed")]
        assert len(failures) == 1, failures
        # POST /-/reload says why, with the line.
        status, body = await _post_reload(served.url)
        assert status == 500 and "web.yml:2: basic_auth_users.prometheus: is not a bcrypt hash" in body
        await _rewrite(served.path, users_yaml("fixed"))
        await until(lambda: served.guard.reload()[0])
        assert (await get(f"{served.url}/metrics", auth=(USER, "fixed")))[0] == 200


async def _post_reload(url: str) -> tuple[int, str]:
    headers = {"Authorization": aiohttp.encode_basic_auth(USER, PASSWORD)}
    async with aiohttp.ClientSession() as session, session.post(f"{url}/-/reload", headers=headers) as response:
        return response.status, await response.text()


async def test_tls_cannot_be_turned_on_by_a_reload(tmp_path: Path) -> None:
    Pki(tmp_path)
    async with served_bridge(tmp_path, _bridge(tmp_path), "") as served:
        await _rewrite(served.path, TLS_CLIENT_CERTS)
        done, message = served.guard.reload()
        assert not done and "turning TLS on or off takes a restart" in message
        assert (await get(f"{served.url}/metrics"))[0] == 200


async def test_a_config_whose_tls_files_fail_to_load_replaces_nothing(tmp_path: Path) -> None:
    # `load` checks the TLS files, but they can change again before they are used (a rotation in
    # progress): applying must then fail whole.
    pki = Pki(tmp_path)
    async with served_bridge(tmp_path, _bridge(tmp_path), TLS_CLIENT_CERTS + users_yaml()) as served:
        guard = served.guard
        before = (guard.config, guard.context, guard.auth)
        assert guard.config.tls is not None
        broken = replace(guard.config, users=(), tls=replace(guard.config.tls, key_file=tmp_path / "missing.key"))
        with pytest.raises(TLSSetupError):
            guard._apply(broken)
        assert (guard.config, guard.context, guard.auth) == before
        assert (await get(f"{served.url}/metrics", pki.client(), (USER, PASSWORD)))[0] == 200
