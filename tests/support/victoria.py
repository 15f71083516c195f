"""The bundle's scale-out topology (bundle/scale_out.py) on loopback with free ports, started and
stopped by PID: Prometheus shards in agent mode, VictoriaMetrics and vmalert from Debian's
`victoria-metrics` package, each with the flags and config the bundle generates plus what a
test needs to compare at once (fresh answers, quick flushes)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from local_exporter.bundle import scale_out
from local_exporter.bundle.config import BundleConfig
from tests.support.processes import LOOPBACK, free_port, running, wait_http
from tests.support.prometheus import PROMETHEUS, Prometheus

VICTORIA_METRICS = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"
VMALERT = shutil.which("vmalert") or "/usr/bin/vmalert"
READY_TIMEOUT = 20.0


@contextmanager
def running_victoria_metrics(directory: Path) -> Iterator[Prometheus]:
    """A single-node VictoriaMetrics; its query API is Prometheus', so `Prometheus` queries it."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [
        VICTORIA_METRICS,
        *scale_out.victoria_metrics_flags(listen=f"{LOOPBACK}:{port}", data=str(directory / "data"), retention="1d"),
        # Queries see the newest samples (by default the last 30 s are left out, as still filling)
        # and are not answered from a cache, so a comparison reads what was written.
        "-search.latencyOffset=0s",
        "-search.disableCache",
        "-loggerLevel=WARN",
    ]
    with running("victoria-metrics", args, directory) as child:
        url = f"http://{LOOPBACK}:{port}"
        wait_http(f"{url}/health", READY_TIMEOUT, watch=[child])
        yield Prometheus(url, child)


@contextmanager
def running_shard(directory: Path, config: Mapping[str, Any]) -> Iterator[Prometheus]:
    """A Prometheus shard in agent mode with `config` (scale_out.shard_config): it answers the
    targets API, not queries."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "prometheus.yml"
    path.write_text(json.dumps(config, indent=2))
    port = free_port()
    args = [
        PROMETHEUS,
        f"--config.file={path}",
        f"--storage.agent.path={directory / 'data'}",
        f"--web.listen-address={LOOPBACK}:{port}",
        "--log.level=warn",
        *scale_out.AGENT_FLAGS,
    ]
    with running("prometheus-shard", args, directory) as child:
        url = f"http://{LOOPBACK}:{port}"
        wait_http(f"{url}/-/ready", READY_TIMEOUT, watch=[child])
        yield Prometheus(url, child)


@contextmanager
def running_vmalert(
    directory: Path, config: BundleConfig, store: str, rule_files: Sequence[Path], notifier: str, cluster: str
) -> Iterator[str]:
    """vmalert as the bundle runs it (scale_out.vmalert_flags) on `rule_files`, against the store
    at `store`, notifying the Alertmanager at `notifier`; what it records reaches the store
    within a second."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [
        VMALERT,
        *scale_out.vmalert_flags(
            config,
            rules=[str(path) for path in rule_files],
            store=store,
            notifier=notifier,
            listen=f"{LOOPBACK}:{port}",
            cluster=cluster,
        ),
        "-remoteWrite.flushInterval=1s",
        "-loggerLevel=WARN",
    ]
    with running("vmalert", args, directory) as child:
        url = f"http://{LOOPBACK}:{port}"
        wait_http(f"{url}/health", READY_TIMEOUT, watch=[child])
        yield url
