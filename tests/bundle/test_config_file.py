"""The bundle config file (bundle/config_file.py): every BundleConfig setting readable from TOML,
every problem reported at once with its key and line, and `local-exporter bundle --config`
generating from it (and `--check` comparing with it)."""

from __future__ import annotations

import json
import re
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from local_exporter.bundle import config_docs, config_file, dashboards
from local_exporter.bundle.config import BundleConfig, MaintenanceWindow, Receivers
from local_exporter.bundle.config_file import BundleConfigError, parse
from local_exporter.bundle.generate import render
from local_exporter.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _problems(text: str) -> list[str]:
    with pytest.raises(BundleConfigError) as error:
        parse(text, "bundle.toml")
    return error.value.problems


def _all_fields(instance: Any, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for field in fields(instance):
        value = getattr(instance, field.name)
        if is_dataclass(value):
            out += _all_fields(value, f"{prefix}{field.name}.")
        else:
            out.append((prefix + field.name, value))
    return out


def test_an_empty_file_is_the_default_config() -> None:
    assert parse("", "bundle.toml") == BundleConfig()
    assert parse("# nothing set\n\n[receivers]\n", "bundle.toml") == BundleConfig()


def test_every_setting_written_out_reads_back_as_it_was() -> None:
    """Each field, nested ones in their tables, written as the docs write defaults: the reader
    takes them all (an unreadable field would be an unknown key)."""
    defaults = BundleConfig()
    top = [f"{name} = {config_docs.toml_value(value)}" for name, value in _all_fields(defaults) if "." not in name]
    tables = [
        f"[{f.name}]\n"
        + "\n".join(
            f"{name} = {config_docs.toml_value(value)}" for name, value in _all_fields(getattr(defaults, f.name))
        )
        for f in fields(defaults)
        if is_dataclass(getattr(defaults, f.name))
    ]
    assert parse("\n".join(top) + "\n" + "\n".join(tables), "bundle.toml") == defaults


def test_the_documented_example_generates_what_it_says() -> None:
    text = (ROOT / config_docs.PATH).read_text()
    example = re.search(r"```toml\n(.*?)```", text, flags=re.DOTALL)
    assert example is not None
    config = parse(example.group(1), "example.toml")
    assert config.agent_selector == 'job="fcos-hosts"' and config.cluster_label == "region"
    assert config.alert_prefix == "Fleet" and config.max_updating_ratio == 0.1 and config.agent_group_id == 981
    assert config.maintenance == MaintenanceWindow(
        weekdays=("tuesday", "thursday"), start_time="01:00", end_time="03:00", location="Europe/Berlin"
    )
    assert config.receivers.heartbeat_url == "https://deadman.example.org/ping/fleet"
    files = render(config)
    assert "FleetRolloutStalled" in files["prometheus/rules/alerts.yml"]
    assert "https://wiki.example.org/runbooks/fleetrolloutstalled" in files["prometheus/rules/alerts.yml"]
    assert "group_add:\n    - '981'" in files["compose/compose.yaml"]
    assert "registry.example.org/local-exporter:1.4.0" in files["deploy/kubernetes/local-exporter.yaml"]


def test_every_problem_is_reported_at_once_with_its_key_and_line() -> None:
    text = """\
alert_prefix = "fleet"
agent_selector = 'job="hosts"'
bridge_selector = 'instance="x"'
kured_selector = 'job="kured", env=~"prod|stage"'
down_window = "5x"
stale_after_seconds = 0
behind_plan_margin = 2
agent_group_id = 0
bogus = 1
runbook_url_pattern = "https://wiki.example.org/%s"
stalled_for = 7200
dashboard_tags = []

[receivers]
pager_url = "mailto:oncall@example.org"

[maintenance]
weekdays = ["saturday", "funday"]
start_time = "07:00"
end_time = "06:00"
location = "Mars/Olympus_Mons"
"""
    assert _problems(text) == [
        "bundle.toml:1: alert_prefix: must be CamelCase letters and digits, at most 19 (alert names stay within 40), "
        "got 'fleet'",
        'bundle.toml:3: bridge_selector: must be one job matcher, job="NAME" (the scrape configs take their job '
        "names from it), got 'instance=\"x\"'",
        "bundle.toml:5: down_window: must be a Prometheus duration like 30s, 5m or 1h30m, got '5x'",
        "bundle.toml:6: stale_after_seconds: must be greater than 0, got 0",
        "bundle.toml:7: behind_plan_margin: must be a share: greater than 0 and at most 1, got 2",
        "bundle.toml:8: agent_group_id: must be a group id from 1 to 4294967294, got 0",
        "bundle.toml:9: bogus: unknown key",
        "bundle.toml:10: runbook_url_pattern: holds %s: write {runbook} or {alert} where the alert goes, "
        "got 'https://wiki.example.org/%s'",
        "bundle.toml:11: stalled_for: must be a string, got integer 7200",
        "bundle.toml:12: dashboard_tags: must be at least one non-empty tag",
        "bundle.toml:15: receivers.pager_url: must be an http:// or https:// URL, got 'mailto:oncall@example.org'",
        "bundle.toml:18: maintenance.weekdays: must be Alertmanager weekdays (sunday, monday, tuesday, wednesday, "
        "thursday, friday, saturday) or ranges like monday:friday, got 'funday'",
        "bundle.toml:20: maintenance.end_time: must be after start_time '07:00', got '06:00'",
        "bundle.toml:21: maintenance.location: must be an IANA time zone name like Europe/Berlin, "
        "got 'Mars/Olympus_Mons'",
    ]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('kube_state_metrics_selector = "job=ksm"', "must be PromQL label matchers without braces"),
        ('group_label = "pool-name"', "must be a Prometheus label name, got 'pool-name'"),
        ('cluster_label = ""', "must be a Prometheus label name, got ''"),
        ('runbook_url_pattern = "https://x.example.org/{name}"', "may hold only {runbook} and {alert}"),
        ('runbook_url_pattern = "https://x.example.org/{"', "is not a valid pattern"),
        ('image = "my image"', "must be a container image reference without spaces"),
        ('dashboard_uid_prefix = "a/b"', "must be letters, digits, - and _, at most 30"),
        ('dashboard_timezone = "Nowhere/Else"', "must be an IANA time zone name"),
        ('dashboard_refresh = "0s"', "must be longer than 0, got '0s'"),
        ("infer_phases = 1", "must be a boolean, got integer 1"),
        ("max_updating_ratio = inf", "must be a finite number, got inf"),
        ("max_updating_ratio = 0", "must be a share: greater than 0 and at most 1, got 0"),
        ('receivers = "x"', "must be a table, got string 'x'"),
        ('dashboard_folder = " "', "must not be empty"),
        ("scrape_interval = '1m30'", "must be a Prometheus duration"),
        ("scale_out_shards = 0", "must be from 1 to 64 shards, got 0"),
        ("scale_out_shards = 65", "must be from 1 to 64 shards, got 65"),
    ],
)
def test_each_bad_value_is_named(line: str, problem: str) -> None:
    (only,) = _problems(line + "\n")
    assert only.startswith(f"bundle.toml:1: {line.split(' =')[0]}: {problem}"), only


def test_valid_values_of_each_kind_are_taken() -> None:
    config = parse(
        """\
kube_state_metrics_selector = 'job="ksm", namespace!="kube-system"'
group_label = "pool"
dashboard_timezone = "browser"
scrape_interval = "1m30s"
infer_phases = false
behind_plan_margin = 1
[maintenance]
weekdays = ["monday:friday"]
end_time = "24:00"
location = "Local"
""",
        "bundle.toml",
    )
    assert config.kube_state_metrics_selector == 'job="ksm", namespace!="kube-system"'
    assert config.group_label == "pool" and config.dashboard_timezone == "browser" and config.infer_phases is False
    assert config.scrape_interval == "1m30s" and config.behind_plan_margin == 1.0
    assert config.maintenance.weekdays == ("monday:friday",) and config.maintenance.end_time == "24:00"


def test_invalid_toml_names_its_line() -> None:
    (only,) = _problems('alert_prefix = "Fleet"\nstalled_for = \n')
    assert only.startswith("bundle.toml:2: invalid TOML:"), only


def test_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(BundleConfigError) as error:
        config_file.load(tmp_path / "missing.toml")
    assert error.value.problems == [
        f"{tmp_path / 'missing.toml'}: cannot read bundle config: No such file or directory"
    ]


def test_every_setting_has_a_check_and_every_default_passes_it() -> None:
    for name, value in _all_fields(BundleConfig()):
        assert config_file.check_of(name.rsplit(".", 1)[-1])(value) is None, name
    assert {f.name for f in fields(Receivers)} <= {n for n in config_file.CHECKS} | {
        "pager_url",
        "ticket_url",
        "heartbeat_url",
    }
    with pytest.raises(KeyError, match="no check"):
        config_file.check_of("new_setting")


def test_the_uid_prefix_limit_leaves_room_for_every_dashboards_slug() -> None:
    longest = replace(BundleConfig(), dashboard_uid_prefix="x" * config_file.UID_PREFIX_LIMIT)
    uids = {json.loads(text)["uid"] for text in dashboards.render(longest).values()}
    assert len(uids) == len(dashboards.DASHBOARDS)
    assert max(len(uid) for uid in uids) <= 40  # Grafana's limit


# --- the command ---------------------------------------------------------------------------------


def _user_config(directory: Path) -> Path:
    path = directory / "bundle.toml"
    path.write_text('agent_selector = \'job="hosts"\'\nalert_prefix = "Fleet"\ncluster_label = "region"\n')
    return path


def test_bundle_generates_from_the_file_and_check_compares_with_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, out = _user_config(tmp_path), tmp_path / "monitoring"
    assert main(["bundle", "--config", str(config), "--out", str(out)]) == 0
    assert "alert: FleetAgentDown" in (out / "prometheus" / "rules" / "alerts.yml").read_text()
    assert main(["bundle", "--config", str(config), "--out", str(out), "--check"]) == 0
    capsys.readouterr()
    # The defaults are not what this output was generated from: --check says so and how to fix it.
    assert main(["bundle", "--out", str(out), "--check"]) == 1
    error = capsys.readouterr().err
    assert f"{out / 'prometheus/rules/alerts.yml'}: differs from what the default bundle config generates" in error
    assert f"run `local-exporter bundle --out {out}` and commit the result" in error
    config.write_text(config.read_text() + 'stalled_for = "1h"\n')
    assert main(["bundle", "--config", str(config), "--out", str(out), "--check"]) == 1
    error = capsys.readouterr().err
    assert f"differs from what {config} generates" in error
    assert f"run `local-exporter bundle --config {config} --out {out}`" in error


def test_a_bad_bundle_config_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, out = tmp_path / "bundle.toml", tmp_path / "monitoring"
    config.write_text('alert_prefix = "Fleet"\nstalled_for = "soon"\nalert_prefx = "X"\n')
    assert main(["bundle", "--config", str(config), "--out", str(out)]) == 1
    assert not out.exists()
    assert capsys.readouterr().err.splitlines() == [
        f"{config}:2: stalled_for: must be a Prometheus duration like 30s, 5m or 1h30m, got 'soon'",
        f"{config}:3: alert_prefx: unknown key",
        f"{config}: 2 problem(s); nothing written",
    ]
