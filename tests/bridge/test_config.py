"""The config loader, table-driven: each bad file maps to the exact problem lines it produces.

Every case pins the complete rendered output (file, line, dotted location, message), so a
wrong line number, a missing problem or an extra cascading one fails the test. The positive
cases pin the dataclasses an original-format file loads into.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path, PurePosixPath

import pytest

from local_exporter.bridge import config, limits, sources
from local_exporter.bridge.sources.dbus import DEFAULT_MAX_CALLS_IN_FLIGHT, DBusSettings
from local_exporter.bridge.sources.file import FileSettings
from local_exporter.bridge.sources.uds import UdsSettings
from tests.conftest import ROOT

# The original Go local_exporter's example config (dist/examples/config.toml), comments dropped.
ORIGINAL = """\
[service]
address = "127.0.0.1"
port = 9598
tls = false
[bridge]
dbus_system_bus_address = "unix:path=/host/run/dbus/system_bus_socket"
[bridge.selectors]
"daemon1" = { kind = "file", path = "/run/daemon1/public/metrics.promfile" }
"daemon2" = { kind = "uds", path = "/run/daemon2/public/metrics.promsock" }
[bridge.selectors.daemon3]
kind = "dbus"
bus = "system"
destination = "com.github.lucab.Prombus"
method = "com.github.lucab.Prombus.Observable.PromMetrics"
path = "/com/github/lucab/Prombus"
"""

NAME_RULE = "selector names are 1-64 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
NO_SELECTORS = "bridge.selectors: no selectors configured: add at least one [bridge.selectors.NAME] table"
NOT_A_TABLE = "must be a table with at least `kind` and `path`"
KINDS = "must be one of " + ", ".join(repr(kind) for kind in sources.KINDS)
METHOD = "must be an interface and a method name in one dotted string"
TLS = "service.tls: TLS is set in the web config file (serve --web.config.file): set tls = false or remove it"


def toml(text: str) -> str:
    """A test file: dedented, line 1 is the first line after the opening quotes."""
    return textwrap.dedent(text).lstrip("\n")


def problems_of(text: str) -> list[str]:
    with pytest.raises(config.ConfigError) as info:
        config.parse(text, "test.toml")
    return info.value.problems


BAD: list[tuple[str, str, list[str]]] = [
    # --- TOML itself -------------------------------------------------------------------------
    (
        "toml-syntax",
        """
        [service]
        port = 9598
        [bridge.selectors
        """,
        ["test.toml:3: invalid TOML: Expected ']' at the end of a table declaration (at line 3, column 18)"],
    ),
    (
        "toml-syntax-at-end-of-document",
        """
        [bridge.selectors]
        a = { kind = "file", path = "/run/a
        """,
        ["test.toml:2: invalid TOML: Illegal character '\\n' (at line 2, column 36)"],
    ),
    (
        "toml-duplicate-key-inside-a-selector",
        """
        [bridge.selectors.a]
        kind = "file"
        kind = "uds"
        """,
        ["test.toml:3: invalid TOML: Cannot overwrite a value (at line 3, column 13)"],
    ),
    (
        "toml-syntax-reported-with-duplicate-selector",
        """
        [bridge.selectors]
        x = { kind = "file", path = "/a" }
        [bridge.selectors.x]
        kind = "file"
        path = "/b"
        [service]
        port = 1 2
        """,
        [
            "test.toml:3: bridge.selectors.x: selector defined twice (first at line 2)",
            "test.toml:7: invalid TOML: Expected newline or end of document after a statement (at line 7, column 10)",
        ],
    ),
    # --- unknown keys, at every level ----------------------------------------------------------
    (
        "unknown-keys-everywhere",
        """
        servce = "typo"
        [service]
        adress = "127.0.0.1"
        [bridge]
        dbus_sytem_bus_address = "unix:path=/x"
        [bridge.selectors.a]
        kind = "file"
        path = "/run/a"
        timout = 3
        """,
        [
            "test.toml:1: servce: unknown key",
            "test.toml:3: service.adress: unknown key",
            "test.toml:5: bridge.dbus_sytem_bus_address: unknown key",
            "test.toml:9: bridge.selectors.a.timout: unknown key",
        ],
    ),
    (
        "unknown-key-in-inline-selector",
        """
        [bridge.selectors]
        a = { kind = "uds", path = "/run/a", retries = 3 }
        """,
        ["test.toml:2: bridge.selectors.a.retries: unknown key"],
    ),
    (
        "unknown-subtable-of-a-selector",
        """
        [bridge.selectors.a]
        kind = "file"
        path = "/run/a"
        [bridge.selectors.a.options]
        x = 1
        """,
        ["test.toml:4: bridge.selectors.a.options: unknown key"],
    ),
    (
        "keys-of-another-kind",
        """
        [bridge.selectors.f]
        kind = "file"
        path = "/run/f"
        destination = "org.example.F"
        [bridge.selectors.u]
        kind = "uds"
        path = "/run/u"
        bus = "system"
        max_calls_in_flight = 2
        """,
        [
            "test.toml:4: bridge.selectors.f.destination: unknown key",
            "test.toml:8: bridge.selectors.u.bus: unknown key",
            "test.toml:9: bridge.selectors.u.max_calls_in_flight: unknown key",
        ],
    ),
    # --- wrong types --------------------------------------------------------------------------
    (
        "service-wrong-types",
        """
        [service]
        port = "9598"
        address = 127
        tls = "false"
        scrape_timeout_offset = "1s"
        [bridge.selectors]
        ok = { kind = "file", path = "/run/ok" }
        """,
        [
            "test.toml:2: service.port: must be an integer, got string '9598'",
            "test.toml:3: service.address: must be a string, got integer 127",
            "test.toml:4: service.tls: must be a boolean, got string 'false'",
            "test.toml:5: service.scrape_timeout_offset: must be a number, got string '1s'",
        ],
    ),
    (
        "bool-is-not-an-integer",
        """
        [service]
        port = true
        [bridge.selectors]
        ok = { kind = "file", path = "/run/ok", max_bytes = false, timeout = true }
        """,
        [
            "test.toml:2: service.port: must be an integer, got boolean true",
            "test.toml:4: bridge.selectors.ok.max_bytes: must be an integer, got boolean false",
            "test.toml:4: bridge.selectors.ok.timeout: must be a number, got boolean true",
        ],
    ),
    (
        "float-is-not-an-integer",
        """
        [service]
        port = 9598.0
        [bridge.selectors.ok]
        kind = "file"
        path = "/run/ok"
        max_bytes = 1.5e6
        """,
        [
            "test.toml:2: service.port: must be an integer, got float 9598.0",
            "test.toml:6: bridge.selectors.ok.max_bytes: must be an integer, got float 1500000.0",
        ],
    ),
    (
        "selector-wrong-types",
        """
        [bridge.selectors.a]
        kind = 1
        path = "/run/a"
        [bridge.selectors.b]
        kind = "file"
        path = ["/run/b"]
        timeout = "5s"
        [bridge.selectors.c]
        kind = "dbus"
        bus = 1
        destination = { name = "org.example.C" }
        path = "/org/example/C"
        method = "org.example.C.Metrics"
        max_calls_in_flight = "2"
        """,
        [
            "test.toml:2: bridge.selectors.a.kind: must be a string, got integer 1",
            "test.toml:6: bridge.selectors.b.path: must be a string, got an array",
            "test.toml:7: bridge.selectors.b.timeout: must be a number, got string '5s'",
            "test.toml:10: bridge.selectors.c.bus: must be a string, got integer 1",
            "test.toml:11: bridge.selectors.c.destination: must be a string, got a table",
            "test.toml:14: bridge.selectors.c.max_calls_in_flight: must be an integer, got string '2'",
        ],
    ),
    (
        "dates-and-times-named-as-toml-names-them",
        """
        [service]
        port = 2024-01-31
        address = 12:00:00
        [bridge.selectors.a]
        kind = "file"
        path = 2024-01-31T12:00:00Z
        """,
        [
            "test.toml:2: service.port: must be an integer, got date 2024-01-31",
            "test.toml:3: service.address: must be a string, got time 12:00:00",
            "test.toml:6: bridge.selectors.a.path: must be a string, got date-time 2024-01-31T12:00:00+00:00",
        ],
    ),
    (
        "table-versus-scalar-at-the-top",
        """
        service = "127.0.0.1:9598"
        bridge = 1
        """,
        [
            "test.toml:1: service: must be a table, got string '127.0.0.1:9598'",
            # Not also "no selectors configured": the wrong `bridge` is the problem to fix.
            "test.toml:2: bridge: must be a table, got integer 1",
        ],
    ),
    (
        "selectors-not-a-table",
        """
        [bridge]
        selectors = ["a", "b"]
        """,
        ["test.toml:2: bridge.selectors: must be a table, got an array"],
    ),
    (
        "selector-not-a-table",
        """
        [bridge.selectors]
        a = "/run/a.sock"
        ok = { kind = "uds", path = "/run/ok.sock" }
        [[bridge.selectors.b]]
        kind = "file"
        path = "/run/b"
        """,
        [
            f"test.toml:2: bridge.selectors.a: {NOT_A_TABLE}",
            f"test.toml:4: bridge.selectors.b: {NOT_A_TABLE}",
        ],
    ),
    (
        "bus-address-not-a-string",
        """
        [bridge]
        dbus_session_bus_address = 0
        [bridge.selectors]
        ok = { kind = "file", path = "/run/ok" }
        """,
        ["test.toml:2: bridge.dbus_session_bus_address: must be a string, got integer 0"],
    ),
    # --- values out of range ----------------------------------------------------------------------
    (
        "service-out-of-range",
        """
        [service]
        port = 0
        scrape_timeout_offset = -0.1
        [bridge.selectors]
        ok = { kind = "file", path = "/run/ok" }
        """,
        [
            "test.toml:2: service.port: must be between 1 and 65535, got 0",
            "test.toml:3: service.scrape_timeout_offset: must be at least 0 and at most 60, got -0.1",
        ],
    ),
    (
        "service-above-range",
        """
        [service]
        port = 65536
        scrape_timeout_offset = 60.5
        [bridge.selectors]
        ok = { kind = "file", path = "/run/ok" }
        """,
        [
            "test.toml:2: service.port: must be between 1 and 65535, got 65536",
            "test.toml:3: service.scrape_timeout_offset: must be at least 0 and at most 60, got 60.5",
        ],
    ),
    (
        "selector-out-of-range",
        """
        [bridge.selectors]
        a = { kind = "file", path = "/run/a", timeout = 0, max_bytes = 0 }
        b = { kind = "file", path = "/run/b", timeout = -1, max_bytes = -1 }
        c = { kind = "file", path = "/run/c", timeout = 300.5, max_bytes = 1073741825 }
        d = { kind = "file", path = "/run/d", timeout = nan }
        e = { kind = "file", path = "/run/e", timeout = inf }
        """,
        [
            "test.toml:2: bridge.selectors.a.max_bytes: must be between 1 and 1073741824, got 0",
            "test.toml:2: bridge.selectors.a.timeout: must be greater than 0 and at most 300, got 0",
            "test.toml:3: bridge.selectors.b.max_bytes: must be between 1 and 1073741824, got -1",
            "test.toml:3: bridge.selectors.b.timeout: must be greater than 0 and at most 300, got -1",
            "test.toml:4: bridge.selectors.c.max_bytes: must be between 1 and 1073741824, got 1073741825",
            "test.toml:4: bridge.selectors.c.timeout: must be greater than 0 and at most 300, got 300.5",
            "test.toml:5: bridge.selectors.d.timeout: must be greater than 0 and at most 300, got nan",
            "test.toml:6: bridge.selectors.e.timeout: must be greater than 0 and at most 300, got inf",
        ],
    ),
    # --- service values -------------------------------------------------------------------------
    (
        "tls-true-and-empty-address",
        """
        [service]
        address = ""
        port = 9598
        tls = true
        [bridge.selectors]
        ok = { kind = "file", path = "/run/ok" }
        """,
        [
            "test.toml:2: service.address: must not be empty",
            f"test.toml:4: {TLS}",
        ],
    ),
    # --- kind and path --------------------------------------------------------------------------
    (
        "kind-missing-or-unknown",
        """
        [bridge.selectors.a]
        path = "/run/a"
        timeout = 0
        whatever = 1
        [bridge.selectors.b]
        kind = "tcp"
        path = "/run/b"
        """,
        [
            # Without a kind its keys cannot be checked: only generic values are, then the kind.
            "test.toml:1: bridge.selectors.a.kind: is required",
            "test.toml:3: bridge.selectors.a.timeout: must be greater than 0 and at most 300, got 0",
            f"test.toml:6: bridge.selectors.b.kind: {KINDS}, got 'tcp'",
        ],
    ),
    (
        "kind-is-case-sensitive",
        """
        [bridge.selectors]
        a = { kind = "File", path = "/run/a" }
        """,
        [f"test.toml:2: bridge.selectors.a.kind: {KINDS}, got 'File'"],
    ),
    (
        "path-missing-empty-or-relative",
        """
        [bridge.selectors]
        a = { kind = "file" }
        b = { kind = "uds", path = "" }
        c = { kind = "file", path = "run/c.prom" }
        d = { kind = "uds", path = "./d.sock" }
        """,
        [
            "test.toml:2: bridge.selectors.a.path: is required",
            "test.toml:3: bridge.selectors.b.path: must not be empty",
            "test.toml:4: bridge.selectors.c.path: must be an absolute path, got 'run/c.prom'",
            "test.toml:5: bridge.selectors.d.path: must be an absolute path, got './d.sock'",
        ],
    ),
    (
        "uds-path-too-long-for-a-socket",
        f"""
        [bridge.selectors]
        ok = {{ kind = "uds", path = "/{"s" * 106}" }}
        long = {{ kind = "uds", path = "/{"s" * 107}" }}
        file = {{ kind = "file", path = "/{"f" * 200}" }}
        """,
        ["test.toml:3: bridge.selectors.long.path: is 108 bytes long; Unix socket paths are limited to 107 bytes"],
    ),
    # --- selector names ---------------------------------------------------------------------------
    (
        "bad-selector-names",
        f"""
        [bridge.selectors]
        "with space" = {{ kind = "file", path = "/run/a" }}
        -leading-dash = {{ kind = "file", path = "/run/b" }}
        ".leading-dot" = {{ kind = "file", path = "/run/c" }}
        "{"x" * 65}" = {{ kind = "file", path = "/run/d" }}
        "" = {{ kind = "file", path = "/run/e" }}
        "zincatí" = {{ kind = "file", path = "/run/f" }}
        "new\\nline" = {{ kind = "file", path = "/run/g" }}
        "{"y" * 64}" = {{ kind = "file", path = "/run/ok" }}
        """,
        [
            f'test.toml:2: bridge.selectors."with space": {NAME_RULE}',
            f"test.toml:3: bridge.selectors.-leading-dash: {NAME_RULE}",
            f'test.toml:4: bridge.selectors.".leading-dot": {NAME_RULE}',
            f"test.toml:5: bridge.selectors.{'x' * 65}: {NAME_RULE}",
            f'test.toml:6: bridge.selectors."": {NAME_RULE}',
            f'test.toml:7: bridge.selectors."zincatí": {NAME_RULE}',
            # Escaped, so one problem is still one line.
            f'test.toml:8: bridge.selectors."new\\nline": {NAME_RULE}',
        ],
    ),
    (
        "bad-name-and-bad-content-both-reported",
        """
        [bridge.selectors."a b"]
        kind = "uds"
        path = "a.sock"
        """,
        [
            f'test.toml:1: bridge.selectors."a b": {NAME_RULE}',
            "test.toml:3: bridge.selectors.\"a b\".path: must be an absolute path, got 'a.sock'",
        ],
    ),
    (
        "selector-made-of-dotted-keys",
        """
        [bridge.selectors]
        ok.kind = "file"
        ok.path = "/run/ok"
        "a b".kind = "file"
        "a b".path = "/run/a"
        """,
        [f'test.toml:4: bridge.selectors."a b": {NAME_RULE}'],
    ),
    # --- duplicates -------------------------------------------------------------------------------
    (
        "duplicate-table-reported-with-other-problems",
        """
        [service]
        port = "9598"
        [bridge.selectors.x]
        kind = "file"
        path = "/run/x"
        [bridge.selectors.x]
        kind = "uds"
        path = "/run/x.sock"
        [bridge.selectors.y]
        kind = "file"
        path = "relative"
        """,
        [
            "test.toml:2: service.port: must be an integer, got string '9598'",
            "test.toml:6: bridge.selectors.x: selector defined twice (first at line 3)",
            "test.toml:11: bridge.selectors.y.path: must be an absolute path, got 'relative'",
        ],
    ),
    (
        "duplicate-inline-then-table",
        """
        [bridge.selectors]
        x = { kind = "file", path = "/run/x" }
        y = { kind = "nope", path = "/run/y" }
        [bridge.selectors.x]
        kind = "uds"
        path = "/run/x.sock"
        [service]
        tls = true
        """,
        [
            f"test.toml:3: bridge.selectors.y.kind: {KINDS}, got 'nope'",
            "test.toml:4: bridge.selectors.x: selector defined twice (first at line 2)",
            f"test.toml:8: {TLS}",
        ],
    ),
    (
        "duplicate-inline-twice-and-table-three-times",
        """
        [bridge.selectors]
        a = { kind = "file", path = "/run/a" }
        a = { kind = "file", path = "/run/a" }
        [bridge.selectors.b]
        kind = "file"
        path = "/run/b"
        [bridge.selectors.b]
        [bridge.selectors.b]
        """,
        [
            "test.toml:3: bridge.selectors.a: selector defined twice (first at line 2)",
            "test.toml:7: bridge.selectors.b: selector defined twice (first at line 4)",
            "test.toml:8: bridge.selectors.b: selector defined twice (first at line 4)",
        ],
    ),
    (
        "duplicate-quoted-and-bare-name",
        """
        [bridge.selectors.zincati]
        kind = "uds"
        path = "/run/zincati/public/metrics.promsock"
        [bridge.selectors."zincati"]
        kind = "uds"
        path = "/run/zincati/public/metrics.promsock"
        """,
        ["test.toml:4: bridge.selectors.zincati: selector defined twice (first at line 1)"],
    ),
    # --- no selectors -----------------------------------------------------------------------------
    ("empty-file", "", [f"test.toml: {NO_SELECTORS}"]),
    (
        "service-only",
        """
        [service]
        port = 9598
        """,
        [f"test.toml: {NO_SELECTORS}"],
    ),
    (
        "empty-selectors-table",
        """
        [service]
        port = 9598
        [bridge]
        [bridge.selectors]
        """,
        [f"test.toml:4: {NO_SELECTORS}"],
    ),
    # --- dbus ---------------------------------------------------------------------------------------
    (
        "dbus-bad-values",
        """
        [bridge.selectors.a]
        kind = "dbus"
        bus = "user"
        bus_address = ""
        destination = "1bad.name"
        path = "/org/example/"
        method = "PromMetrics"
        max_calls_in_flight = 8
        """,
        [
            "test.toml:3: bridge.selectors.a.bus: must be one of 'system', 'session', got 'user'",
            "test.toml:4: bridge.selectors.a.bus_address: must not be empty",
            "test.toml:5: bridge.selectors.a.destination: is not a valid DBus bus name: '1bad.name'",
            "test.toml:6: bridge.selectors.a.path: is not a valid DBus object path: '/org/example/'",
            f"test.toml:7: bridge.selectors.a.method: {METHOD}, got 'PromMetrics'",
            "test.toml:8: bridge.selectors.a.max_calls_in_flight: must be between 1 and 7, got 8",
        ],
    ),
    (
        "dbus-more-bad-values",
        """
        [bridge.selectors.b]
        kind = "dbus"
        destination = "org.example.B"
        path = "org/example/B"
        method = "org.example.B.1Metrics"
        max_calls_in_flight = 0
        [bridge.selectors.c]
        kind = "dbus"
        destination = "org.example.C"
        path = "/org/example/C"
        method = "org..C.Metrics"
        """,
        [
            "test.toml:4: bridge.selectors.b.path: is not a valid DBus object path: 'org/example/B'",
            f"test.toml:5: bridge.selectors.b.method: {METHOD}, got 'org.example.B.1Metrics'",
            "test.toml:6: bridge.selectors.b.max_calls_in_flight: must be between 1 and 7, got 0",
            f"test.toml:11: bridge.selectors.c.method: {METHOD}, got 'org..C.Metrics'",
        ],
    ),
    (
        "dbus-missing-keys",
        """
        [bridge.selectors]
        d = { kind = "dbus" }
        """,
        [
            "test.toml:2: bridge.selectors.d.destination: is required",
            "test.toml:2: bridge.selectors.d.method: is required",
            "test.toml:2: bridge.selectors.d.path: is required",
        ],
    ),
    (
        "empty-bridge-bus-addresses",
        """
        [bridge]
        dbus_system_bus_address = ""
        dbus_session_bus_address = "  "
        [bridge.selectors]
        ok = { kind = "file", path = "/run/ok" }
        """,
        [
            "test.toml:2: bridge.dbus_system_bus_address: must not be empty",
            "test.toml:3: bridge.dbus_session_bus_address: must not be empty",
        ],
    ),
    # --- line numbers where text could mislead a line scanner -------------------------------------
    (
        "lines-count-only-newlines",
        # U+2028 is a line separator to str.splitlines() but not to TOML.
        """
        # a comment with a \u2028 line separator in it
        [service]
        port = "x"
        [bridge.selectors]
        ok = { kind = "file", path = "/run/ok" }
        """,
        ["test.toml:3: service.port: must be an integer, got string 'x'"],
    ),
    (
        "commented-out-keys-do-not-count",
        """
        [service]
        # port = 1
        [bridge.selectors.a]  # the first selector
        # kind = "file"
        path = "/run/a"
        """,
        ["test.toml:3: bridge.selectors.a.kind: is required"],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [pytest.param(t, e, id=i) for i, t, e in BAD])
def test_bad_config_reports_exactly(text: str, expected: list[str]) -> None:
    assert problems_of(toml(text)) == expected


def test_config_error_message_is_all_problems() -> None:
    with pytest.raises(config.ConfigError) as info:
        config.parse('[service]\nport = "1"\ntls = true\n', "x.toml")
    assert str(info.value) == "\n".join(info.value.problems)
    assert len(info.value.problems) == 3


# --- files that load ----------------------------------------------------------------------------


def test_original_example_loads_unchanged() -> None:
    loaded = config.parse(ORIGINAL, "original.toml")
    assert loaded.service == config.ServiceConfig(address="127.0.0.1", port=9598, scrape_timeout_offset=0.5)
    assert loaded.selectors == (
        config.SelectorConfig(
            "daemon1",
            "file",
            limits.DEFAULT_TIMEOUT_SECONDS,
            limits.DEFAULT_MAX_BYTES,
            FileSettings(PurePosixPath("/run/daemon1/public/metrics.promfile")),
        ),
        config.SelectorConfig(
            "daemon2",
            "uds",
            limits.DEFAULT_TIMEOUT_SECONDS,
            limits.DEFAULT_MAX_BYTES,
            UdsSettings(PurePosixPath("/run/daemon2/public/metrics.promsock")),
        ),
        config.SelectorConfig(
            "daemon3",
            "dbus",
            limits.DEFAULT_TIMEOUT_SECONDS,
            limits.DEFAULT_MAX_BYTES,
            DBusSettings(
                bus="system",
                # From [bridge] dbus_system_bus_address: the selector has no address of its own.
                address="unix:path=/host/run/dbus/system_bus_socket",
                destination="com.github.lucab.Prombus",
                path="/com/github/lucab/Prombus",
                interface="com.github.lucab.Prombus.Observable",
                member="PromMetrics",
                max_calls_in_flight=DEFAULT_MAX_CALLS_IN_FLIGHT,
            ),
        ),
    )
    assert loaded.selector("daemon2") is loaded.selectors[1]
    assert loaded.selector("daemon4") is None


def test_defaults() -> None:
    loaded = config.parse('[bridge.selectors]\nz = { kind = "uds", path = "/run/z.sock" }\n')
    assert loaded.service == config.ServiceConfig()
    assert (loaded.service.address, loaded.service.port, loaded.service.scrape_timeout_offset) == ("0.0.0.0", 9598, 0.5)
    (selector,) = loaded.selectors
    assert (selector.timeout, selector.max_bytes) == (5.0, 8 * 1024 * 1024)


def test_dbus_defaults_without_bridge_address() -> None:
    loaded = config.parse(
        toml(
            """
            [bridge.selectors.p]
            kind = "dbus"
            destination = "com.github.lucab.Prombus"
            path = "/com/github/lucab/Prombus"
            method = "com.github.lucab.Prombus.Observable.PromMetrics"
            """
        )
    )
    source = loaded.selectors[0].source
    assert isinstance(source, DBusSettings)
    # "" = dbus-next resolves the bus: DBUS_SYSTEM_BUS_ADDRESS, else the well-known socket.
    assert (source.bus, source.address, source.max_calls_in_flight) == ("system", "", 1)


def test_every_optional_key_is_read() -> None:
    loaded = config.parse(
        toml(
            """
            [service]
            address = "::1"
            port = 19598
            tls = false
            scrape_timeout_offset = 1
            [bridge]
            dbus_system_bus_address = "unix:path=/host/system"
            dbus_session_bus_address = "unix:path=/run/user/1000/bus"
            [bridge.selectors.f]
            kind = "file"
            path = "/run/f.prom"
            timeout = 2
            max_bytes = 1024
            [bridge.selectors.s]
            kind = "dbus"
            bus = "session"
            destination = "org.example.S"
            path = "/"
            method = "org.example.S.Metrics"
            timeout = 0.25
            max_calls_in_flight = 7
            [bridge.selectors.own]
            kind = "dbus"
            bus_address = "unix:path=/run/other/bus"
            destination = ":1.42"
            path = "/org/example/Own"
            method = "org.example.Own.Metrics"
            max_bytes = 1073741824
            timeout = 300
            """
        )
    )
    assert loaded.service == config.ServiceConfig(address="::1", port=19598, scrape_timeout_offset=1.0)
    assert isinstance(loaded.service.scrape_timeout_offset, float)
    f, own, s = loaded.selectors  # sorted by name
    assert (f.name, f.timeout, f.max_bytes) == ("f", 2.0, 1024)
    assert isinstance(f.timeout, float)
    assert (s.timeout, s.max_bytes) == (0.25, limits.DEFAULT_MAX_BYTES)
    assert s.source == DBusSettings(
        "session", "unix:path=/run/user/1000/bus", "org.example.S", "/", "org.example.S", "Metrics", 7
    )
    # A selector's own bus_address wins over the [bridge] address of its bus.
    assert (own.timeout, own.max_bytes) == (300.0, limits.MAX_MAX_BYTES)
    assert own.source == DBusSettings(
        "system",
        "unix:path=/run/other/bus",
        ":1.42",
        "/org/example/Own",
        "org.example.Own",
        "Metrics",
        DEFAULT_MAX_CALLS_IN_FLIGHT,
    )


def test_selector_names_and_order() -> None:
    names = ["zincati", "a.b-c_d", "0", "_x", "y" * 64, "Daemon1"]
    text = "[bridge.selectors]\n" + "".join(
        f'"{n}" = {{ kind = "file", path = "/run/{i}" }}\n' for i, n in enumerate(names)
    )
    assert [s.name for s in config.parse(text).selectors] == sorted(names)


def test_crlf_and_byte_order_mark() -> None:
    text = '\ufeff[service]\r\nport = 9599\r\n[bridge.selectors]\r\nz = { kind = "uds", path = "/run/z" }\r\n'
    assert config.parse(text).service.port == 9599
    bad = '\ufeff[service]\r\nport = true\r\n[bridge.selectors]\r\nz = { kind = "uds", path = "/run/z" }\r\n'
    assert problems_of(bad) == ["test.toml:2: service.port: must be an integer, got boolean true"]


# --- config.load ------------------------------------------------------------------------------


def test_load_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(ORIGINAL)
    assert config.load(path) == config.parse(ORIGINAL)


def test_load_names_the_file_in_problems(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[service]\nport = -1\n[bridge.selectors]\na = { kind = 'file', path = '/a' }\n")
    with pytest.raises(config.ConfigError) as info:
        config.load(path)
    assert info.value.problems == [f"{path}:2: service.port: must be between 1 and 65535, got -1"]


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        pytest.param("missing.toml", None, "cannot read config: No such file or directory", id="missing"),
        pytest.param("directory", "dir", "cannot read config: Is a directory", id="directory"),
        pytest.param(
            "latin1.toml", b'[service]\naddress = "caf\xe9"\n', "config is not UTF-8 text (byte 24)", id="utf8"
        ),
    ],
)
def test_load_unreadable(tmp_path: Path, name: str, make: bytes | str | None, message: str) -> None:
    path = tmp_path / name
    if make == "dir":
        path.mkdir()
    elif isinstance(make, bytes):
        path.write_bytes(make)
    with pytest.raises(config.ConfigError) as info:
        config.load(path)
    assert info.value.problems == [f"{path}: {message}"]


# --- local-exporter check-config, as a real process ------------------------------------------------


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-m", "local_exporter", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


GOOD_FILE = ORIGINAL
BAD_FILE = """\
[service]
port = "9598"
tls = true
[bridge.selectors]
zincati = { kind = "uds", path = "run/zincati/public/metrics.promsock" }
prombus = { kind = "dbus", destination = "com.github.lucab.Prombus", path = "/", method = "PromMetrics" }
"""
BAD_FILE_STDERR = [
    "bad.toml:2: service.port: must be an integer, got string '9598'",
    f"bad.toml:3: {TLS}",
    "bad.toml:5: bridge.selectors.zincati.path: must be an absolute path, got 'run/zincati/public/metrics.promsock'",
    f"bad.toml:6: bridge.selectors.prombus.method: {METHOD}, got 'PromMetrics'",
    "bad.toml: 4 problem(s); not usable",
]


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["check-config", "{}"], id="positional"),
        pytest.param(["-c", "{}", "check-config"], id="config-before-command"),
        pytest.param(["check-config", "-c", "{}"], id="config-after-command"),
        pytest.param(["--config", "{}", "check-config"], id="long-option"),
    ],
)
def test_check_config_good(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "good.toml").write_text(GOOD_FILE)
    result = run_cli(*(a.format("good.toml") for a in args), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "good.toml: OK, 3 selector(s): daemon1, daemon2, daemon3\n"
    assert result.stderr == ""


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["check-config", "{}"], id="positional"),
        pytest.param(["-c", "{}", "check-config"], id="config-before-command"),
        pytest.param(["check-config", "-c", "{}"], id="config-after-command"),
    ],
)
def test_check_config_bad(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "bad.toml").write_text(BAD_FILE)
    result = run_cli(*(a.format("bad.toml") for a in args), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == BAD_FILE_STDERR


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        pytest.param("missing.toml", "cannot read config: No such file or directory", id="missing"),
        pytest.param(".", "cannot read config: Is a directory", id="directory"),
        pytest.param("latin1.toml", "config is not UTF-8 text (byte 0)", id="not-utf8"),
        pytest.param(
            "syntax.toml",
            "invalid TOML: Expected '=' after a key in a key/value pair (at line 1, column 6)",
            id="syntax",
        ),
    ],
)
def test_check_config_unusable_file_no_traceback(tmp_path: Path, target: str, reason: str) -> None:
    (tmp_path / "latin1.toml").write_bytes(b"\xe9t\xe9 = 1\n")
    (tmp_path / "syntax.toml").write_text("this is not toml\n")
    result = run_cli("check-config", target, cwd=tmp_path)
    where = f"{target}:1" if target == "syntax.toml" else target
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"{where}: {reason}", f"{target}: 1 problem(s); not usable"]
    assert "Traceback" not in result.stdout + result.stderr
