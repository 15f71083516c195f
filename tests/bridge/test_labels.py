"""Label injection: add-if-absent on every sample line, nothing else touched; checked by reading
the result back with prometheus_client's own parsers, and by hypothesis over labels and values."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from local_exporter.bridge import config
from local_exporter.bridge.labels import inject
from tests.support.bridges import bridge_app

TEXT = b"""# HELP a_total A counter.
# TYPE a_total counter
a_total 1
# TYPE b gauge
b{x="1",node="mine"} 2 1700000000000
b{v="a}b,c=\\"q\\"\\n"} 3
b{} 4
"""
OPENMETRICS = b"""# TYPE r counter
r_total{path="/"} 5 # {trace_id="abc"} 1.0 1700000000.0
r_created{path="/"} 1700000000.0
# EOF
"""


def _samples(text: bytes, openmetrics: bool = False) -> list[tuple[str, dict[str, str], float]]:
    parse = openmetrics_families if openmetrics else text_string_to_metric_families
    return [(s.name, dict(s.labels), s.value) for family in parse(text.decode()) for s in family.samples]


def test_labels_are_added_where_absent_and_never_override() -> None:
    out = inject(TEXT, [("node", "h1"), ("rack", 'r"2')])
    assert _samples(out) == [
        ("a_total", {"node": "h1", "rack": 'r"2'}, 1.0),
        ("b", {"x": "1", "node": "mine", "rack": 'r"2'}, 2.0),
        ("b", {"v": 'a}b,c="q"\n', "node": "h1", "rack": 'r"2'}, 3.0),
        ("b", {"node": "h1", "rack": 'r"2'}, 4.0),
    ]
    # Comments are untouched, and so is the timestamp.
    assert out.splitlines()[:2] == TEXT.splitlines()[:2] and b" 2 1700000000000" in out


def test_openmetrics_keeps_its_exemplars_and_eof() -> None:
    out = inject(OPENMETRICS, [("node", "h1")])
    assert out.endswith(b"# EOF\n") and b'# {trace_id="abc"} 1.0 1700000000.0' in out
    families = list(openmetrics_families(out.decode()))  # type: ignore[no-untyped-call]
    (sample, created) = families[0].samples
    assert sample.labels == {"path": "/", "node": "h1"} and sample.exemplar.labels == {"trace_id": "abc"}
    assert created.labels == {"path": "/", "node": "h1"}


def test_no_labels_is_the_body_itself() -> None:
    assert inject(TEXT, []) is TEXT


label_names = st.from_regex(r"\A[a-z][a-z0-9_]{0,8}\Z")
label_values = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    existing=st.dictionaries(label_names, label_values, max_size=3),
    added=st.dictionaries(label_names, label_values, min_size=1, max_size=3),
    value=st.floats(allow_nan=False, allow_infinity=False, width=32),
)
def test_any_labels_and_values_read_back(existing: dict[str, str], added: dict[str, str], value: float) -> None:
    from local_exporter.bridge.labels import escape

    labels = ",".join(f'{k}="{escape(v)}"' for k, v in existing.items())
    line = f"m{{{labels}}} {value!r}\n" if existing else f"m {value!r}\n"
    ((name, read, read_value),) = _samples(inject(line.encode(), sorted(added.items())))
    assert name == "m" and read_value == pytest.approx(value, nan_ok=False)
    assert read == {**added, **existing}  # what the source set wins


def test_config_reads_labels_and_names_bad_ones() -> None:
    ok = config.parse('[bridge.selectors.s]\nkind = "file"\npath = "/run/x"\nlabels = { node = "h1", a = "2" }\n')
    assert ok.selectors[0].labels == (("a", "2"), ("node", "h1"))
    with pytest.raises(config.ConfigError) as caught:
        config.parse(
            '[bridge.selectors.s]\nkind = "file"\npath = "/run/x"\nlabels = { __x = "1", "9a" = "2", n = 3 }\n',
            "c.toml",
        )
    problems = "\n".join(caught.value.problems)
    assert "bridge.selectors.s.labels.__x: is not a label name" in problems
    assert "bridge.selectors.s.labels.9a: is not a label name" in problems
    assert "bridge.selectors.s.labels.n: must be a string" in problems


async def test_the_bridge_serves_the_injected_labels(aiohttp_client, tmp_path: Path) -> None:
    (tmp_path / "m.prom").write_bytes(TEXT)
    toml = f'[bridge.selectors.m]\nkind = "file"\npath = "{tmp_path}/m.prom"\nlabels = {{ node = "h1" }}\n'
    client = await aiohttp_client(bridge_app(toml))
    async with client.get("/bridge?selector=m") as response:
        assert response.status == 200
        samples = _samples(await response.read())
    assert [labels["node"] for _, labels, _ in samples] == ["h1", "mine", "h1", "h1"]
