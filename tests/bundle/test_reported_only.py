"""`infer_phases = false`: where every host reports its own phase, nothing is inferred (a host
that exposes Zincati's socket alone gets no phase) and nothing is recorded per host: the
counts per phase map the reported phases, the host dashboard maps one host's at query time,
and the per-host alerts read what the hosts report. promtool unit tests on rules generated
with that config, each alert firing and silent."""

from __future__ import annotations

from pathlib import Path

import yaml

from local_exporter.agents import os_update
from local_exporter.agents.os_update import version_rank
from local_exporter.bundle import rules
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.dashboards import common, host
from local_exporter.bundle.generate import write
from local_exporter.bundle.promql import metric_names
from tests.support.prometheus import fired, promtool_test

CONFIG = BundleConfig(infer_phases=False)
FCOS, FLATCAR = "fedora-coreos", "flatcar"
REPORTED = {os_update.PHASE, os_update.WAITING, rules.OWN_PHASES, rules.NEWEST}


VERSIONS: dict[str, str] = {}


def _host(name: str, version: str, started: int, phase: str | None, os: str = FCOS) -> list[dict[str, str]]:
    """A host on `version` since `started`, reporting `phase` (None: Zincati's socket alone);
    a Flatcar host (`os`) is in the update_engine job and has no Zincati families."""
    VERSIONS[name] = version
    job = "zincati" if os == FCOS else "update_engine"
    where = f'os="{os}", stream="stable", os_version="{version}"'
    series = [{"series": f'up{{job="{job}", instance="{name}"}}', "values": "1+0x30"}]
    if os == FCOS:
        series += [
            {
                "series": f'zincati_identity_os_info{{job="zincati", instance="{name}", stream="stable", '
                f'os_version="{version}", basearch="x86_64", platform="metal"}}',
                "values": "1+0x30",
            },
            {"series": f'process_start_time_seconds{{job="zincati", instance="{name}"}}', "values": f"{started}+0x30"},
        ]
    if phase is not None:
        series += [
            {
                "series": f'os_update_info{{job="{job}", instance="{name}", agent="a", {where}}}',
                "values": "1+0x30",
            },
            {
                "series": f'os_update_phase{{job="{job}", instance="{name}", phase="{phase}", {where}}}',
                "values": "1+0x30",
            },
            {
                "series": f'os_update_boot_timestamp_seconds{{job="{job}", instance="{name}", {where}}}',
                "values": f"{started}+0x30",
            },
            {
                "series": f'os_update_booted_version_rank{{job="{job}", instance="{name}", {where}}}',
                "values": f"{version_rank(version)}+0x30",
            },
        ]
    return series


def _waiting(name: str) -> dict[str, str]:
    return {
        "series": f'os_update_waiting_info{{job="zincati", instance="{name}", reason="reboot_lock", '
        f'os="{FCOS}", stream="stable", os_version="{VERSIONS[name]}"}}',
        "values": "1+0x30",
    }


def _on_the_host_dashboard(name: str, phase: str | None) -> dict[str, object]:
    """The host dashboard's phase of host `name`: the number of `phase`, or nothing."""
    matchers = f'instance="{name}"'
    expr = f"max({host.phase_number(CONFIG, matchers)})"
    samples = [] if phase is None else [{"labels": "{}", "value": common.phase_code(phase)}]
    return {"expr": expr, "eval_time": "30m", "exp_samples": samples}


def _counted(name: str, labels: str, count: int, job: str = "zincati") -> dict[str, object]:
    return {
        "expr": f"{name}{{{labels}}}",
        "eval_time": "30m",
        "exp_samples": [{"labels": f'{name}{{job="{job}", {labels}}}', "value": count}],
    }


def test_the_phase_is_the_reported_one_and_nothing_is_inferred(tmp_path: Path) -> None:
    write(tmp_path, CONFIG)
    recorded = {r["record"]: r["expr"] for g in rules.recording_rules(CONFIG) for r in g["rules"]}
    assert rules.PHASE not in recorded, "nothing is recorded per host"
    # The inference reads Zincati's counters and `up`; the phase counts read only what hosts
    # report (their phase, or why a staged one waits), and the newest version.
    for name in (rules.OWN_PHASES, rules.HOSTS_BY_PHASE_VERSION):
        assert metric_names(recorded[name]) <= REPORTED, recorded[name]
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
        _waiting("h-waiting"),
        # Every staged host of 40.2 waits: no staged count of 40.2 (not a zero, not negative).
        *_host("h-waiting-newest", "40.2", 600, "staged"),
        _waiting("h-waiting-newest"),
        # A bridge that does not answer reports nothing: no phase (the bridge alerts page).
        {"series": 'up{job="zincati", instance="h-bridge-gone"}', "values": "0+0x30"},
        # Zincati's socket alone, its counters moving: no phase without the inference.
        *_host("h-zincati-only", "40.1", 0, None),
        # A Flatcar host, idle on its stream's only (so newest) version: a stream of its own,
        # although both are called "stable".
        *_host("h-flatcar", "4152.2.0", 300, "idle", os=FLATCAR),
        {
            "series": 'zincati_cincinnati_update_checks_errors_total{job="zincati", instance="h-zincati-only", kind="x"}',
            "values": "0+1x30",
        },
    ]
    expected = {
        "h-idle-newest": "up_to_date",
        "h-idle-behind": "checking",
        "h-dead-end": "checking",
        "h-failing": "error",
        "h-down": "down",
        "h-disabled": "disabled",
        "h-downloading": "staging",
        "h-rebooted": "rebooted",
        "h-rebooting": "staged",
        "h-staged": "staged",
        "h-waiting": "waiting_lock",
        "h-waiting-newest": "waiting_lock",
        "h-bridge-gone": None,
        "h-zincati-only": None,
        "h-flatcar": "up_to_date",
    }
    per_phase = {"checking": 2, "staged": 2, "waiting_lock": 2, "up_to_date": 1, "error": 1}
    newest = f'os="{FCOS}", stream="stable", os_version="40.2"'
    test = {
        "rule_files": ["prometheus/rules/recording.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    *(_on_the_host_dashboard(name, phase) for name, phase in expected.items()),
                    # Every reporting host, counted from its own report (not Zincati's identity).
                    _counted(rules.HOSTS_BY_STREAM, f'os="{FCOS}", stream="stable"', 12),
                    _counted(rules.HOSTS_ON_NEWEST, f'os="{FCOS}", stream="stable"', 3),
                    _counted(rules.HOSTS_BY_STREAM, f'os="{FLATCAR}", stream="stable"', 1, "update_engine"),
                    _counted(rules.HOSTS_ON_NEWEST, f'os="{FLATCAR}", stream="stable"', 1, "update_engine"),
                    _counted(rules.HOSTS_BY_PHASE, f'os="{FLATCAR}", phase="up_to_date"', 1, "update_engine"),
                    *(_counted(rules.HOSTS_BY_PHASE, f'os="{FCOS}", phase="{p}"', n) for p, n in per_phase.items()),
                    # Every reporting host counted once, of either OS; the other two have no phase.
                    {
                        "expr": f"sum({rules.HOSTS_BY_PHASE})",
                        "eval_time": "30m",
                        "exp_samples": [{"labels": "{}", "value": 13}],
                    },
                    *(
                        _counted(rules.HOSTS_BY_PHASE_VERSION, f'phase="{p}", {newest}', 1)
                        for p in ("up_to_date", "rebooted", "waiting_lock")
                    ),
                    {
                        "expr": f'{rules.HOSTS_BY_PHASE_VERSION}{{phase="staged", {newest}}}',
                        "eval_time": "30m",
                        "exp_samples": [],
                    },
                ],
            }
        ],
    }
    promtool_test(tmp_path, "reported_test.yml", test)


HOURS = 3
STEPS = f"1+0x{HOURS * 60}"


def _reported(name: str, phase: str, **extra: str) -> list[dict[str, str]]:
    """A host that reports `phase` (since the start) for the whole test, and `extra` families."""
    series = [
        {"series": f'up{{job="zincati", instance="{name}"}}', "values": STEPS},
        {"series": f'os_update_phase{{job="zincati", instance="{name}", phase="{phase}"}}', "values": STEPS},
        {
            "series": f'os_update_phase_start_timestamp_seconds{{job="zincati", instance="{name}", phase="{phase}"}}',
            "values": f"0+0x{HOURS * 60}",
        },
    ]
    for family, matchers in extra.items():
        series.append({"series": f'{family}{{job="zincati", instance="{name}", {matchers}}}', "values": STEPS})
    return series


def test_the_alerts_read_what_hosts_report(tmp_path: Path) -> None:
    write(tmp_path, CONFIG)
    rule_files = ["prometheus/rules/recording.yml", "prometheus/rules/alerts.yml"]
    loaded = yaml.safe_load((tmp_path / rule_files[1]).read_text())
    alerts = {rule["alert"]: rule for group in loaded["groups"] for rule in group["rules"]}
    prefix = CONFIG.alert_prefix
    series = [
        *_reported("h-idle", "idle"),
        *_reported("h-down", "agent_down"),
        *_reported("h-checks", "failing", os_update_failure_info='kind="update_check"'),
        *_reported("h-deploy", "failing", os_update_failure_info='kind="deploy"'),
        *_reported("h-staged", "staged"),
        # Staged as long, but throttled by a full lock, or a periodic host within its week.
        *_reported("h-waiting", "staged", os_update_waiting_info='reason="reboot_lock"'),
        *_reported("h-periodic", "staged", zincati_updates_strategy_mode='strategy="periodic"'),
        *_reported("h-dead-end", "dead_end"),
        *_reported("h-disabled", "updates_disabled"),
        {"series": 'up{job="zincati", instance="h-bridge-gone"}', "values": f"0+0x{HOURS * 60}"},
    ]
    firing = {
        "AgentDown": ["h-down"],
        "ChecksFailing": ["h-checks"],
        "RebootPending": ["h-staged"],
        "BootedDeadEnd": ["h-dead-end"],
        "UpdatesDisabled": ["h-disabled"],
    }
    # Each one fires for its hosts alone, and not before its `for` has passed.
    cases = []
    for name, hosts in firing.items():
        alert = alerts[prefix + name]
        value = "3h 0m 0s" if name == "RebootPending" else ""
        cases.append(
            {
                "alertname": prefix + name,
                "eval_time": f"{HOURS}h",
                "exp_alerts": [fired(alert, h, value) for h in hosts],
            }
        )
        cases.append({"alertname": prefix + name, "eval_time": "5m", "exp_alerts": []})
    test = {
        "rule_files": rule_files,
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": cases}],
    }
    promtool_test(tmp_path, "alerts_test.yml", test)
    # Nothing here reads a gauge of every host to filter it by value, but `up` in the phase rule.
    for name in firing:
        assert "==" not in alerts[prefix + name]["expr"], name
