"""docs/bridge.md stays true to the code: every outcome and every own metric is documented."""

from __future__ import annotations

import re

import pytest

from local_exporter.bridge import metrics
from local_exporter.bridge.errors import OUTCOME_STATUS, REJECTION_STATUS
from tests.conftest import ROOT

DOC = (ROOT / "docs/bridge.md").read_text()


def status_rows() -> dict[str, int]:
    rows = {}
    for status, label in re.findall(r"^\| (\d{3}|—) \| (?:\(rejected: )?`(\w+)`", DOC, re.M):
        rows[label] = 499 if status == "—" else int(status)
    return rows


def test_status_table_matches_the_code() -> None:
    assert status_rows() == OUTCOME_STATUS | REJECTION_STATUS


@pytest.mark.parametrize(
    "name",
    sorted(
        v
        for k, v in vars(metrics).items()
        if k.isupper() and k.endswith(("TOTAL", "SECONDS", "BYTES", "REQUESTS", "INFO"))
    ),
)
def test_every_own_metric_is_documented(name: str) -> None:
    assert f"| `{name}` |" in DOC
