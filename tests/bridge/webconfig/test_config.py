"""The web config file: what loads, and every problem named with its key and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_exporter.bridge.webconfig.config import RateLimit, WebConfig, WebConfigError
from local_exporter.bridge.webconfig.loader import load
from local_exporter.cli import main
from tests.support.web import TLS_CLIENT_CERTS, Pki, bcrypt_hash

GOOD_HASH = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"


def _load(directory: Path, text: str) -> WebConfig:
    path = directory / "web.yml"
    path.write_text(text)
    return load(path)


def _problems(directory: Path, text: str) -> list[str]:
    with pytest.raises(WebConfigError) as caught:
        _load(directory, text)
    return caught.value.problems


def test_an_empty_file_is_plain_http_without_auth(tmp_path: Path) -> None:
    assert _load(tmp_path, "") == WebConfig()
    assert _load(tmp_path, "# only a comment\n") == WebConfig()


def test_every_key_is_read_and_files_are_relative_to_the_web_config(tmp_path: Path) -> None:
    Pki(tmp_path)
    config = _load(
        tmp_path,
        TLS_CLIENT_CERTS
        + "  min_version: TLS13\n"
        + "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n"
        + "  prefer_server_cipher_suites: false\n"
        + "http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n    X-XSS-Protection: ''\n"
        + f"basic_auth_users:\n  alice: {GOOD_HASH}\n"
        + "auth_excluded_paths: [/-/healthy]\n"
        + "rate_limit:\n  interval: 1m30s\n  burst: 20\n",
    )
    assert config.tls is not None
    assert config.tls.cert_file == tmp_path / "server.crt"
    assert config.tls.client_ca_file == tmp_path / "ca.pem"
    assert config.tls.client_auth_type == "RequireAndVerifyClientCert"
    assert config.tls.client_allowed_sans == ("prometheus.example",)
    assert (config.tls.min_version, config.tls.max_version) == ("TLS13", "TLS13")
    assert config.tls.cipher_suites == ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",)
    assert config.tls.prefer_server_cipher_suites is False
    assert config.headers == (("X-Frame-Options", "deny"),)  # a blank header is unset
    assert config.users == (("alice", GOOD_HASH.encode()),)
    assert config.auth_excluded_paths == frozenset({"/-/healthy"})
    assert config.rate_limit == RateLimit(interval=90.0, burst=20)
    assert config.http2 is False


def _indent(pem: str) -> str:
    return "".join(f"    {line}\n" for line in pem.splitlines())


def test_inline_certificate_and_key_load(tmp_path: Path) -> None:
    Pki(tmp_path)
    cert = (tmp_path / "server.crt").read_text()
    key = (tmp_path / "server.key").read_text()
    config = _load(tmp_path, f"tls_server_config:\n  cert: |\n{_indent(cert)}  key: |\n{_indent(key)}")
    assert config.tls is not None and config.tls.cert == cert


SERVER = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
PROBLEMS = [
    ("unknown top-level key", "tls_config: {}\n", 1, "tls_config: unknown key"),
    ("unknown TLS key", SERVER + "  client_cas: x\n", 4, "tls_server_config.client_cas: unknown key"),
    ("duplicate key", "rate_limit:\n  burst: 1\n  burst: 2\n", 3, "rate_limit.burst: defined twice (first at line 2)"),
    ("invalid YAML", "a: [1\nb: 2\n", 2, "invalid YAML"),
    ("not a mapping", "- a\n- b\n", 1, "must be a mapping"),
    (
        "header not allowed",
        "http_server_config:\n  headers:\n    Server: x\n",
        3,
        "headers.Server: cannot be configured",
    ),
    (
        "header value",
        "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
        3,
        "must be one of 'deny', 'sameorigin'",
    ),
    ("not a bcrypt hash", "basic_auth_users:\n  alice: hunter2\n", 2, "basic_auth_users.alice: is not a bcrypt hash"),
    (
        "bcrypt cost",
        "basic_auth_users:\n  alice: " + GOOD_HASH.replace("$10$", "$03$") + "\n",
        2,
        "bcrypt cost must be between 4 and 31",
    ),
    (
        "unverified client auth",
        SERVER + "  client_auth_type: RequireAnyClientCert\n",
        4,
        "accepts certificates without verifying them",
    ),
    ("unknown client auth", SERVER + "  client_auth_type: Always\n", 4, "must be one of 'NoClientCert'"),
    ("CA without client auth", SERVER + "  client_ca_file: ca.pem\n", 4, "client_auth_type is NoClientCert"),
    (
        "client auth without CA",
        SERVER + "  client_auth_type: RequireAndVerifyClientCert\n",
        1,
        "client_ca_file: is required to verify",
    ),
    (
        "SANs with optional certificates",
        SERVER + "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.pem\n  client_allowed_sans: [a]\n",
        6,
        "needs client_auth_type RequireAndVerifyClientCert",
    ),
    ("min above max", SERVER + "  min_version: TLS13\n  max_version: TLS12\n", 4, "TLS13 is above max_version TLS12"),
    ("unknown version", SERVER + "  min_version: SSL3\n", 4, "must be one of 'TLS10'"),
    ("curve preferences", SERVER + "  curve_preferences: [X25519]\n", 4, "curve_preferences: is not supported"),
    (
        "certificate without key",
        "tls_server_config:\n  cert_file: server.crt\n",
        1,
        "key_file: is required with a certificate",
    ),
    ("key without certificate", "tls_server_config:\n  key_file: server.key\n", 1, "cert_file: is required"),
    ("file and inline", SERVER + "  cert: x\n", 4, "give either cert_file or cert, not both"),
    ("bad duration", "rate_limit:\n  interval: 5 seconds\n  burst: 1\n", 2, "must be a duration such as 1s"),
    ("burst 0", "rate_limit:\n  interval: 1s\n", 1, "burst: must be at least 1 when interval is set"),
    ("wrong type", "auth_excluded_paths: /-/healthy\n", 1, "auth_excluded_paths: must be an array of strings"),
    (
        "missing certificate file",
        "tls_server_config:\n  cert_file: none.crt\n  key_file: server.key\n",
        2,
        "cert_file: cannot read",
    ),
    (
        "key of another certificate",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n",
        2,
        "cert_file: does not load: key values mismatch",
    ),
    ("unknown cipher", SERVER + "  cipher_suites: [TLS_RC4]\n", 4, "unknown cipher suite 'TLS_RC4'"),
    (
        "CA file without certificates",
        SERVER + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: server.key\n",
        5,
        "client_ca_file: does not load",
    ),
]


@pytest.mark.parametrize(("yaml_text", "line", "message"), [p[1:] for p in PROBLEMS], ids=[p[0] for p in PROBLEMS])
def test_a_problem_names_its_key_and_line(tmp_path: Path, yaml_text: str, line: int, message: str) -> None:
    pki = Pki(tmp_path)
    pki.ca.issue_cert("127.0.0.1").private_key_pem.write_to_path(str(tmp_path / "other.key"))
    problems = _problems(tmp_path, yaml_text)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{tmp_path / 'web.yml'}:{line}: "), problems
    assert message in problems[0], problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "basic_auth_users:\n  a: x\nrate_limit:\n  interval: soon\nextra: 1\n")
    assert [p.split(": ")[0].rsplit(":", 1)[1] for p in problems] == ["2", "4", "5"]


def test_a_secret_is_never_echoed_in_a_problem(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path, "basic_auth_users:\n  alice: my-plaintext-password\n")
    assert "my-plaintext-password" not in problem


def test_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError) as caught:
        load(tmp_path / "none.yml")
    assert caught.value.problems == [f"{tmp_path / 'none.yml'}: cannot read web config: No such file or directory"]


def test_check_web_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "good.yml").write_text(
        f"basic_auth_users:\n  alice: {bcrypt_hash('x')}\nrate_limit:\n  interval: 1s\n  burst: 5\n"
    )
    assert main(["check-web-config", str(tmp_path / "good.yml")]) == 0
    assert "basic_auth_users 1, rate_limit 5/1s" in capsys.readouterr().out
    (tmp_path / "bad.yml").write_text("tls_server_config:\n  cert_file: none.crt\n")
    assert main(["check-web-config", str(tmp_path / "bad.yml")]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'bad.yml'}:1: tls_server_config.key_file: is required with a certificate" in err
    assert "1 problem(s); not usable" in err


def test_check_web_config_reports_the_tls_files_with_every_other_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.yml").write_text(
        "tls_server_config:\n"
        "  cert_file: missing.crt\n"
        "  key_file: missing.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        "  client_ca_file: missing-ca.crt\n"
        "basic_auth_users:\n"
        "  alice: not-a-hash\n"
        "bogus: 1\n"
    )
    assert main(["check-web-config", str(tmp_path / "bad.yml")]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(": ", 2)[:2] for line in lines[:-1]] == [
        [f"{tmp_path / 'bad.yml'}:2", "tls_server_config.cert_file"],
        [f"{tmp_path / 'bad.yml'}:5", "tls_server_config.client_ca_file"],
        [f"{tmp_path / 'bad.yml'}:7", "basic_auth_users.alice"],
        [f"{tmp_path / 'bad.yml'}:8", "bogus"],
    ]
    assert f"cannot read {tmp_path / 'missing.crt'}: No such file or directory" in lines[0]
    assert lines[-1] == f"{tmp_path / 'bad.yml'}: 4 problem(s); not usable"
