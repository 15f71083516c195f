"""Every alert that names a host works for a Flatcar host: with the default config (phases
inferred where a host does not report), Flatcar hosts in the `update_engine` job, reporting
through their os_update selector only (no Zincati family), fire the per-host alerts from what
they report. promtool unit tests of the generated rules, each alert firing and silent."""

from __future__ import annotations

from pathlib import Path

import yaml

from local_exporter.agents.os_update import version_rank
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.generate import write
from tests.support.prometheus import fired, promtool_test

CONFIG = BundleConfig()
HOURS = 3
STEPS = f"1+0x{HOURS * 60}"
WHERE = 'os="flatcar", os_version="4152.2.0", stream="stable"'
RANK = version_rank("4152.2.0")


def _flatcar(name: str, phase: str, **extra: str) -> list[dict[str, str]]:
    """A Flatcar host reporting `phase` since the start (and `extra` families), as its bridge's
    os_update selector serves it (agents/os_update.py)."""
    host = f'job="update_engine", instance="{name}"'
    series = [
        {"series": f"up{{{host}}}", "values": STEPS},
        {"series": f'os_update_info{{{host}, agent="update_engine", {WHERE}}}', "values": STEPS},
        {"series": f'os_update_phase{{{host}, phase="{phase}", {WHERE}}}', "values": STEPS},
        {
            "series": f'os_update_phase_start_timestamp_seconds{{{host}, phase="{phase}"}}',
            "values": f"0+0x{HOURS * 60}",
        },
        {
            "series": f'os_update_source_up{{{host}, source="agent"}}',
            "values": "0+0x180" if phase == "agent_down" else STEPS,
        },
        {"series": f"os_update_boot_timestamp_seconds{{{host}, {WHERE}}}", "values": f"0+0x{HOURS * 60}"},
        {"series": f"os_update_booted_version_rank{{{host}, {WHERE}}}", "values": f"{RANK}+0x{HOURS * 60}"},
    ]
    for family, matchers in extra.items():
        series.append({"series": f"{family}{{{host}, {matchers}}}", "values": STEPS})
    return series


def test_the_per_host_alerts_fire_for_flatcar_hosts(tmp_path: Path) -> None:
    write(tmp_path, CONFIG)
    rule_files = ["prometheus/rules/recording.yml", "prometheus/rules/alerts.yml"]
    loaded = yaml.safe_load((tmp_path / rule_files[1]).read_text())
    alerts = {rule["alert"]: rule for group in loaded["groups"] for rule in group["rules"]}
    series = [
        *_flatcar("f-idle", "idle"),
        *_flatcar("f-down", "agent_down"),
        *_flatcar("f-checks", "failing", os_update_failure_info='kind="update_check", os="flatcar"'),
        *_flatcar("f-deploy", "failing", os_update_failure_info='kind="deploy", os="flatcar"'),
        *_flatcar("f-disabled", "updates_disabled"),
        *_flatcar("f-staged", "staged"),
        # Staged as long, but waiting for locksmith's etcd lock, or for its reboot window.
        *_flatcar("f-waiting", "staged", os_update_waiting_info=f'reason="reboot_lock", {WHERE}'),
        *_flatcar("f-window", "staged", os_update_waiting_info=f'reason="maintenance_window", {WHERE}'),
    ]
    firing = {
        "AgentDown": [("f-down", "")],
        "ChecksFailing": [("f-checks", "100%")],
        "DeployFailing": [("f-deploy", "")],
        "RebootPending": [("f-staged", "3h 0m 0s")],
        "UpdatesDisabled": [("f-disabled", "")],
    }
    prefix = CONFIG.alert_prefix
    cases = []
    for name, hosts in firing.items():
        alert = alerts[prefix + name]
        expected = [fired(alert, host, value, job="update_engine") for host, value in hosts]
        cases.append({"alertname": prefix + name, "eval_time": f"{HOURS}h", "exp_alerts": expected})
        cases.append({"alertname": prefix + name, "eval_time": "5m", "exp_alerts": []})
    test = {
        "rule_files": rule_files,
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": cases}],
    }
    promtool_test(tmp_path, "flatcar_test.yml", test)
