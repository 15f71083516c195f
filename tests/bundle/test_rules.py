"""The generated rules: committed as generated, valid for promtool, passing their unit tests, linted."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from local_exporter.agents import os_update
from local_exporter.agents.zincati import FAMILIES
from local_exporter.bundle import config_file, names, rules
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.generate import differences, render, write
from local_exporter.bundle.promql import metric_names
from tests.support.processes import local_exporter_args, python_env
from tests.support.prometheus import PROMTOOL

ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = sorted((ROOT / "prometheus" / "rules").glob("*.yml"))
TESTS = ROOT / "prometheus" / "tests"
#: The hand-written promtool tests: against the committed rules, and (in scaled/) against rules
#: generated from the bundle config beside them, where the default windows would have promtool
#: evaluate days of minutes.
TEST_FILES = sorted(TESTS.glob("*_test.yml")) + sorted((TESTS / "scaled").glob("*_test.yml"))


def test_committed_files_are_what_the_generator_writes() -> None:
    assert differences(ROOT, BundleConfig()) == []


def test_bundle_check_fails_on_drift_and_writing_fixes_it(tmp_path: Path) -> None:
    def check() -> subprocess.CompletedProcess[str]:
        args = local_exporter_args("bundle", "--out", str(tmp_path), "--check")
        return subprocess.run(args, capture_output=True, text=True, timeout=60, env=python_env())

    missing = check()
    assert missing.returncode == 1
    assert "prometheus/rules/recording.yml: differs from what the default bundle config generates" in missing.stderr
    assert write(tmp_path, BundleConfig()) == list(render(BundleConfig()))
    assert check().returncode == 0
    edited = tmp_path / "prometheus" / "rules" / "recording.yml"
    edited.write_text(edited.read_text() + "# a hand edit\n")
    assert check().returncode == 1


def test_generation_is_deterministic() -> None:
    assert render(BundleConfig()) == render(BundleConfig())


def test_promtool_accepts_every_rule_file() -> None:
    assert RULE_FILES
    result = subprocess.run([PROMTOOL, "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda path: path.name)
def test_promtool_unit_tests_pass(test_file: Path, tmp_path: Path) -> None:
    directory = test_file.parent
    if directory.name == "scaled":
        # Laid out as prometheus/ is: the rules in ../rules, generated from scaled/bundle.toml.
        files = render(config_file.load(directory / "bundle.toml"))
        for name in ("recording.yml", "alerts.yml"):
            (tmp_path / "rules").mkdir(exist_ok=True)
            (tmp_path / "rules" / name).write_text(files[f"prometheus/rules/{name}"])
        directory = tmp_path / "scaled"
        directory.mkdir()
        shutil.copy(test_file, directory)
    result = subprocess.run(
        [PROMTOOL, "test", "rules", test_file.name], capture_output=True, text=True, cwd=directory, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_scaled_tests_change_only_the_windows_they_need() -> None:
    config = config_file.load(TESTS / "scaled" / "bundle.toml")
    changed = {f.name for f in fields(config) if getattr(config, f.name) != getattr(BundleConfig(), f.name)}
    assert changed == {"skew_for"}


def _os_update_families() -> set[str]:
    return {value for key, value in vars(os_update).items() if key.isupper() and isinstance(value, str)}


def _recording_rules() -> list[dict[str, str]]:
    groups = rules.recording_rules(BundleConfig())
    return [rule for group in groups for rule in group["rules"] if "record" in rule]


#: Nebraska's own families (agents/nebraska.py), scraped from its /metrics.
NEBRASKA_FAMILIES = (names.NEBRASKA_INSTANCES, names.NEBRASKA_FAILED_UPDATES)
#: kube-state-metrics' node annotations (FLUO's) and Kured's family (agents/kubernetes.py).
KUBERNETES_FAMILIES = (names.NODE_ANNOTATIONS, names.KURED_REBOOT_REQUIRED)
#: The release feeds' families (agents/os_release.py), the bundle reads.
RELEASE_FAMILIES = (
    names.RELEASE_NEWEST,
    names.RELEASE_DEADEND,
    names.RELEASE_PLANNED_SHARE,
    names.RELEASE_FEED_UPDATED,
)
#: A release is the same for every fleet and job: what joins hosts with a feed's releases is
#: aggregated by these labels alone (rules.py FEED_NEWEST, _release_group).
RELEASE_LABELS = {"os", "stream", "os_version"}


@pytest.mark.parametrize("rule", _recording_rules(), ids=lambda rule: rule["record"])
def test_recording_rule_names_and_labels_follow_the_mixin_conventions(rule: dict[str, str]) -> None:
    level, metric, operation = rule["record"].split(":")
    assert re.fullmatch(r"[a-z]+(_[a-z]+)*", level) and metric and operation
    # The metric part names what is aggregated: an emitted family (without `_total`), or, for
    # the product's own derived signals (phase, newest version), the product's name.
    emitted = {
        name.removesuffix("_total")
        for name in (
            *FAMILIES,
            names.BRIDGE_REQUESTS,
            *_os_update_families(),
            *NEBRASKA_FAMILIES,
            *KUBERNETES_FAMILIES,
            *RELEASE_FAMILIES,
        )
    }
    assert metric in emitted or metric.startswith("local_exporter_"), rule["record"]
    # Aggregations keep job and the cluster label.
    for aggregation in re.findall(r"\b(?:sum|count|min|max|topk) by \(([^)]*)\)", rule["expr"]):
        kept = {label.strip() for label in aggregation.split(",")}
        assert {"job", BundleConfig().cluster_label} <= kept or kept <= RELEASE_LABELS, (rule["record"], aggregation)


def test_groups_are_small_and_named_briefly() -> None:
    for group in rules.recording_rules(BundleConfig()):
        assert len(group["name"]) <= 40 and len(group["rules"]) <= 20


def test_every_metric_a_rule_reads_is_emitted_or_recorded() -> None:
    recorded = {rule["record"] for rule in _recording_rules()}
    emitted = set(FAMILIES) | {names.UP, names.BRIDGE_REQUESTS, names.BRIDGE_DURATION, names.BRIDGE_LAST_SUCCESS}
    # The os_update selector's families (bridge/sources/os_update, agents/os_update.py).
    emitted |= _os_update_families()
    emitted |= set(NEBRASKA_FAMILIES) | set(KUBERNETES_FAMILIES) | set(RELEASE_FAMILIES)
    for rule in _recording_rules():
        read = metric_names(rule["expr"])
        assert read, rule["record"]
        assert read <= emitted | recorded, (rule["record"], read - emitted - recorded)


def test_the_committed_rule_file_is_the_recording_rules() -> None:
    committed = yaml.safe_load((ROOT / "prometheus" / "rules" / "recording.yml").read_text())
    assert committed == {"groups": rules.recording_rules(BundleConfig())}


def test_a_group_label_reaches_every_aggregation(tmp_path: Path) -> None:
    grouped = BundleConfig(group_label="group")
    write(tmp_path, grouped)
    files = sorted((tmp_path / "prometheus" / "rules").glob("*.yml"))
    result = subprocess.run([PROMTOOL, "check", "rules", *map(str, files)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    for group in yaml.safe_load(files[1].read_text())["groups"]:
        for rule in group["rules"]:
            for clause in re.findall(r"\b(?:by|on) \(([^)]*)\)", rule["expr"]):
                kept = {label.strip() for label in clause.split(",")}
                assert "group" in kept or kept <= RELEASE_LABELS, (rule["record"], clause)
