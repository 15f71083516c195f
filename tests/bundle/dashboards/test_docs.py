"""docs/dashboards.md lists every dashboard by its file and every panel by its title."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local_exporter.bundle import dashboards

ROOT = Path(__file__).resolve().parents[3]
DOC = (ROOT / "docs" / "dashboards.md").read_text()


@pytest.mark.parametrize("name", sorted(dashboards.DASHBOARDS))
def test_the_doc_lists_the_dashboard_and_its_panels(name: str) -> None:
    dashboard = json.loads((ROOT / dashboards.DIRECTORY / name).read_text())
    section = DOC.split(f"(`{name}`)", 1)
    assert len(section) == 2, f"no section for {name}"
    body = " ".join(section[1].split("\n## ", 1)[0].split())  # bold titles may wrap
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert f"**{panel['title']}**" in body, (name, panel["title"])
