"""Every dashboard validates against Grafana's own dashboard schema: a JSON Schema generated from
the npm package @grafana/schema by scripts/grafana-schema (committed as test data)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from local_exporter.bundle import dashboards

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = json.loads((ROOT / "tests" / "data" / "grafana" / "dashboard.schema.json").read_text())
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)


def _dashboard(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / dashboards.DIRECTORY / name).read_text())
    return data


def _errors(dashboard: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message[:300]}" for e in VALIDATOR.iter_errors(dashboard)]


@pytest.mark.parametrize("name", sorted(dashboards.DASHBOARDS))
def test_dashboard_validates_against_grafanas_schema(name: str) -> None:
    assert _errors(_dashboard(name)) == []


def test_the_schema_is_grafanas_and_strict() -> None:
    definitions = SCHEMA["definitions"]
    assert SCHEMA["$ref"] == "#/definitions/Dashboard"
    assert {"Panel", "RowPanel", "VariableModel", "DashboardLink"} <= set(definitions)
    assert definitions["Panel"]["additionalProperties"] is False


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(lambda d: d["panels"][1].__setitem__("span", 4), id="a Grafana 6 panel key"),
        pytest.param(lambda d: d["templating"]["list"][1].__setitem__("useTags", False), id="a removed variable key"),
        pytest.param(lambda d: d.__setitem__("schemaVersion", "39"), id="schemaVersion as a string"),
        pytest.param(lambda d: d["panels"][0].pop("panels"), id="a row without its panels"),
    ],
)
def test_the_schema_rejects_what_grafanalib_gets_wrong(breakage: Any) -> None:
    broken = copy.deepcopy(_dashboard("rollout-overview.json"))
    breakage(broken)
    assert _errors(broken)
