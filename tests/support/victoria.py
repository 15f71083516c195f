"""VictoriaMetrics and vmalert from Debian's `victoria-metrics` package, on loopback with free
ports, started and stopped by PID: the store a sharded scrape writes into, and the ruler that
evaluates the bundle's rules against it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.support.processes import LOOPBACK, free_port, running, wait_http
from tests.support.prometheus import Prometheus

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
        f"-storageDataPath={directory / 'data'}",
        f"-httpListenAddr={LOOPBACK}:{port}",
        "-retentionPeriod=1d",
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
def running_vmalert(
    directory: Path, store: str, rule_files: Sequence[Path], notifier: str | None = None
) -> Iterator[str]:
    """vmalert evaluating `rule_files` against the store at `store`, writing what it records
    back there (and alerts' state), notifying `notifier` (an Alertmanager URL) if given."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [
        VMALERT,
        *(f"-rule={path}" for path in rule_files),
        f"-datasource.url={store}",
        f"-remoteWrite.url={store}",
        f"-remoteRead.url={store}",
        "-remoteWrite.flushInterval=1s",
        "-evaluationInterval=1s",
        f"-httpListenAddr={LOOPBACK}:{port}",
        "-loggerLevel=WARN",
        *([f"-notifier.url={notifier}"] if notifier else []),
    ]
    with running("vmalert", args, directory) as child:
        url = f"http://{LOOPBACK}:{port}"
        wait_http(f"{url}/health", READY_TIMEOUT, watch=[child])
        yield url
