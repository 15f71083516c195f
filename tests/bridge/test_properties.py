"""Property-based tests (hypothesis): whatever a client sends, a real `serve` process (behind a
web config with basic auth) answers without a 500 from its own code, with a one-line reason, and
without a traceback; whatever a config file or a web config holds, the loader answers with a
config or with problems naming where, never with another exception."""

from __future__ import annotations

import http.client
import string
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local_exporter.bridge import config
from local_exporter.bridge.webconfig import config as web_config
from tests.support.processes import LOOPBACK, Child, free_port, local_exporter_args, python_env, running, wait_http
from tests.support.web import PASSWORD, USER, users_yaml

VALID_AUTHORIZATION = aiohttp.encode_basic_auth(USER, PASSWORD)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Child]]:
    directory = tmp_path_factory.mktemp("properties")
    (directory / "m.prom").write_text("up 1\n")
    port = free_port()
    path = directory / "config.toml"
    path.write_text(
        f'[service]\naddress = "{LOOPBACK}"\nport = {port}\n\n[bridge.selectors]\n'
        f'm = {{ kind = "file", path = "{directory}/m.prom" }}\n'
        f'gone = {{ kind = "uds", path = "{directory}/gone.sock" }}\n'
    )
    (directory / "web.yml").write_text(users_yaml() + "auth_excluded_paths: [/-/ready]\n")
    args = local_exporter_args("serve", "-c", str(path), "--web.config.file", str(directory / "web.yml"))
    with running("serve", args, directory, env=python_env()) as child:
        wait_http(f"http://{LOOPBACK}:{port}/-/ready", 20, watch=[child])
        yield port, child
    assert "Traceback" not in child.stderr_path.read_text(errors="replace")


# Query strings: real parameter names and values mixed with anything at all, percent-encoded.
names = st.sampled_from(["selector", "Selector", "selector[]", "", "s", "selector "])
values = st.one_of(st.sampled_from(["m", "gone", "", "../m", "m\x00", "m" * 300]), st.text(max_size=40))
queries = st.lists(st.tuples(names, values), max_size=4).map(
    lambda pairs: "&".join(f"{urllib.parse.quote(k)}={urllib.parse.quote(v)}" for k, v in pairs)
)
# Header values: mostly what RFC 9110 allows (visible ASCII, space, tab), sometimes any byte but
# CR and LF (which http.client refuses to send): those the server refuses with its own one-line 400.
allowed = string.digits + string.ascii_letters + string.punctuation + " \t"
header_values = st.one_of(
    st.text(alphabet=allowed, max_size=30),
    st.text(alphabet=st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=30),
)
authorizations = st.one_of(
    st.just(VALID_AUTHORIZATION), st.none(), header_values, st.builds(lambda v: f"Basic {v}", header_values)
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    query=queries,
    scrape_timeout=st.one_of(st.none(), header_values, st.sampled_from(["0", "-1", "nan", "inf", "1e999", "0.01"])),
    accept_encoding=st.one_of(st.none(), header_values),
    authorization=authorizations,
    path=st.sampled_from(["/bridge", "/metrics", "/", "/-/healthy", "/-/ready", "/nope", "/bridge/"]),
)
def test_no_request_gets_a_500_or_a_multi_line_error(
    served: tuple[int, Child],
    query: str,
    scrape_timeout: str | None,
    accept_encoding: str | None,
    authorization: str | None,
    path: str,
) -> None:
    port, child = served
    headers = {}
    if authorization is not None:
        headers["Authorization"] = authorization
    if scrape_timeout is not None:
        headers["X-Prometheus-Scrape-Timeout-Seconds"] = scrape_timeout
    if accept_encoding is not None:
        headers["Accept-Encoding"] = accept_encoding
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    try:
        connection.request("GET", f"{path}?{query}" if query else path, headers=headers)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status < 500 or response.status in (502, 503, 504), (response.status, body[:200])
    if response.status >= 400 and (path == "/bridge" or response.status in (400, 401)):
        assert body.endswith(b"\n") and body.count(b"\n") == 1, body[:300]
    assert child.process.poll() is None


# Config files: lines built from the config's own vocabulary, and anything at all.
keys = st.sampled_from(
    ["kind", "path", "timeout", "max_bytes", "address", "port", "url", "socket", "coalesce", "labels", "x", "tls"]
)
toml_values = st.sampled_from(
    ['"file"', '"uds"', '"/run/x"', "1", "-1", "0.5", "true", '""', "[1]", "{}", '{ a = "b" }']
)
tables = st.sampled_from(
    ["[service]", "[bridge]", "[bridge.selectors.a]", "[bridge.selectors.b]", "[bridge.selectors]"]
)
lines = st.one_of(tables, st.builds(lambda k, v: f"{k} = {v}", keys, toml_values), st.text(max_size=30))


@settings(max_examples=300, deadline=None)
@given(text=st.lists(lines, max_size=12).map("\n".join))
def test_any_config_text_loads_or_names_its_problems(text: str) -> None:
    problems: list[str] = []
    try:
        loaded = config.parse(text, "fuzz.toml")
    except config.ConfigError as exc:  # any other exception fails the test
        problems = exc.problems
    else:
        assert loaded.selectors
        return
    assert problems
    assert all(problem.startswith("fuzz.toml") and "\n" not in problem for problem in problems)


# Web configs: lines built from the web config's own vocabulary, and anything at all.
web_lines = st.one_of(
    st.sampled_from(
        [
            "tls_server_config:",
            "http_server_config:",
            "  headers:",
            "basic_auth_users:",
            "rate_limit:",
            "auth_excluded_paths: [/-/healthy]",
            "  cert_file: server.crt",
            "  key_file: server.key",
            "  client_auth_type: RequireAndVerifyClientCert",
            "  min_version: TLS13",
            "  interval: 1s",
            "  burst: 0",
            "    X-Frame-Options: deny",
            "  alice: $2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi",
            "- a",
            "  - b",
            "x: {",
            "  1: x",
            "null: 1",
            "? [a]",
            "  ? !!binary aGVsbG8=",
        ]
    ),
    st.text(max_size=30),
)


@settings(max_examples=300, deadline=None)
@given(text=st.lists(web_lines, max_size=10).map("\n".join))
def test_any_web_config_text_loads_or_names_its_problems(text: str) -> None:
    problems, loaded = web_config.parse(text, Path("/nonexistent"))  # any exception fails the test
    assert loaded is not None or problems
    assert all(p.render("fuzz.yml").startswith("fuzz.yml") and "\n" not in p.render("fuzz.yml") for p in problems.items)


def test_config_files_in_odd_encodings_are_problems_not_tracebacks(tmp_path: Path) -> None:
    for name, raw in (
        ("latin1.toml", 'kind = "caf\xe9"'.encode("latin-1")),
        ("nul.toml", b"\x00\x00"),
        ("bom.toml", b"\xef\xbb\xbf"),
    ):
        path = tmp_path / name
        path.write_bytes(raw)
        with pytest.raises(config.ConfigError) as caught:
            config.load(path)
        assert all(str(path) in problem for problem in caught.value.problems), caught.value.problems
