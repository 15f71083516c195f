"""Every dashboard passes grafana/dashboard-linter's rules and the monitoring-mixin dashboard rules,
ported here; where one cannot apply, EXCEPTIONS says why."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from local_exporter.agents.zincati import FAMILIES
from local_exporter.bundle import dashboards, names, rules
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.dashboards.style import DATASOURCE
from local_exporter.bundle.promql import enclosing_functions, metric_names, substituted
from tests.support.prometheus import PROMTOOL

ROOT = Path(__file__).resolve().parents[3]
CONFIG = BundleConfig()

#: (dashboard uid, panel title or "*", rule) -> why the rule does not apply there.
EXCEPTIONS: dict[tuple[str, str, str], str] = {
    ("local-exporter-host", "*", "instance variable is multi"): (
        "the drill-down shows one host: its panels are one host's history"
    ),
    ("local-exporter-bridge", "*", "instance variable starts on All with .+"): (
        "per-host panels start on one host, and All is .*: a .+ matcher unions the postings of every host, "
        "50 ms a selector at 100,000 hosts even with no data (docs/benchmarks.md); .* is skipped"
    ),
    ("local-exporter-errors", "Hosts with the most errors", "rate interval"): (
        "a table of the errors in the chosen time range counts over $__range, not a rate"
    ),
    ("local-exporter-errors", "Hosts with the most errors", "fleet panels read recording rules"): (
        "naming hosts needs per-host series; only hosts whose error families exist are read "
        "(they appear at their first error)"
    ),
    ("local-exporter-overview", "Flatcar instances per channel and version (Nebraska)", "job matcher"): (
        "Nebraska is one server scraped by its own job (BundleConfig.nebraska_selector), not a job of the fleet"
    ),
    ("local-exporter-overview", "Failed updates, recently (Nebraska)", "job matcher"): (
        "Nebraska is one server scraped by its own job (BundleConfig.nebraska_selector), not a job of the fleet"
    ),
    ("local-exporter-reboots", "*", "job matcher"): (
        "airlock is one server scraped by its own job (BundleConfig.airlock_selector), not a job of the fleet"
    ),
    ("local-exporter-reboots", "*", "fleet panels read recording rules"): (
        "airlock's series are per FleetLock group, not per host: a handful at any fleet size"
    ),
    ("local-exporter-bridge", "Bridges answering", "instance matcher"): "a fleet-wide count from a recording rule",
    ("local-exporter-bridge", "Bridges not answering", "instance matcher"): "a fleet-wide count from a recording rule",
    ("local-exporter-bridge", "Scrapes failing", "instance matcher"): "a fleet-wide share from a recording rule",
    ("local-exporter-bridge", "Scrapes by selector and outcome", "instance matcher"): (
        "fleet-wide, from a recording rule that has no instance"
    ),
}

#: Grafana's unit ids the dashboards may use.
UNITS = {"none", "short", "percentunit", "s", "ops", "reqps", "Bps", "bytes"}
#: Counters: Zincati's (some without `_total`), the bridge's and airlock's.
COUNTERS = {name for name, family in FAMILIES.items() if family.type == "counter"} | {
    names.BRIDGE_REQUESTS,
    names.BRIDGE_RESPONSE_BYTES,
    names.BRIDGE_REJECTED,
    names.AIRLOCK_PRE_REBOOT,
    names.AIRLOCK_STEADY_STATE,
}
RATE_FUNCTIONS = {"rate", "irate", "increase"}
#: Dashboards whose panels show the whole fleet: they read recording rules, cheap at any size.
FLEET_DASHBOARDS = {"overview", "versions", "status", "errors", "reboots"}
RECORDED = {rule["record"] for group in rules.recording_rules(CONFIG) for rule in group["rules"]}
DECLARED = (
    set(FAMILIES)
    | RECORDED
    | {value for key, value in vars(names).items() if key.isupper() and isinstance(value, str)}
    | {names.BRIDGE_DURATION + "_bucket"}
)


def _committed() -> dict[str, dict[str, Any]]:
    return {name: json.loads((ROOT / dashboards.DIRECTORY / name).read_text()) for name in dashboards.DASHBOARDS}


COMMITTED = _committed()


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def _all_panels() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for dashboard in COMMITTED.values():
        for panel in _panels(dashboard):
            yield dashboard, panel


PANELS = list(_all_panels())
PANEL_IDS = [f"{d['uid']}:{p['title']}" for d, p in PANELS]


def _exempt(dashboard: dict[str, Any], panel: dict[str, Any] | None, rule: str) -> bool:
    title = panel["title"] if panel else "*"
    return (dashboard["uid"], title, rule) in EXCEPTIONS or (dashboard["uid"], "*", rule) in EXCEPTIONS


def _variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def _selectors(expr: str) -> list[str]:
    """The label matchers of every selector in `expr` (one string per `{...}`)."""
    return re.findall(r"\{([^}]*)\}", re.sub(r'"[^"]*"', lambda m: m.group().replace("{", "").replace("}", ""), expr))


# --- dashboards ------------------------------------------------------------------------------------


def test_the_committed_dashboards_are_what_the_generator_writes() -> None:
    rendered = dashboards.render(CONFIG)
    assert sorted(rendered) == sorted(f"{dashboards.DIRECTORY}/{n}" for n in dashboards.DASHBOARDS)
    for path, text in rendered.items():
        assert (ROOT / path).read_text() == text, path
    assert sorted(p.name for p in (ROOT / dashboards.DIRECTORY).glob("*.json")) == sorted(dashboards.DASHBOARDS)


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_dashboard_settings(name: str) -> None:
    d = COMMITTED[name]
    assert d["uid"].startswith(CONFIG.dashboard_uid_prefix + "-") and len(d["uid"]) <= 40
    assert d["editable"] is False
    assert d["schemaVersion"] >= 36
    assert "__inputs" not in d and "rows" not in d
    assert d["tags"] == list(CONFIG.dashboard_tags)
    assert d["timezone"] == CONFIG.dashboard_timezone and d["refresh"] == CONFIG.dashboard_refresh
    assert d["title"].startswith("OS updates / ") and d["description"]
    related = [link for link in d["links"] if link["type"] == "dashboards"]
    assert related and all(link["keepTime"] and link["includeVars"] for link in related)
    assert set(related[0]["tags"]) <= set(CONFIG.dashboard_tags)


def test_uids_and_titles_are_unique() -> None:
    assert len({d["uid"] for d in COMMITTED.values()}) == len(COMMITTED)
    assert len({d["title"] for d in COMMITTED.values()}) == len(COMMITTED)


def test_the_overview_puts_common_time_ranges_one_click_away() -> None:
    d = COMMITTED["rollout-overview.json"]
    urls = [link["url"] for link in d["links"] if link["type"] == "link"]
    for duration in ("1h", "1d", "7d", "30d"):
        assert f"/d/{d['uid']}?from=now-{duration}&to=now" in urls
    assert all(link["includeVars"] for link in d["links"] if link["type"] == "link")


# --- variables -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_datasource_variable(name: str) -> None:
    variable = _variables(COMMITTED[name])["datasource"]
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
    assert variable["label"] == "Data source"


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_query_variables_refresh_on_time_change_and_read_the_datasource_variable(name: str) -> None:
    for variable in COMMITTED[name]["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["refresh"] == 2, variable["name"]
            assert variable["datasource"] == DATASOURCE, variable["name"]
            assert re.fullmatch(r"label_values\(.+, \w+\)", variable["query"], re.S), variable["name"]


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_cluster_job_and_instance_variables(name: str) -> None:
    d = COMMITTED[name]
    variables = _variables(d)
    cluster = variables[CONFIG.cluster_label]
    assert cluster["allValue"] == ".*" and cluster["includeAll"]
    assert cluster["hide"] == (0 if CONFIG.show_multi_cluster else 2)
    job = variables["job"]
    assert job["multi"] and job["includeAll"] and job["allValue"] == ".+" and job["hide"] == 0
    if "instance" in variables and not _exempt(d, None, "instance variable is multi"):
        instance = variables["instance"]
        assert instance["multi"] and instance["includeAll"]
        if not _exempt(d, None, "instance variable starts on All with .+"):
            assert instance["allValue"] == ".+" and instance["current"]["value"] == "$__all"


def test_the_cluster_variable_shows_when_multi_cluster() -> None:
    multi = BundleConfig(show_multi_cluster=True)
    for text in dashboards.render(multi).values():
        assert _variables(json.loads(text))[multi.cluster_label]["hide"] == 0


# --- panels ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dashboard", "panel"), PANELS, ids=PANEL_IDS)
def test_panel_has_title_description_unit_datasource_and_targets(
    dashboard: dict[str, Any], panel: dict[str, Any]
) -> None:
    assert panel["title"] and panel["description"]
    assert panel["fieldConfig"]["defaults"].get("unit") in UNITS
    assert panel["datasource"] == DATASOURCE
    assert panel["targets"]
    for target in panel["targets"]:
        assert target["datasource"] == DATASOURCE and target["expr"].strip()


@pytest.mark.parametrize(("dashboard", "panel"), PANELS, ids=PANEL_IDS)
def test_rates_use_the_rate_interval(dashboard: dict[str, Any], panel: dict[str, Any]) -> None:
    if _exempt(dashboard, panel, "rate interval"):
        return
    for target in panel["targets"]:
        for function, window in re.findall(r"\b(rate|irate|increase)\(.*?\[([^\]]+)\]", target["expr"], re.S):
            assert window == "$__rate_interval", (function, target["expr"])


@pytest.mark.parametrize(("dashboard", "panel"), PANELS, ids=PANEL_IDS)
def test_counters_appear_only_inside_rate_or_increase(dashboard: dict[str, Any], panel: dict[str, Any]) -> None:
    for target in panel["targets"]:
        expr = target["expr"]
        for counter in COUNTERS:
            for match in re.finditer(re.escape(counter) + r"(?![\w:])", expr):
                assert set(enclosing_functions(expr, match.start())) & RATE_FUNCTIONS, (counter, expr)


@pytest.mark.parametrize(("dashboard", "panel"), PANELS, ids=PANEL_IDS)
def test_every_selector_has_the_job_and_instance_matchers(dashboard: dict[str, Any], panel: dict[str, Any]) -> None:
    variables = _variables(dashboard)
    for target in panel["targets"]:
        for matchers in _selectors(target["expr"]):
            if not _exempt(dashboard, panel, "job matcher"):
                assert 'job=~"$job"' in matchers, (matchers, target["expr"])
            assert f'{CONFIG.cluster_label}=~"${CONFIG.cluster_label}"' in matchers
            if "instance" in variables and not _exempt(dashboard, panel, "instance matcher"):
                assert 'instance=~"$instance"' in matchers, (matchers, target["expr"])


@pytest.mark.parametrize(("dashboard", "panel"), PANELS, ids=PANEL_IDS)
def test_fleet_panels_read_recording_rules(dashboard: dict[str, Any], panel: dict[str, Any]) -> None:
    slug = dashboard["uid"].removeprefix(CONFIG.dashboard_uid_prefix + "-")
    fleet_panel = slug in FLEET_DASHBOARDS or "instance" not in "".join(t["expr"] for t in panel["targets"])
    if not fleet_panel or _exempt(dashboard, panel, "fleet panels read recording rules"):
        return
    for target in panel["targets"]:
        assert metric_names(target["expr"]) <= RECORDED, target["expr"]


@pytest.mark.parametrize(("dashboard", "panel"), PANELS, ids=PANEL_IDS)
def test_every_metric_a_panel_reads_is_declared(dashboard: dict[str, Any], panel: dict[str, Any]) -> None:
    for target in panel["targets"]:
        read = metric_names(target["expr"])
        assert read, target["expr"]
        assert read <= DECLARED, read - DECLARED


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_panels_fit_the_grid_without_overlapping(name: str) -> None:
    taken: set[tuple[int, int]] = set()
    ids = [p["id"] for p in COMMITTED[name]["panels"]]
    assert len(ids) == len(set(ids))
    for panel in COMMITTED[name]["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24
        cells = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & taken, panel["title"]
        taken |= cells


#: Other shapes of the bundle: several clusters in one view, and a fleet split into groups.
VARIANTS = {
    "default": CONFIG,
    "multi-cluster and groups": BundleConfig(show_multi_cluster=True, group_label="group"),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_query_parses_as_promql(variant: str, tmp_path: Path) -> None:
    """promtool parses every panel query and every variable's selector, variables filled in."""
    exprs = []
    for text in dashboards.render(VARIANTS[variant]).values():
        d = json.loads(text)
        values = {v["name"]: v.get("allValue") or ".+" for v in d["templating"]["list"]}
        exprs += [substituted(t["expr"], values) for p in _panels(d) for t in p["targets"]]
        exprs += [
            substituted(re.fullmatch(r"label_values\((.+), \w+\)", v["query"], re.S).group(1), values)  # type: ignore[union-attr]
            for v in d["templating"]["list"]
            if v["type"] == "query"
        ]
    group = {"name": "lint", "rules": [{"record": f"lint:query_{i}:expr", "expr": e} for i, e in enumerate(exprs)]}
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [group]}))
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(exprs)} rules found" in result.stdout


def test_with_several_clusters_every_breakdown_keeps_them_apart() -> None:
    config = VARIANTS["multi-cluster and groups"]
    for text in dashboards.render(config).values():
        d = json.loads(text)
        if d["uid"].endswith("-host"):
            continue  # one host: no breakdown
        for panel in _panels(d):
            for target in panel["targets"]:
                for clause in re.findall(r"\bby \(([^)]*)\)", target["expr"]):
                    assert config.cluster_label in clause, (panel["title"], target["expr"])
                if " by (" in target["expr"] and target["legendFormat"]:
                    assert target["legendFormat"].startswith("{{cluster}}"), panel["title"]
        assert all(
            'group=~"$group"' in m
            for p in _panels(d)
            for t in p["targets"]
            for m in _selectors(t["expr"])
            if 'job=~"$job"' in m
        )
        assert _variables(d)["group"]["includeAll"]


def test_exceptions_name_real_dashboards_and_panels() -> None:
    titles = {(d["uid"], p["title"]) for d, p in PANELS} | {(d["uid"], "*") for d in COMMITTED.values()}
    for uid, title, _ in EXCEPTIONS:
        assert (uid, title) in titles, (uid, title)
