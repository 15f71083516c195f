"""`infer_phases = false`: where every host reports its own phase, the phase rule maps the
reported phases and infers nothing (a host that exposes Zincati's socket alone gets no phase).
A promtool unit test on rules generated with that config."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from local_exporter.bundle import rules
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.generate import write
from tests.support.prometheus import PROMTOOL

CONFIG = BundleConfig(infer_phases=False)


def _host(name: str, version: str, started: int, phase: str | None) -> list[dict[str, str]]:
    series = [
        {
            "series": f'zincati_identity_os_info{{job="zincati", instance="{name}", stream="stable", '
            f'os_version="{version}", basearch="x86_64", platform="metal"}}',
            "values": "1+0x30",
        },
        {"series": f'process_start_time_seconds{{job="zincati", instance="{name}"}}', "values": f"{started}+0x30"},
        {"series": f'up{{job="zincati", instance="{name}"}}', "values": "1+0x30"},
    ]
    if phase is not None:
        series.append(
            {"series": f'os_update_phase{{job="zincati", instance="{name}", phase="{phase}"}}', "values": "1+0x30"}
        )
    return series


def _expected(name: str, phase: str) -> dict[str, object]:
    return {"labels": f'{rules.PHASE}{{instance="{name}", job="zincati", phase="{phase}"}}', "value": 1}


def test_the_phase_is_the_reported_one_and_nothing_is_inferred(tmp_path: Path) -> None:
    write(tmp_path, CONFIG)
    phase_rule = next(
        r["expr"] for g in rules.recording_rules(CONFIG) for r in g["rules"] if r.get("record") == rules.PHASE
    )
    # The inference reads Zincati's counters; none of them is in the rule any more.
    assert "zincati_" not in phase_rule and "os_update_phase" in phase_rule
    series = [
        # 40.2 is the newest: its first host booted last.
        *_host("h-idle-newest", "40.2", 600, "idle"),
        *_host("h-idle-behind", "40.1", 0, "idle"),
        *_host("h-dead-end", "40.1", 0, "dead_end"),
        *_host("h-failing", "40.1", 0, "failing"),
        *_host("h-down", "40.1", 0, "agent_down"),
        *_host("h-disabled", "40.1", 0, "updates_disabled"),
        *_host("h-downloading", "40.1", 0, "downloading"),
        *_host("h-rebooted", "40.2", 600, "rebooted"),
        *_host("h-rebooting", "40.1", 0, "rebooting"),
        *_host("h-staged", "40.1", 0, "staged"),
        *_host("h-waiting", "40.1", 0, "staged"),
        {
            "series": 'os_update_waiting_info{job="zincati", instance="h-waiting", reason="reboot_lock"}',
            "values": "1+0x30",
        },
        # Zincati's socket alone, its counters moving: no phase without the inference.
        *_host("h-zincati-only", "40.1", 0, None),
        {
            "series": 'zincati_cincinnati_update_checks_errors_total{job="zincati", instance="h-zincati-only", kind="x"}',
            "values": "0+1x30",
        },
    ]
    expected = [
        _expected("h-idle-newest", "up_to_date"),
        _expected("h-idle-behind", "checking"),
        _expected("h-dead-end", "checking"),
        _expected("h-failing", "error"),
        _expected("h-down", "down"),
        _expected("h-disabled", "disabled"),
        _expected("h-downloading", "staging"),
        _expected("h-rebooted", "rebooted"),
        _expected("h-rebooting", "staged"),
        _expected("h-staged", "staged"),
        _expected("h-waiting", "waiting_lock"),
    ]
    counts = {rules.HOSTS_BY_STREAM: 12, rules.HOSTS_ON_NEWEST: 2}
    test = {
        "rule_files": ["prometheus/rules/recording.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {"expr": rules.PHASE, "eval_time": "30m", "exp_samples": expected},
                    *(
                        {
                            "expr": name,
                            "eval_time": "30m",
                            "exp_samples": [{"labels": f'{name}{{job="zincati", stream="stable"}}', "value": count}],
                        }
                        for name, count in counts.items()
                    ),
                ],
            }
        ],
    }
    (tmp_path / "reported_test.yml").write_text(yaml.safe_dump(test))
    result = subprocess.run(
        [PROMTOOL, "test", "rules", "reported_test.yml"], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
