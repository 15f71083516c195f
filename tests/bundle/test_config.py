"""BundleConfig: every duration is a field, and `scaled` speeds them all up together."""

from __future__ import annotations

import subprocess
from dataclasses import fields
from pathlib import Path

from local_exporter.bundle.config import DURATION_SUFFIXES, SECONDS_SUFFIX, BundleConfig
from local_exporter.bundle.generate import write
from local_exporter.common.durations import parse_duration
from tests.support.prometheus import PROMTOOL

CONFIG = BundleConfig()
DURATIONS = [f.name for f in fields(BundleConfig) if f.name.endswith(DURATION_SUFFIXES)]


def test_duration_fields_hold_prometheus_durations() -> None:
    assert len(DURATIONS) >= 15
    for name in DURATIONS:
        assert parse_duration(getattr(CONFIG, name)) > 0, name


def test_scaled_divides_every_duration_and_age() -> None:
    fast = CONFIG.scaled(60)
    for name in DURATIONS:
        expected = max(1, round(parse_duration(getattr(CONFIG, name)) / 60))
        assert getattr(fast, name) == f"{expected}s", name
    for f in fields(BundleConfig):
        if f.name.endswith(SECONDS_SUFFIX):
            assert getattr(fast, f.name) == max(1, round(getattr(CONFIG, f.name) / 60)), f.name
    assert fast.staged_for == "120s" and fast.stale_after_seconds == 15
    assert fast.alert_prefix == CONFIG.alert_prefix and fast.max_updating_ratio == CONFIG.max_updating_ratio


def test_a_scaled_bundle_has_no_duration_of_the_original_left(tmp_path: Path) -> None:
    """Every window and `for:` the rules use comes from the config: none survives scaling."""
    write(tmp_path, CONFIG.scaled(60))
    for rule_file in (tmp_path / "prometheus" / "rules").glob("*.yml"):
        text = rule_file.read_text()
        for hard_coded in ("[30m]", "[1h]", ": 15m", ": 1h", "[10m]"):
            assert hard_coded not in text, (rule_file.name, hard_coded)
        checked = subprocess.run([PROMTOOL, "check", "rules", str(rule_file)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
