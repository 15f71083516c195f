"""Where the demo's series go and its rules run: one Prometheus, or (`--shards N`) the bundle's
scale-out topology: N Prometheus shards in agent mode splitting the fleet's targets, remote-writing
into VictoriaMetrics, where vmalert evaluates the rules (bundle/scale_out.py builds every flag
and config, as for the compose stack)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from local_exporter.bundle import scale_out
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.generate import VMALERT_ALERTS_PATH
from local_exporter.demo import servers

CLUSTER = "demo"
#: The scenario runs many times faster than real time: what the shards scrape reaches the
#: store within a second, vmalert's recorded series within a second, and the store answers
#: with its newest samples (it holds the last 30 s back by default, as possibly incomplete).
SEND_DEADLINE = "1s"
VMALERT_FLUSH = ("-remoteWrite.flushInterval=1s",)
VICTORIA_METRICS_FRESH = ("-search.latencyOffset=0s",)


@dataclass(frozen=True)
class Listen:
    address: str
    prometheus: int
    alertmanager: int
    victoria_metrics: int
    vmalert: int


@dataclass(frozen=True)
class Stores:
    """The servers started, in order (stop them in reverse), and where to query the series."""

    servers: list[servers.Server]
    query_url: str
    shards: int


def _scrape_configs(fleet_directory: Path) -> list[dict[str, Any]]:
    """The jobs the simulated fleet wrote for its bridges, airlock and release feeds."""
    written = yaml.safe_load((fleet_directory / "prometheus" / "prometheus.yml").read_text())
    jobs: list[dict[str, Any]] = written["scrape_configs"]
    return jobs


def _start(started: list[servers.Server], name: str, argv: list[str], url: str, log: Path) -> servers.Server:
    server = servers.start(name, argv, url, log)
    started.append(server)
    return server


def single(
    config: BundleConfig, fleet_directory: Path, directory: Path, listen: Listen, started: list[servers.Server]
) -> Stores:
    """One Prometheus scraping the fleet and evaluating the bundle's rules."""
    address = listen.address
    data: dict[str, Any] = {
        "global": {
            "scrape_interval": config.scrape_interval,
            "scrape_timeout": config.scrape_interval,
            "evaluation_interval": config.scrape_interval,
            "external_labels": {config.cluster_label: CLUSTER},
        },
        "rule_files": [str(path) for path in sorted((directory / "bundle" / "prometheus" / "rules").glob("*.yml"))],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"{address}:{listen.alertmanager}"]}]}]},
        "scrape_configs": _scrape_configs(fleet_directory),
    }
    path = directory / "prometheus.yml"
    path.write_text(json.dumps(data, indent=2))
    argv = [
        servers.PROMETHEUS,
        f"--config.file={path}",
        f"--storage.tsdb.path={directory / 'prometheus-data'}",
        f"--web.listen-address={address}:{listen.prometheus}",
        "--storage.tsdb.retention.time=1d",
        "--rules.alert.resend-delay=2s",
    ]
    url = f"http://{address}:{listen.prometheus}"
    _start(started, "Prometheus", argv, url, directory / "prometheus.log")
    return Stores(list(started), url, 0)


def sharded(
    config: BundleConfig,
    fleet_directory: Path,
    directory: Path,
    listen: Listen,
    shards: int,
    started: list[servers.Server],
) -> Stores:
    """VictoriaMetrics, then `shards` Prometheus shards writing into it, then vmalert."""
    address = listen.address
    store = f"http://{address}:{listen.victoria_metrics}"
    argv = [
        servers.VICTORIA_METRICS,
        *scale_out.victoria_metrics_flags(
            listen=f"{address}:{listen.victoria_metrics}", data=str(directory / "victoria-metrics-data"), retention="1d"
        ),
        *VICTORIA_METRICS_FRESH,
    ]
    _start(started, "VictoriaMetrics", argv, store, directory / "victoria-metrics.log")
    jobs = _scrape_configs(fleet_directory)
    for shard in range(shards):
        data = scale_out.shard_config(
            config,
            jobs,
            shard=shard,
            shards=shards,
            cluster=CLUSTER,
            write_url=f"{store}/api/v1/write",
            send_deadline=SEND_DEADLINE,
        )
        path = directory / f"prometheus-shard-{shard}.yml"
        path.write_text(json.dumps(data, indent=2))
        # Not vmalert's port, chosen but not bound until the shards run.
        port = servers.free_port(address, avoid=(listen.vmalert,))
        argv = [
            servers.PROMETHEUS,
            f"--config.file={path}",
            f"--storage.agent.path={directory / f'prometheus-shard-{shard}-data'}",
            f"--web.listen-address={address}:{port}",
            *scale_out.AGENT_FLAGS,
        ]
        _start(
            started,
            f"Prometheus shard {shard}",
            argv,
            f"http://{address}:{port}",
            directory / f"prometheus-shard-{shard}.log",
        )
    bundle = directory / "bundle"
    argv = [
        servers.VMALERT,
        *scale_out.vmalert_flags(
            config,
            rules=[str(bundle / "prometheus" / "rules" / "recording.yml"), str(bundle / VMALERT_ALERTS_PATH)],
            store=store,
            notifier=f"http://{address}:{listen.alertmanager}",
            listen=f"{address}:{listen.vmalert}",
            cluster=CLUSTER,
        ),
        *VMALERT_FLUSH,
    ]
    _start(started, "vmalert", argv, f"http://{address}:{listen.vmalert}", directory / "vmalert.log")
    return Stores(list(started), store, shards)
