"""docs/bundle-config.md is generated from BundleConfig (bundle/config_docs.py) and current: every
setting, nested ones too, with its type, default and the comment that explains it."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path

import pytest

from local_exporter.bundle import config_docs
from local_exporter.bundle.config import BundleConfig

ROOT = Path(__file__).resolve().parents[2]


def test_the_page_is_current() -> None:
    committed = (ROOT / config_docs.PATH).read_text()
    assert committed == config_docs.markdown(), "run `python -m local_exporter.bundle.config_docs` and commit"


def test_every_setting_has_a_row_with_its_default() -> None:
    page = config_docs.markdown()
    defaults = BundleConfig()
    for field in fields(defaults):
        value = getattr(defaults, field.name)
        if is_dataclass(value):
            assert f"## `[{field.name}]`" in page
            for inner in fields(value):
                setting = getattr(value, inner.name)
                default = config_docs.toml_value(setting).replace("|", "\\|")
                kind = config_docs.type_name(inner.name, type(setting))
                assert f"| `{inner.name}` | {kind} | `{default}` |" in page, inner.name
        else:
            default = config_docs.toml_value(value).replace("|", "\\|")
            assert f"| `{field.name}` | {config_docs.type_name(field.name, type(value))} | `{default}` |" in page


@dataclass(frozen=True)
class _Undocumented:
    #: Documented.
    first: int = 1
    second: int = 2


def test_a_setting_without_a_comment_cannot_be_documented() -> None:
    with pytest.raises(ValueError, match=r"_Undocumented\.second has no #: comment"):
        config_docs._rows(_Undocumented)


def test_comments_and_sections_come_from_the_source() -> None:
    docs, sections = config_docs.field_docs(BundleConfig)
    assert docs["stalled_for"] == (
        "Hosts behind the newest version with no host moving for this long: the rollout stalled."
    )
    assert sections["stalled_for"] == "alerts" and sections["image"] == "deployment"
    assert config_docs.toml_value('job="zincati"') == "'job=\"zincati\"'"
    assert config_docs.toml_value(("a", "b")) == '["a", "b"]' and config_docs.toml_value(False) == "false"


def test_the_settings_other_pages_name_exist() -> None:
    names = {field.name for field in fields(BundleConfig)}
    named = {
        (page.name, name)
        for page in (ROOT / "docs").glob("*.md")
        for name in re.findall(r"the bundle config's `\[?(\w+)\]?`", page.read_text())
    }
    assert len(named) >= 8
    assert {(page, name) for page, name in named if name not in names} == set()
