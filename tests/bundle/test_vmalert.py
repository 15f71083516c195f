"""The rules on vmalert (Debian's victoria-metrics): it takes recording.yml unchanged and the
alerts through prometheus/vmalert/alerts.yml, which is alerts.yml without `keep_firing_for`,
the one field vmalert before 1.91 refuses (bundle/generate.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from local_exporter.bundle.alerts import alert_groups
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.generate import VMALERT_ALERTS_PATH
from tests.support.victoria import VMALERT

ROOT = Path(__file__).resolve().parents[2]


def _dry_run(*rule_files: str) -> subprocess.CompletedProcess[str]:
    args = [VMALERT, "-dryRun", "-loggerLevel=ERROR", *(f"-rule={ROOT / path}" for path in rule_files)]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def test_vmalert_takes_the_recording_rules_and_its_alert_file() -> None:
    result = _dry_run("prometheus/rules/recording.yml", VMALERT_ALERTS_PATH)
    assert result.returncode == 0, result.stdout + result.stderr


def test_vmalert_refuses_alerts_yml_for_keep_firing_for_alone() -> None:
    # Why the second file exists: once Debian's vmalert takes keep_firing_for, this fails and
    # prometheus/vmalert/ can go.
    result = _dry_run("prometheus/rules/alerts.yml")
    assert result.returncode != 0
    assert "unknown fields in rule: keep_firing_for" in result.stdout + result.stderr


def test_its_alert_file_is_alerts_yml_without_keep_firing_for() -> None:
    generated = yaml.safe_load((ROOT / VMALERT_ALERTS_PATH).read_text())["groups"]
    full = alert_groups(BundleConfig())
    differing = []
    for mine, theirs in zip(full, generated, strict=True):
        for rule, stripped in zip(mine["rules"], theirs["rules"], strict=True):
            if rule != stripped:
                differing.append(rule["alert"])
                assert {k: v for k, v in rule.items() if k != "keep_firing_for"} == stripped
    assert differing == ["OSUpdateRebootPending"]
