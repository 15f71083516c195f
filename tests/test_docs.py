"""docs/configuration.md stays true to the loader, learnt from the code rather than a second list.

Which keys the loader accepts is observed, not restated: `tomllib.loads` is wrapped so every
parsed table records each key the loader looks up (the loader asks every table for each key it
knows, present or not). The key tables of the doc must list exactly those keys. Independently,
each documented key is probed through `config.parse` and its real messages: accepted where
documented and an "unknown key" elsewhere, refused with the documented type when given a value
of another type, and given its documented default, the same config as without it.

The doc's files are checked too: every complete config block loads, and every
`check-config` transcript is what the command really prints for that file.
"""

from __future__ import annotations

import json
import re
import textwrap
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from local_exporter.bridge import config
from local_exporter.bridge.sources import KINDS
from tests.bridge.test_config import ORIGINAL, run_cli
from tests.conftest import ROOT

DOC = (ROOT / "docs/configuration.md").read_text()
SERVICE = "`[service]`"
BRIDGE = "`[bridge]`"
COMMON = "Keys of every selector"
SELECTORS = ("bridge", "selectors")
FILE_NAME = re.compile(r"^# ([\w.-]+\.toml)$")


def kind_section(kind: str) -> str:
    return f'`kind = "{kind}"`'


# --- reading the doc ------------------------------------------------------------------------


@dataclass
class Section:
    body: list[str] = field(default_factory=list)
    blocks: list[tuple[str, str]] = field(default_factory=list)  # (language, text)


def parse_doc(text: str) -> dict[str, Section]:
    """Heading text -> its lines and fenced blocks, up to the next heading of any level."""
    sections: dict[str, Section] = {"": Section()}
    current = sections[""]
    fence: tuple[str, list[str]] | None = None
    for line in text.splitlines():
        if fence is not None:
            if line.startswith("```"):
                current.blocks.append((fence[0], "".join(f"{x}\n" for x in fence[1])))
                fence = None
            else:
                fence[1].append(line)
        elif line.startswith("```"):
            fence = (line[3:].strip(), [])
        elif heading := re.match(r"^#{1,6} (.+)$", line):
            assert heading.group(1) not in sections, f"heading {heading.group(1)!r} twice"
            current = sections[heading.group(1)] = Section()
        else:
            current.body.append(line)
    assert fence is None, "unclosed code block"
    return sections


SECTIONS = parse_doc(DOC)
BLOCKS = [block for section in SECTIONS.values() for block in section.blocks]


@dataclass(frozen=True)
class Row:
    key: str
    type: str
    default: str


def key_table(heading: str) -> dict[str, Row]:
    assert heading in SECTIONS, f"docs/configuration.md has no section {heading!r}"
    rows = {}
    for line in SECTIONS[heading].body:
        if row := re.match(r"^\| `(\w+)` \| (\w+) \| ([^|]+) \|", line):
            rows[row.group(1)] = Row(row.group(1), row.group(2), row.group(3).strip())
    assert rows, f"section {heading!r} has no key table"
    return rows


def documented(heading: str) -> set[str]:
    return set(key_table(heading))


def selector_keys(kind: str) -> dict[str, Row]:
    return key_table(COMMON) | key_table(kind_section(kind))


def kind_example(kind: str) -> tuple[str, dict[str, Any]]:
    """The first toml block of the kind's section: one selector of that kind, as (name, table)."""
    blocks = [text for language, text in SECTIONS[kind_section(kind)].blocks if language == "toml"]
    assert blocks, f"the {kind} section has no toml example"
    selectors = tomllib.loads(blocks[0])["bridge"]["selectors"]
    ((name, table),) = selectors.items()
    assert table["kind"] == kind
    return name, table


# --- building configs to probe the loader with ---------------------------------------------------


def literal(value: Any) -> str:
    """A TOML literal for the simple values selector tables hold (a JSON string is a TOML one)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float | str):
        return json.dumps(value)
    raise TypeError(value)


def selector_toml(name: str, table: dict[str, str]) -> str:
    """`table` maps keys to TOML literals."""
    return f"[bridge.selectors.{name}]\n" + "".join(f"{key} = {value}\n" for key, value in table.items())


def example_literals(kind: str) -> tuple[str, dict[str, str]]:
    name, table = kind_example(kind)
    return name, {key: literal(value) for key, value in table.items()}


def probe(heading: str, key: str, value: str | None, kind: str = "file") -> tuple[list[str], str]:
    """Problems of a config where `key` of `heading`'s table is `value` (None: `key` removed), and
    the dotted location of `key`. Selector keys are set on the kind's example selector."""
    name, selector = example_literals(kind)
    if heading in (SERVICE, BRIDGE):
        table = heading.strip("`[]")
        location = f"{table}.{key}"
        text = f"[{table}]\n" + ("" if value is None else f"{key} = {value}\n")
        if (table, key) != SELECTORS:
            text += selector_toml(name, selector)
    else:
        location = f"bridge.selectors.{name}.{key}"
        selector.pop(key, None)
        if value is not None:
            selector[key] = value
        text = selector_toml(name, selector)
    try:
        config.parse(text, "probe.toml")
    except config.ConfigError as exc:
        return exc.problems, location
    return [], location


def loaded(text: str) -> config.Config:
    return config.parse(text, "probe.toml")


# --- observing which keys the loader reads ---------------------------------------------------------


class Recording(dict[str, Any]):
    """A parsed TOML table that notes every key the loader asks it about."""

    def __init__(self, data: dict[str, Any], path: tuple[str, ...], asked: dict[tuple[str, ...], set[str]]) -> None:
        super().__init__(
            {
                key: Recording(value, (*path, key), asked) if isinstance(value, dict) else value
                for key, value in data.items()
            }
        )
        self.path = path
        self.asked = asked
        asked.setdefault(path, set())

    def __contains__(self, key: object) -> bool:
        self.asked[self.path].add(str(key))
        return super().__contains__(key)

    def __getitem__(self, key: str) -> Any:
        self.asked[self.path].add(key)
        return super().__getitem__(key)


def keys_read(text: str, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[tuple[str, ...], set[str]], list[str]]:
    """Table path -> every key the loader looked up in it while loading `text`; and the problems."""
    asked: dict[tuple[str, ...], set[str]] = {}
    real_loads = tomllib.loads

    def recording_loads(s: str, /, **kwargs: Any) -> dict[str, Any]:
        return Recording(real_loads(s, **kwargs), (), asked)

    with monkeypatch.context() as patch:
        patch.setattr(tomllib, "loads", recording_loads)
        try:
            loaded(text)
        except config.ConfigError as exc:
            return asked, exc.problems
    return asked, []


def every_kind_config() -> str:
    """[service], [bridge] and one selector of every kind: every table the loader reads.

    Each table holds a key: the loader treats an empty table like a missing one.
    """
    tables = '[service]\nport = 9598\n[bridge]\ndbus_system_bus_address = "unix:path=/x"\n'
    return tables + "".join(selector_toml(*example_literals(kind)) for kind in KINDS)


# --- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_has_a_section_with_keys_and_an_example(kind: str) -> None:
    assert key_table(kind_section(kind))
    kind_example(kind)


def test_no_section_for_a_kind_that_does_not_exist() -> None:
    kinds = {m.group(1) for heading in SECTIONS if (m := re.fullmatch(r'`kind = "(\w+)"`', heading))}
    assert kinds == set(KINDS)


def test_documented_keys_are_exactly_the_keys_the_loader_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    asked, problems = keys_read(every_kind_config(), monkeypatch)
    # A config that loads: every reader ran to its end.
    assert problems == []
    # Top-level tables: each has its own section.
    assert asked[()] == {"service", "bridge"}
    for table in asked[()]:
        assert f"`[{table}]`" in SECTIONS
    assert asked[("service",)] == documented(SERVICE)
    assert asked[("bridge",)] == documented(BRIDGE)
    for kind in KINDS:
        name, _ = kind_example(kind)
        assert asked[(*SELECTORS, name)] == set(selector_keys(kind)), kind


def test_recording_sees_lookups_not_the_files_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    # A key the loader does not know is in the file but never asked for: reported, not recorded.
    asked, problems = keys_read(every_kind_config().replace("port = 9598\n", "port = 9598\ncolour = 1\n"), monkeypatch)
    assert problems == ["probe.toml:3: service.colour: unknown key"]
    assert asked[("service",)] == documented(SERVICE)


@pytest.mark.parametrize("heading", [SERVICE, BRIDGE])
def test_documented_table_keys_are_accepted(heading: str) -> None:
    for key in documented(heading):
        problems, location = probe(heading, key, "true")
        assert f"{location}: unknown key" not in " ".join(problems), problems
    problems, location = probe(heading, "surely_not_a_key", "true")
    assert any(p.endswith(f"{location}: unknown key") for p in problems), problems


@pytest.mark.parametrize("kind", list(KINDS))
def test_selector_keys_are_accepted_exactly_for_their_kind(kind: str) -> None:
    every_selector_key = set().union(*(selector_keys(k) for k in KINDS)) | {"surely_not_a_key"}
    for key in sorted(every_selector_key):
        problems, location = probe(COMMON, key, "true", kind)
        # os_update refuses the keys of its other agent by name (`applies to agent = ... only`).
        unknown = any(p.endswith(f"{location}: unknown key") or f"{location}: applies to agent" in p for p in problems)
        assert unknown == (key not in selector_keys(kind)), (key, problems)


def all_rows() -> Iterator[tuple[str, str, Row]]:
    for heading in (SERVICE, BRIDGE):
        for row in key_table(heading).values():
            yield heading, "file", row
    for kind in KINDS:
        for row in selector_keys(kind).values():
            yield COMMON, kind, row


ROWS = [pytest.param(h, k, r, id=f"{k if h == COMMON else h.strip('`[]')}.{r.key}") for h, k, r in all_rows()]
WRONG_VALUE = {"integer": '"1"', "number": '"1"', "string": "1", "boolean": "1", "table": "1", "array": '"1"'}


@pytest.mark.parametrize(("heading", "kind", "row"), ROWS)
def test_documented_type_is_enforced(heading: str, kind: str, row: Row) -> None:
    problems, location = probe(heading, row.key, WRONG_VALUE[row.type], kind)
    article = "an" if row.type[0] in "aeiou" else "a"
    # An array says what of: "must be an array of strings, got ...".
    assert any(
        re.search(f"{re.escape(location)}: must be {article} {row.type}( of \\w+)?, got", p) for p in problems
    ), problems


@pytest.mark.parametrize(("heading", "kind", "row"), ROWS)
def test_documented_default_is_the_default(heading: str, kind: str, row: Row) -> None:
    if row.default == "required":
        problems, location = probe(heading, row.key, None, kind)
        assert any(p.endswith(f"{location}: is required") for p in problems), problems
        return
    value = re.fullmatch(r"`(.+)`", row.default)
    if value is None:
        assert row.default in ("unset", "—"), f"{row.key}: default {row.default!r} is neither a literal nor unset"
        return
    name, selector = example_literals(kind)
    if heading in (SERVICE, BRIDGE):
        base = selector_toml(name, selector)
        table = heading.strip("`[]")
        assert loaded(f"[{table}]\n{row.key} = {value.group(1)}\n" + base) == loaded(base)
    else:
        selector.pop(row.key, None)
        without = loaded(selector_toml(name, selector))
        assert loaded(selector_toml(name, selector | {row.key: value.group(1)})) == without


@pytest.mark.parametrize("block", re.findall(r"```toml\n(.*?)```", (ROOT / "docs/deploy.md").read_text(), re.S))
def test_every_config_in_the_deploy_guide_loads(block: str) -> None:
    """docs/deploy.md's configs (indented ones in lists included) are configs the bridge loads."""
    parsed = config.parse(textwrap.dedent(block), "deploy.md")
    assert parsed.selectors


def test_original_example_is_in_the_doc() -> None:
    assert f"```toml\n{ORIGINAL}```" in DOC


def named_files() -> dict[str, str]:
    files = {}
    for language, text in BLOCKS:
        if language == "toml" and (name := FILE_NAME.match(text.split("\n", 1)[0])):
            assert name.group(1) not in files, f"two files named {name.group(1)}"
            files[name.group(1)] = text
    return files


def transcripts() -> dict[str, list[str]]:
    """`$ local-exporter check-config FILE` console blocks for the doc's named files."""
    found = {}
    for language, text in BLOCKS:
        command, *output = text.splitlines()
        name = command.removeprefix("$ local-exporter check-config ")
        if language == "console" and name in named_files():
            found[name] = output
    return found


def complete_configs() -> list[str]:
    """Blocks that start like a config file, and named files, except deliberately bad ones."""
    bad = {name for name, output in transcripts().items() if output[-1].endswith("not usable")}
    configs = []
    for language, text in BLOCKS:
        name = FILE_NAME.match(text.split("\n")[0])
        if language == "toml" and (text.startswith(("[service]", "[bridge")) or name) and not (name and name[1] in bad):
            configs.append(text)
    return configs


def test_the_doc_has_what_these_tests_read() -> None:
    assert {"bad.toml", "zincati.toml", "prombus.toml"} <= set(transcripts())
    assert transcripts()["bad.toml"][-1].endswith("not usable")
    assert len(complete_configs()) >= 8


@pytest.mark.parametrize("text", [pytest.param(t, id=t.split("\n")[0]) for t in complete_configs()])
def test_complete_config_blocks_load(text: str) -> None:
    assert config.parse(text, "doc.toml").selectors


@pytest.mark.parametrize("name", sorted(transcripts()))
def test_check_config_transcript_is_real(name: str, tmp_path: Path) -> None:
    (tmp_path / name).write_text(named_files()[name])
    result = run_cli("check-config", name, cwd=tmp_path)
    expected = transcripts()[name]
    assert (result.stdout + result.stderr).splitlines() == expected
    assert result.returncode == (0 if expected[-1].startswith(f"{name}: OK") else 1)
    assert "Traceback" not in result.stderr
