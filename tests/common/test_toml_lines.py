"""The line locator: where each TOML key is written, and which selectors are defined twice."""

from __future__ import annotations

import textwrap
import tomllib

import pytest

from local_exporter.common.toml_lines import KeyLines, blank_lines, scan, split_key

SELECTORS = ("bridge", "selectors")


def lines_of(text: str) -> dict[tuple[str, ...], int]:
    return scan(textwrap.dedent(text).lstrip("\n"), SELECTORS).lines


@pytest.mark.parametrize(
    ("dotted", "parts"),
    [
        ("a", ("a",)),
        ("a.b.c", ("a", "b", "c")),
        ("a . b", ("a", "b")),
        ('"a.b".c', ("a.b", "c")),
        ("'a.b'.c", ("a.b", "c")),
        ('bridge.selectors."with space"', ("bridge", "selectors", "with space")),
        ('"a\\"b"', ('a"b',)),
        ('"new\\nline"', ("new\nline",)),
        ('"\\u0041"', ("A",)),
        # A literal string has no escapes.
        ("'a\\nb'", ("a\\nb",)),
        ('""', ("",)),
    ],
)
def test_split_key(dotted: str, parts: tuple[str, ...]) -> None:
    assert split_key(dotted) == parts


def test_headers_and_keys() -> None:
    found = lines_of(
        """
        top = 1
        [service]
        port = 9598
        [bridge]
        dbus_system_bus_address = "unix:path=/x"
        [bridge.selectors.daemon3]
        kind = "dbus"
        """
    )
    assert found == {
        ("top",): 1,
        ("service",): 2,
        ("service", "port"): 3,
        ("bridge",): 4,
        ("bridge", "dbus_system_bus_address"): 5,
        # A header also places the tables it creates on the way, if not placed before.
        ("bridge", "selectors"): 6,
        ("bridge", "selectors", "daemon3"): 6,
        ("bridge", "selectors", "daemon3", "kind"): 7,
    }


def test_quoted_and_dotted_keys() -> None:
    found = lines_of(
        """
        [ bridge . "selectors" ]
        "daemon1" = { kind = "file" }
        'a.b' = { kind = "uds" }
        c.kind = "file"
        [bridge.selectors."with space"]
        "kind" = "file"
        """
    )
    assert found[("bridge", "selectors")] == 1
    assert found[("bridge", "selectors", "daemon1")] == 2
    assert found[("bridge", "selectors", "a.b")] == 3
    assert found[("bridge", "selectors", "c", "kind")] == 4
    # The dotted key creates selector `c` on its line.
    assert found[("bridge", "selectors", "c")] == 4
    assert found[("bridge", "selectors", "with space")] == 5
    assert found[("bridge", "selectors", "with space", "kind")] == 6


def test_inline_table_keys_are_on_its_line() -> None:
    found = lines_of(
        """
        [bridge.selectors]

        z = { kind = "uds", path = "/run/z", "quoted key" = 1, dotted.key = 2 }
        """
    )
    for key in ("kind", "path", "quoted key", "dotted"):
        assert found[("bridge", "selectors", "z", key)] == 3, key
    assert found[("bridge", "selectors", "z", "dotted", "key")] == 3


def test_comments_and_blank_lines() -> None:
    found = lines_of(
        """
        # [service]
        # port = 1

        [service]  # the service
           port = 2  # indented, with a comment
        """
    )
    assert found == {("service",): 4, ("service", "port"): 5}


def test_first_occurrence_wins() -> None:
    # A key written twice is tomllib's error to report; the locator keeps the first line.
    assert lines_of("a = 1\na = 2\n")[("a",)] == 1


def test_nested_headers_and_arrays_of_tables() -> None:
    found = lines_of(
        """
        [bridge.selectors.a]
        kind = "file"
        [bridge.selectors.a.options]
        x = 1
        [[bridge.selectors.b]]
        kind = "file"
        """
    )
    assert found[("bridge", "selectors", "a", "options")] == 3
    assert found[("bridge", "selectors", "a", "options", "x")] == 4
    assert found[("bridge", "selectors", "b")] == 5
    assert found[("bridge", "selectors", "b", "kind")] == 6


def test_crlf_and_unicode_line_separators() -> None:
    # Only "\n" ends a TOML line: U+2028 (str.splitlines() would split there) must not shift lines.
    text = "[service]\r\n# \u2028 \x85 comment\r\nport = 1\r\n"
    assert tomllib.loads(text) == {"service": {"port": 1}}
    assert scan(text, SELECTORS).lines == {("service",): 1, ("service", "port"): 3}


def test_line_of_falls_back_to_the_nearest_ancestor() -> None:
    found = scan('[bridge.selectors]\na = { kind = "file" }\n', SELECTORS)
    assert found.line_of(("bridge", "selectors", "a", "kind")) == 2
    # `path` is not written: its selector's line is the best answer.
    assert found.line_of(("bridge", "selectors", "a", "path")) == 2
    assert found.line_of(("bridge", "selectors", "b")) == 1
    # `bridge` has no header of its own: `[bridge.selectors]` creates it.
    assert found.line_of(("bridge",)) == 1
    assert found.line_of(("service", "port")) is None
    assert found.line_of(()) is None
    assert KeyLines().line_of(("a",)) is None


def test_no_duplicates_in_a_normal_file() -> None:
    text = textwrap.dedent(
        """\
        [bridge.selectors]
        a = { kind = "file", path = "/a" }
        [bridge.selectors.b]
        kind = "file"
        [bridge.selectors.b.extra]
        [bridge.selectors.c]
        """
    )
    assert scan(text, SELECTORS).duplicates == []


def test_duplicate_tables_span_to_the_next_header() -> None:
    text = textwrap.dedent(
        """\
        [bridge.selectors.x]
        kind = "file"
        [service]
        [bridge.selectors.x]
        kind = "uds"

        [bridge.selectors.y]
        [bridge.selectors.x]
        path = "/x"
        """
    )
    found = scan(text, SELECTORS)
    # (name, first line, the lines of the repeated definition); the last one runs to the end.
    assert found.duplicates == [("x", 1, range(4, 7)), ("x", 1, range(8, 11))]


def test_duplicate_inline_and_table_spans() -> None:
    text = textwrap.dedent(
        """\
        [bridge.selectors]
        x = { kind = "file", path = "/a" }
        "x" = { kind = "file", path = "/b" }
        [bridge.selectors.x]
        kind = "uds"
        [service]
        """
    )
    assert scan(text, SELECTORS).duplicates == [("x", 2, range(3, 4)), ("x", 2, range(4, 6))]


def test_dotted_keys_inside_a_selector_are_not_duplicates() -> None:
    text = '[bridge.selectors]\nx.kind = "file"\nx.path = "/a"\n'
    assert scan(text, SELECTORS).duplicates == []
    assert tomllib.loads(text)["bridge"]["selectors"]["x"] == {"kind": "file", "path": "/a"}


def test_blanking_duplicates_keeps_line_numbers_and_lets_tomllib_read_the_rest() -> None:
    text = '[bridge.selectors.x]\nkind = "file"\n[bridge.selectors.x]\nkind = "uds"\n[service]\nport = 1\n'
    found = scan(text, SELECTORS)
    with pytest.raises(tomllib.TOMLDecodeError):
        tomllib.loads(text)
    blanked = blank_lines(text, [span for _, _, span in found.duplicates])
    assert blanked.split("\n") == ["[bridge.selectors.x]", 'kind = "file"', "", "", "[service]", "port = 1", ""]
    assert tomllib.loads(blanked) == {"bridge": {"selectors": {"x": {"kind": "file"}}}, "service": {"port": 1}}
    # The surviving lines keep their numbers: port is still on line 6.
    assert scan(blanked, SELECTORS).lines[("service", "port")] == 6


def test_blank_lines_edge_cases() -> None:
    assert blank_lines("a\nb\nc", []) == "a\nb\nc"
    assert blank_lines("a\nb\nc\n", [range(1, 2), range(3, 4)]) == "\nb\n\n"
    assert blank_lines("a\r\nb\r\n", [range(2, 3)]) == "a\r\n\n"
    # A U+2028 inside a line is not a line break here either.
    assert blank_lines("# \u2028\nb\n", [range(2, 3)]) == "# \u2028\n\n"
