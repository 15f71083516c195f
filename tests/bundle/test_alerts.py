"""The alerts follow mixtool's lint rules, read only emitted or recorded metrics, have a runbook
section each, and are covered by promtool tests that show them firing and staying silent."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from local_exporter.agents import os_release, os_update
from local_exporter.agents.zincati import FAMILIES
from local_exporter.bundle import alerts, names, rules
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.promql import metric_names
from tests.bundle.test_rules import TEST_FILES

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "docs" / "runbooks.md"
CONFIG = BundleConfig()

#: Alerts exempt from one rule, with the reason.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("OSUpdateHeartbeat", "templated description"): "vector(1) has no labels and no meaningful value",
    ("OSUpdateHeartbeat", "silent case"): "a dead man's switch fires whenever Prometheus evaluates rules",
}


def _groups() -> list[dict[str, Any]]:
    return alerts.alert_groups(CONFIG)


def _alerts() -> list[dict[str, Any]]:
    return [rule for group in _groups() for rule in group["rules"]]


def _exempt(alert: dict[str, Any], rule: str) -> bool:
    return (alert["alert"], rule) in EXCEPTIONS


def test_the_committed_alert_file_is_the_alert_groups() -> None:
    committed = yaml.safe_load((ROOT / "prometheus" / "rules" / "alerts.yml").read_text())
    assert committed == {"groups": _groups()}


def test_groups_are_small_and_named_briefly() -> None:
    for group in _groups():
        assert len(group["name"]) <= 40 and len(group["rules"]) <= 20, group["name"]


def test_alert_names_are_unique() -> None:
    # A warning and a critical alert may share a name; nothing here does yet.
    seen = [(a["alert"], a["labels"]["severity"]) for a in _alerts()]
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize("alert", _alerts(), ids=lambda alert: alert["alert"])
def test_alert_follows_the_mixin_lint_rules(alert: dict[str, Any]) -> None:
    name = alert["alert"]
    assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", name) and name.startswith(CONFIG.alert_prefix), name
    assert len(name) <= 40
    assert alert["labels"]["severity"] in {"critical", "warning", "info"}
    annotations = alert["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    summary = annotations["summary"]
    assert "{{" not in summary and summary[0].isupper() and summary.endswith("."), summary
    assert "{{" in annotations["description"] or _exempt(alert, "templated description")
    assert annotations["runbook_url"] == CONFIG.runbook_url_pattern.format(runbook=name.lower(), alert=name.lower())


def _github_anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lowercased, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_has_a_runbook_section_and_every_section_an_alert() -> None:
    headings = re.findall(r"^## (.+)$", RUNBOOKS.read_text(), flags=re.MULTILINE)
    assert len(headings) == len(set(headings))
    assert sorted(headings) == sorted({a["alert"] for a in _alerts()})
    anchors = {_github_anchor(h) for h in headings}
    for alert in _alerts():
        assert alert["annotations"]["runbook_url"].rsplit("#", 1)[1] in anchors, alert["alert"]


def test_runbook_links_reach_the_shipped_runbooks_under_any_prefix_and_yours_by_alert_name() -> None:
    headings = re.findall(r"^## (.+)$", RUNBOOKS.read_text(), flags=re.MULTILINE)
    anchors = {_github_anchor(h) for h in headings}
    renamed = [rule for group in alerts.alert_groups(replace(CONFIG, alert_prefix="Fleet")) for rule in group["rules"]]
    assert renamed and all(rule["alert"].startswith("Fleet") for rule in renamed)
    for rule in renamed:
        assert rule["annotations"]["runbook_url"].rsplit("#", 1)[1] in anchors, rule["alert"]
    own = replace(CONFIG, alert_prefix="Fleet", runbook_url_pattern="https://wiki.example.org/{alert}")
    for rule in (rule for group in alerts.alert_groups(own) for rule in group["rules"]):
        assert rule["annotations"]["runbook_url"] == f"https://wiki.example.org/{rule['alert'].lower()}"


def test_every_metric_an_alert_reads_is_emitted_or_recorded() -> None:
    recorded = {rule["record"] for group in rules.recording_rules(CONFIG) for rule in group["rules"]}
    emitted = set(FAMILIES) | {
        names.UP,
        names.BRIDGE_REQUESTS,
        names.BRIDGE_DURATION,
        names.BRIDGE_LAST_SUCCESS,
        names.BRIDGE_RELOAD_SUCCESSFUL,
        names.BRIDGE_WEB_CONFIG_RELOAD_SUCCESSFUL,
    }
    # The os_update selector's families (bridge/sources/os_update, agents/os_update.py).
    emitted |= {value for key, value in vars(os_update).items() if key.isupper() and isinstance(value, str)}
    # The release feeds' families (bridge/sources/cincinnati.py and nebraska.py, agents/os_release.py).
    emitted |= {value for key, value in vars(os_release).items() if key.isupper() and isinstance(value, str)}
    for alert in _alerts():
        read = metric_names(alert["expr"])
        assert read <= emitted | recorded, (alert["alert"], read - emitted - recorded)


# --- coverage by the promtool tests --------------------------------------------------------------


def _cases() -> dict[str, dict[str, list[dict[str, Any]]]]:
    """alertname -> {"firing": [expected alerts...], "silent": [test names...]} over every test file."""
    cases: dict[str, dict[str, list[Any]]] = defaultdict(lambda: {"firing": [], "silent": []})
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            assert test.get("name"), f"{path.name}: every test case has a readable name"
            for check in test.get("alert_rule_test", []):
                expected = check.get("exp_alerts") or []
                if expected:
                    cases[check["alertname"]]["firing"].extend(expected)
                else:
                    cases[check["alertname"]]["silent"].append(test["name"])
    return cases


def test_promtool_tests_read_the_generated_rules() -> None:
    for path in TEST_FILES:
        if path.name.startswith("alerts_"):
            loaded = yaml.safe_load(path.read_text())
            assert loaded["rule_files"] == ["../rules/recording.yml", "../rules/alerts.yml"], path.name
            assert loaded["evaluation_interval"] == "1m", path.name


def test_every_alert_group_has_its_test_file() -> None:
    for group in _groups():
        assert (ROOT / "prometheus" / "tests" / f"alerts_{group['name']}_test.yml").exists(), group["name"]


def test_tests_only_name_alerts_that_exist() -> None:
    assert set(_cases()) <= {a["alert"] for a in _alerts()}


@pytest.mark.parametrize("alert", _alerts(), ids=lambda alert: alert["alert"])
def test_alert_has_a_firing_and_a_silent_case(alert: dict[str, Any]) -> None:
    cases = _cases()[alert["alert"]]
    assert cases["firing"], f"{alert['alert']}: no promtool case where it fires"
    assert cases["silent"] or _exempt(alert, "silent case"), f"{alert['alert']}: no case where it stays silent"
    for expected in cases["firing"]:
        # Firing cases assert every label and all three annotations as rendered.
        assert expected["exp_labels"]["severity"] == alert["labels"]["severity"]
        annotations = expected["exp_annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}
        assert annotations["summary"] == alert["annotations"]["summary"]
        assert annotations["runbook_url"] == alert["annotations"]["runbook_url"]
