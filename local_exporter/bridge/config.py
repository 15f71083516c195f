"""The TOML config -> frozen dataclasses, parsed once and strictly.

The original Go local_exporter's files load unchanged. Every problem (TOML syntax, unknown
key, wrong type, bad value, duplicate selector) is collected with its dotted location and
line, and `ConfigError` carries all of them at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from local_exporter.bridge import limits
from local_exporter.bridge.labels import LABEL_NAME
from local_exporter.bridge.sources import KINDS, BusAddresses, ParseContext, SourceLimits, SourceSettings
from local_exporter.common.fields import Problems, ProblemsError, Table, file_text, toml_tables
from local_exporter.common.toml_lines import blank_lines, scan

DEFAULT_CONFIG_PATH = Path("/etc/local_exporter/config.toml")
SELECTORS_TABLE = ("bridge", "selectors")
# Selector names become URL parameters and metric label values: keep them plain.
SELECTOR_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class ServiceConfig:
    # The original's defaults, except TLS: it defaulted to tls = true and then refused to start.
    address: str = "0.0.0.0"
    port: int = 9598
    scrape_timeout_offset: float = limits.DEFAULT_SCRAPE_TIMEOUT_OFFSET
    max_in_flight: int = limits.DEFAULT_MAX_IN_FLIGHT
    header_timeout: float = limits.DEFAULT_HEADER_TIMEOUT_SECONDS
    idle_timeout: float = limits.DEFAULT_IDLE_TIMEOUT_SECONDS
    max_connections: int = limits.DEFAULT_MAX_CONNECTIONS
    max_answer_bytes: int = limits.DEFAULT_MAX_ANSWER_BYTES
    write_timeout: float = limits.DEFAULT_WRITE_TIMEOUT_SECONDS
    listen_backlog: int = limits.DEFAULT_LISTEN_BACKLOG


@dataclass(frozen=True)
class SelectorConfig:
    name: str
    kind: str
    timeout: float
    max_bytes: int
    source: SourceSettings
    #: Concurrent scrapes share one source read (no caching: a scrape after it ends reads anew).
    coalesce: bool = True
    max_concurrency: int = limits.DEFAULT_MAX_CONCURRENCY
    #: Labels added to every sample that does not carry them already (labels.py).
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def source_limits(self) -> SourceLimits:
        return SourceLimits(max_bytes=self.max_bytes)

    @property
    def source_fields(self) -> tuple[SourceSettings, SourceLimits]:
        """What opening the source reads: only a change here makes a reload reopen it."""
        return self.source, self.source_limits


@dataclass(frozen=True)
class Config:
    service: ServiceConfig
    selectors: tuple[SelectorConfig, ...]

    def selector(self, name: str) -> SelectorConfig | None:
        return next((s for s in self.selectors if s.name == name), None)


class ConfigError(ProblemsError):
    """The config cannot be used; `problems` holds one rendered line per problem."""


def load(path: Path) -> Config:
    return parse(file_text(path, "config", ConfigError), str(path))


def parse(text: str, filename: str = "<config>") -> Config:
    # TOML allows a leading UTF-8 byte order mark (Windows editors write one); tomllib does not.
    text = text.removeprefix("\ufeff")
    problems = Problems(key_lines=scan(text, SELECTORS_TABLE))
    duplicates = problems.key_lines.duplicates
    for name, first, span in duplicates:
        problems.add((*SELECTORS_TABLE, name), f"selector defined twice (first at line {first})", line=span.start)
    # Dropping the second definition of a duplicated selector lets tomllib read the rest, so
    # the duplicate is reported together with everything else.
    raw = toml_tables(blank_lines(text, [span for _, _, span in duplicates]) if duplicates else text, problems)
    if raw is None:
        raise ConfigError([p.render(filename) for p in problems.sorted()])
    config = _read(Table(raw, (), problems))
    if problems or config is None:
        raise ConfigError([p.render(filename) for p in problems.sorted()])
    return config


def _read(top: Table) -> Config | None:
    service = _read_service(top.table("service"))
    bridge = top.table("bridge")
    context = ParseContext(
        buses=BusAddresses(
            system=_bus_address(bridge, "dbus_system_bus_address"),
            session=_bus_address(bridge, "dbus_session_bus_address"),
        )
    )
    selectors = _read_selectors(bridge.table("selectors"), context, top.problems)
    bridge.finish()
    top.finish()
    return Config(service, selectors)


def _read_service(table: Table) -> ServiceConfig:
    defaults = ServiceConfig()
    address = table.string("address", defaults.address)
    if address == "":
        table.problem("address", "must not be empty")
    if table.boolean("tls", False):
        table.problem(
            "tls", "TLS is set in the web config file (serve --web.config.file): set tls = false or remove it"
        )
    config = ServiceConfig(
        address=address or defaults.address,
        port=table.integer("port", defaults.port, low=1, high=65535),
        scrape_timeout_offset=table.number(
            "scrape_timeout_offset", defaults.scrape_timeout_offset, low=0, high=60, zero_ok=True
        ),
        max_in_flight=table.integer("max_in_flight", defaults.max_in_flight, low=1, high=limits.MAX_MAX_IN_FLIGHT),
        header_timeout=table.number(
            "header_timeout", defaults.header_timeout, low=0, high=limits.MAX_CONNECTION_TIMEOUT_SECONDS
        ),
        idle_timeout=table.number(
            "idle_timeout", defaults.idle_timeout, low=0, high=limits.MAX_CONNECTION_TIMEOUT_SECONDS
        ),
        max_connections=table.integer(
            "max_connections", defaults.max_connections, low=1, high=limits.MAX_MAX_CONNECTIONS
        ),
        listen_backlog=table.integer("listen_backlog", defaults.listen_backlog, low=1, high=limits.MAX_LISTEN_BACKLOG),
        max_answer_bytes=table.integer(
            "max_answer_bytes", defaults.max_answer_bytes, low=1024, high=limits.MAX_MAX_ANSWER_BYTES
        ),
        write_timeout=table.number(
            "write_timeout", defaults.write_timeout, low=0, high=limits.MAX_CONNECTION_TIMEOUT_SECONDS
        ),
    )
    table.finish()
    return config


def _bus_address(bridge: Table, key: str) -> str:
    address = bridge.string(key)
    # None: absent, or not a string (already reported).
    if address is not None and not address.strip():
        bridge.problem(key, "must not be empty")
    return address or ""


def _read_selectors(table: Table, context: ParseContext, problems: Problems) -> tuple[SelectorConfig, ...]:
    # Unless `bridge` or `bridge.selectors` is already reported as not a table: that is the problem.
    wrong_type = any(p.location and SELECTORS_TABLE[: len(p.location)] == p.location for p in problems.items)
    if not table.raw and not wrong_type:
        problems.add(SELECTORS_TABLE, "no selectors configured: add at least one [bridge.selectors.NAME] table")
    selectors = []
    for name, raw in table.subtables():
        if not SELECTOR_NAME.match(name):
            table.problem(
                name, "selector names are 1-64 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
            )
        if not isinstance(raw, dict):
            table.problem(name, "must be a table with at least `kind` and `path`")
            continue
        selector = _read_selector(name, Table(raw, table.at(name), problems), context)
        if selector is not None and SELECTOR_NAME.match(name):
            selectors.append(selector)
    return tuple(sorted(selectors, key=lambda s: s.name))


def _read_selector(name: str, table: Table, context: ParseContext) -> SelectorConfig | None:
    kind = table.choice("kind", tuple(KINDS))
    timeout = table.number("timeout", limits.DEFAULT_TIMEOUT_SECONDS, low=0, high=limits.MAX_TIMEOUT_SECONDS)
    max_bytes = table.integer("max_bytes", limits.DEFAULT_MAX_BYTES, low=1, high=limits.MAX_MAX_BYTES)
    coalesce = table.boolean("coalesce", True)
    labels = _read_labels(table.table("labels"))
    concurrency = table.integer(
        "max_concurrency", limits.DEFAULT_MAX_CONCURRENCY, low=1, high=limits.MAX_MAX_CONCURRENCY
    )
    if kind is None:
        # Without a kind we cannot tell which keys belong: report only the kind.
        return None
    source = KINDS[kind].parse(table, context)
    table.finish()
    if source is None:
        return None
    return SelectorConfig(name, kind, timeout, max_bytes, source, coalesce, concurrency, labels)


def _read_labels(table: Table) -> tuple[tuple[str, str], ...]:
    pairs = []
    for name, value in table.subtables():
        if not LABEL_NAME.match(name) or name.startswith("__"):
            table.problem(name, "is not a label name: letters, digits and '_', not starting with a digit or '__'")
        elif not isinstance(value, str):
            table.problem(name, "must be a string (a label value)")
        else:
            pairs.append((name, value))
    return tuple(sorted(pairs))
