"""A real Prometheus for end-to-end tests: config writer, process, and HTTP API queries.

The config is written as JSON, which YAML reads as it is. Prometheus 2.42 takes its first
scrape ~5 s after start (its target-sync tick), so every query polls with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.processes import LOOPBACK, Child, free_port, http_get, poll, running, wait_http

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
# Time until Prometheus is up and has scraped; its first scrape alone comes ~5 s after start.
READY_TIMEOUT = 15.0
QUERY_TIMEOUT = 25.0


def bridge_job(
    name: str, bridge: str, selector: str, *, scrape_interval: str = "1s", scrape_timeout: str = "1s"
) -> dict[str, Any]:
    """The multi-target pattern: `/bridge?selector=NAME` on the bridge, one job per selector."""
    return {
        "job_name": name,
        "metrics_path": "/bridge",
        "params": {"selector": [selector]},
        "scrape_interval": scrape_interval,
        "scrape_timeout": scrape_timeout,
        "static_configs": [{"targets": [bridge]}],
    }


def metrics_job(name: str, target: str) -> dict[str, Any]:
    return {"job_name": name, "metrics_path": "/metrics", "static_configs": [{"targets": [target]}]}


def config_text(
    jobs: Sequence[dict[str, Any]],
    rule_files: Sequence[Path] = (),
    alertmanagers: Sequence[str] = (),
    external_labels: Mapping[str, str] | None = None,
    remote_write: Sequence[str] = (),
) -> str:
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": list(jobs),
    }
    if external_labels:
        config["global"]["external_labels"] = dict(external_labels)
    if remote_write:
        # Sent within a second: the store's answers are compared with a Prometheus' moments later.
        queue = {"batch_send_deadline": "1s"}
        config["remote_write"] = [{"url": url, "queue_config": queue} for url in remote_write]
    if rule_files:
        config["rule_files"] = [str(path) for path in rule_files]
    if alertmanagers:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]}
    return json.dumps(config, indent=2)


Sample = dict[str, Any]


@dataclass
class Prometheus:
    url: str
    child: Child
    queries: list[str] = field(default_factory=list)

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        """The instant vector for `promql` now, or at Unix time `at` (raises on an API error).
        VictoriaMetrics answers the same API (tests/support/victoria.py)."""
        self.queries.append(promql)
        params = {"query": promql, **({"time": f"{at:.3f}"} if at is not None else {})}
        answer = http_get(f"{self.url}/api/v1/query?" + urllib.parse.urlencode(params))
        data = json.loads(answer.body)
        if answer.status != 200 or data.get("status") != "success":
            raise AssertionError(f"query {promql!r}: HTTP {answer.status}: {answer.text}")
        result: list[Sample] = data["data"]["result"]
        return result

    def query_range(self, promql: str, seconds: float, step: float = 1.0) -> list[Sample]:
        """The range vector for `promql` over the last `seconds` (raises on an API error)."""
        self.queries.append(promql)
        end = time.time()
        params = {"query": promql, "start": f"{end - seconds:.3f}", "end": f"{end:.3f}", "step": str(step)}
        answer = http_get(f"{self.url}/api/v1/query_range?" + urllib.parse.urlencode(params))
        data = json.loads(answer.body)
        if answer.status != 200 or data.get("status") != "success":
            raise AssertionError(f"query {promql!r}: HTTP {answer.status}: {answer.text}")
        result: list[Sample] = data["data"]["result"]
        return result

    def wait_for(
        self, promql: str, accept: Callable[[list[Sample]], bool] = bool, timeout: float = QUERY_TIMEOUT
    ) -> list[Sample]:
        """Poll `promql` until `accept(result)`; fail after `timeout` with the last result."""
        last: list[list[Sample]] = [[]]

        def attempt() -> list[Sample] | None:
            last[0] = self.query(promql)
            return last[0] if accept(last[0]) else None

        try:
            return poll(f"Prometheus query {promql!r}", attempt, timeout, watch=[self.child])
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last result: {last[0]}") from None

    def targets(self) -> list[dict[str, Any]]:
        answer = http_get(f"{self.url}/api/v1/targets?state=active")
        active: list[dict[str, Any]] = json.loads(answer.body)["data"]["activeTargets"]
        return active


def create_blocks(om: Path, data: Path) -> None:
    """`promtool tsdb create-blocks-from openmetrics OM DATA`, failing with promtool's output."""
    created = subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(om), str(data)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr + created.stdout


def value(sample: Sample) -> float:
    return float(sample["value"][1])


@contextlib.contextmanager
def running_prometheus(
    directory: Path,
    jobs: Sequence[dict[str, Any]],
    *,
    retention: str = "1h",
    flags: Sequence[str] = (),
    rule_files: Sequence[Path] = (),
    alertmanagers: Sequence[str] = (),
    external_labels: Mapping[str, str] | None = None,
    remote_write: Sequence[str] = (),
) -> Iterator[Prometheus]:
    """Prometheus on 127.0.0.1 with `jobs`, its data in `directory`; stopped by PID at exit.

    Backfilled history older than `retention` is deleted at start: raise it for long histories.
    """
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "prometheus.yml"
    config.write_text(config_text(jobs, rule_files, alertmanagers, external_labels, remote_write))
    port = free_port()
    args = [
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address={LOOPBACK}:{port}",
        f"--storage.tsdb.retention.time={retention}",
        "--rules.alert.resend-delay=1s",
        "--log.level=warn",
        *flags,
    ]
    with running("prometheus", args, directory) as child:
        url = f"http://{LOOPBACK}:{port}"
        wait_http(f"{url}/-/ready", READY_TIMEOUT, watch=[child])
        yield Prometheus(url, child)


def fired(alert: dict[str, Any], instance: str, value: str = "", **labels: str) -> dict[str, Any]:
    """An alert of a generated rule file as promtool expects it firing for `instance`: its
    labels, the host's (`job` zincati unless given) and its annotations filled in, `value` for
    `{{ $value ... }}` (the value is formatted by promtool's template)."""
    annotations = {
        key: text.replace("{{ $labels.instance }}", instance)
        .replace("{{ $value | humanizeDuration }}", value)
        .replace("{{ $value | humanizePercentage }}", value)
        for key, text in alert["annotations"].items()
    }
    assert not any("{{" in text for text in annotations.values()), annotations
    return {
        "exp_labels": {**alert["labels"], "job": "zincati", **labels, "instance": instance},
        "exp_annotations": annotations,
    }


def promtool_test(directory: Path, name: str, test: dict[str, Any]) -> None:
    """Write the promtool rule test `test` as `directory/name` and run it: it must pass."""
    (directory / name).write_text(yaml.safe_dump(test))
    result = subprocess.run(
        [PROMTOOL, "test", "rules", name], capture_output=True, text=True, cwd=directory, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
