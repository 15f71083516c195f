"""The web config file -> a frozen `WebConfig`, read strictly, every problem at once.

The keys are the exporter-toolkit's (docs/configuration.md lists them). As there, relative
file names are relative to the web config's own directory, and an empty file means plain HTTP
with no authentication. Unlike there, a key the toolkit knows but Python's TLS cannot honour
(`RequestClientCert`, `curve_preferences`) is refused by name, not ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from local_exporter.common import durations
from local_exporter.common.fields import Problems, ProblemsError, Table
from local_exporter.common.toml_lines import KeyLines

TLS_VERSIONS = ("TLS10", "TLS11", "TLS12", "TLS13")
# client_auth_type -> whether a client certificate must be presented. The toolkit's other two
# types accept a certificate without verifying it, which Python's ssl module cannot do (and
# which proves nothing).
CLIENT_AUTH_TYPES = {"NoClientCert": None, "VerifyClientCertIfGiven": False, "RequireAndVerifyClientCert": True}
UNVERIFIED_CLIENT_AUTH_TYPES = ("RequestClientCert", "RequireAnyClientCert")
# The headers the toolkit lets a web config set, and the values it allows (None: any).
HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
# `$2y$10$` + 22 characters of salt + 31 of hash, in bcrypt's base64 alphabet.
_BCRYPT = re.compile(r"^\$2[abxy]?\$(\d\d)\$[./A-Za-z0-9]{53}$")


@dataclass(frozen=True)
class TLSSettings:
    cert_file: Path | None = None
    key_file: Path | None = None
    #: Inline PEM, instead of the files.
    cert: str | None = None
    key: str | None = field(default=None, repr=False)
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    client_ca: str | None = None
    client_allowed_sans: tuple[str, ...] = ()
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    #: Go's names (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 ...); TLS 1.2 and older only, as in Go.
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True

    @property
    def files(self) -> tuple[Path, ...]:
        """The files the context is made from: a change to any of them is a rotation."""
        return tuple(path for path in (self.cert_file, self.key_file, self.client_ca_file) if path is not None)


@dataclass(frozen=True)
class RateLimit:
    #: Seconds per request, sustained; `burst` requests may come at once.
    interval: float
    burst: int


@dataclass(frozen=True)
class WebConfig:
    tls: TLSSettings | None = None
    headers: tuple[tuple[str, str], ...] = ()
    #: User -> bcrypt hash.
    users: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)
    auth_excluded_paths: frozenset[str] = frozenset()
    rate_limit: RateLimit | None = None
    #: Accepted for compatibility; the bridge speaks HTTP/1.1 only.
    http2: bool = True


class WebConfigError(ProblemsError):
    """The web config cannot be used; `problems` holds one rendered line per problem."""


def parse(text: str, directory: Path) -> tuple[Problems, WebConfig | None]:
    problems = Problems()
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            raw = loader.construct_document(node) if node is not None else {}
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = " ".join(str(getattr(exc, "problem", None) or exc).split())
        problems.add((), f"invalid YAML: {reason}", line=mark.line + 1 if mark else None)
        return problems, None
    problems.key_lines = _key_lines(node, problems)
    raw = _string_keys(raw)
    if not isinstance(raw, dict):
        problems.add((), "must be a mapping of keys (tls_server_config, basic_auth_users, ...)", line=1)
        return problems, None
    top = Table(raw, (), problems)
    http = top.table("http_server_config")
    config = WebConfig(
        tls=_read_tls(top.table("tls_server_config"), directory),
        headers=_read_headers(http.table("headers")),
        users=_read_users(top.table("basic_auth_users")),
        auth_excluded_paths=frozenset(top.strings("auth_excluded_paths") or ()),
        rate_limit=_read_rate_limit(top.table("rate_limit")),
        http2=http.boolean("http2", True),
    )
    http.finish()
    top.finish()
    return problems, config


def _string_keys(value: Any) -> Any:
    """Mapping keys as the text they were written as (`1:`, `true:`, `null:` are keys too, and
    the toolkit's Go YAML reads them as strings)."""
    if isinstance(value, dict):
        return {_key_text(key): _string_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_string_keys(item) for item in value]
    return value


def _key_text(key: Any) -> str:
    if key is None:
        return "null"
    if isinstance(key, bool):
        return str(key).lower()
    return str(key)


def _key_lines(node: yaml.Node | None, problems: Problems) -> KeyLines:
    """Every key path's line; YAML's duplicate keys (which PyYAML silently overwrites) are problems."""
    found = KeyLines()

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if not isinstance(node, yaml.MappingNode):
            return
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                problems.add((*path, key), f"defined twice (first at line {seen[key]})", line=line)
            seen.setdefault(key, line)
            found.place((*path, key), line)
            walk(value_node, (*path, key))

    if node is not None:
        walk(node, ())
    return found


def _path(table: Table, key: str, directory: Path) -> Path | None:
    value = table.string(key)
    if value is None or value == "":
        return None
    return directory / value


def _read_tls(table: Table, directory: Path) -> TLSSettings | None:
    if not table.raw:
        return None
    defaults = TLSSettings()
    settings = TLSSettings(
        cert_file=_path(table, "cert_file", directory),
        key_file=_path(table, "key_file", directory),
        cert=table.string("cert") or None,
        key=table.string("key") or None,
        client_auth_type=_client_auth_type(table),
        client_ca_file=_path(table, "client_ca_file", directory),
        client_ca=table.string("client_ca") or None,
        client_allowed_sans=tuple(table.strings("client_allowed_sans") or ()),
        min_version=table.choice("min_version", TLS_VERSIONS, defaults.min_version) or defaults.min_version,
        max_version=table.choice("max_version", TLS_VERSIONS, defaults.max_version) or defaults.max_version,
        cipher_suites=tuple(table.strings("cipher_suites") or ()),
        prefer_server_cipher_suites=table.boolean("prefer_server_cipher_suites", True),
    )
    if "curve_preferences" in table.raw:
        table.strings("curve_preferences")
        table.problem("curve_preferences", "is not supported: Python's TLS cannot order curves; remove it")
    _check_tls(table, settings)
    table.finish()
    return settings


def _client_auth_type(table: Table) -> str:
    value = table.string("client_auth_type", "NoClientCert") or "NoClientCert"
    if value in UNVERIFIED_CLIENT_AUTH_TYPES:
        table.problem(
            "client_auth_type",
            f"{value} accepts certificates without verifying them, which Python's TLS cannot do: "
            "use RequireAndVerifyClientCert (or VerifyClientCertIfGiven) with client_ca_file",
        )
    elif value not in CLIENT_AUTH_TYPES:
        choices = ", ".join(map(repr, (*CLIENT_AUTH_TYPES, *UNVERIFIED_CLIENT_AUTH_TYPES)))
        table.problem("client_auth_type", f"must be one of {choices}, got {value!r}")
    return value


def _check_tls(table: Table, s: TLSSettings) -> None:
    for file_key, inline_key in (("cert_file", "cert"), ("key_file", "key"), ("client_ca_file", "client_ca")):
        if getattr(s, file_key) is not None and getattr(s, inline_key) is not None:
            table.problem(inline_key, f"give either {file_key} or {inline_key}, not both")
    has_cert, has_key = s.cert_file or s.cert, s.key_file or s.key
    if not has_cert:
        table.problem("cert_file", "is required when tls_server_config is set (or give cert inline)")
    elif not has_key:
        table.problem("key_file", "is required with a certificate (or give key inline)")
    has_ca = s.client_ca_file is not None or s.client_ca is not None
    required = CLIENT_AUTH_TYPES.get(s.client_auth_type)
    if has_ca and s.client_auth_type == "NoClientCert":
        table.problem("client_ca_file", "client CAs are configured but client_auth_type is NoClientCert")
    if s.client_auth_type in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert") and not has_ca:
        table.problem("client_ca_file", f"is required to verify client certificates ({s.client_auth_type})")
    if s.client_allowed_sans and required is not True:
        table.problem("client_allowed_sans", "needs client_auth_type RequireAndVerifyClientCert")
    if TLS_VERSIONS.index(s.min_version) > TLS_VERSIONS.index(s.max_version):
        table.problem("min_version", f"{s.min_version} is above max_version {s.max_version}")


def _read_headers(headers: Table) -> tuple[tuple[str, str], ...]:
    pairs = []
    for name, value in headers.subtables():
        if name not in HEADERS:
            headers.problem(name, f"cannot be configured: the headers are {', '.join(HEADERS)}")
        elif not isinstance(value, str):
            headers.problem(name, "must be a string")
        elif value:  # blank: unset, as in the toolkit
            allowed = HEADERS[name]
            if allowed is not None and value not in allowed:
                headers.problem(name, f"must be one of {', '.join(map(repr, allowed))}, got {value!r}")
            else:
                pairs.append((name, value))
    return tuple(pairs)


def _read_users(table: Table) -> tuple[tuple[str, bytes], ...]:
    users = []
    for user, hashed in table.subtables():
        match = _BCRYPT.match(hashed) if isinstance(hashed, str) else None
        if match is None:
            # The value is a secret: never echo it back.
            table.problem(user, "is not a bcrypt hash ($2y$10$ and 53 characters; see `htpasswd -nBC 10`)")
        elif not 4 <= int(match.group(1)) <= 31:
            table.problem(user, "bcrypt cost must be between 4 and 31")
        else:
            users.append((str(user), hashed.encode()))
    return tuple(users)


def _read_rate_limit(table: Table) -> RateLimit | None:
    interval = parse_duration(table, "interval")
    burst = table.integer("burst", 0, low=0, high=1_000_000)
    table.finish()
    if not interval:
        return None
    if burst < 1:
        table.problem("burst", "must be at least 1 when interval is set (0 would refuse every request)")
        return None
    return RateLimit(interval, burst)


def parse_duration(table: Table, key: str) -> float:
    """A Go duration (`1s`, `1m30s`, `250ms`) in seconds; 0 when absent."""
    text = table.string(key)
    if not text:
        return 0.0
    try:
        return durations.parse_duration(text, durations.GO)
    except ValueError:
        table.problem(key, f"must be a duration such as {durations.GO.examples}, got {text!r}")
        return 0.0


def describe(config: WebConfig) -> dict[str, Any]:
    """What the config turns on, for the startup log line (never a secret)."""
    tls, limit = config.tls, config.rate_limit
    return {
        "tls": "off" if tls is None else f"{tls.min_version}-{tls.max_version}",
        "client_auth": "NoClientCert" if tls is None else tls.client_auth_type,
        "basic_auth_users": len(config.users),
        "rate_limit": "off" if limit is None else f"{limit.burst}/{limit.interval:g}s",
    }
