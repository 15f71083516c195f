"""A real Alertmanager for tests, fed the generated config, and a webhook that records what it sends."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from local_exporter.bundle import alertmanager
from local_exporter.bundle.config import BundleConfig, Receivers
from tests.support.processes import LOOPBACK, Child, free_port, running, wait_http

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / alertmanager.TEMPLATE_PATH
ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"
READY_TIMEOUT = 20.0


class Webhook:
    """An HTTP server on loopback that records every POSTed notification by path."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    outer.received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.url = f"http://{LOOPBACK}:{self.server.server_address[1]}"

    def alertnames(self, path: str) -> set[str]:
        with self.lock:
            return {a["labels"]["alertname"] for p, n in self.received if p == path for a in n["alerts"]}

    def alerts(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [a for p, n in self.received if p == path for a in n["alerts"]]


@contextmanager
def serving_webhook() -> Iterator[Webhook]:
    hook = Webhook()
    thread = threading.Thread(target=hook.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        hook.server.shutdown()
        hook.server.server_close()
        thread.join(5)


def config_for(webhook: Webhook, config: BundleConfig | None = None) -> dict[str, Any]:
    """The generated config, with receivers pointing at the test's webhook, no group_wait or group_interval (the
    notification comes at once) and no maintenance window (the test may run inside it)."""
    receivers = Receivers(
        pager_url=f"{webhook.url}/pager", ticket_url=f"{webhook.url}/ticket", heartbeat_url=f"{webhook.url}/heartbeat"
    )
    data = alertmanager.config_data(replace(config or BundleConfig(), receivers=receivers))
    data["route"]["group_wait"] = "0s"
    data["route"]["group_interval"] = "1s"
    for route in data["route"]["routes"]:
        route.pop("mute_time_intervals", None)
    return data


@contextmanager
def running_alertmanager(
    tmp_path: Path, webhook: Webhook, bundle: BundleConfig | None = None
) -> Iterator[tuple[str, Child]]:
    """Alertmanager on loopback with the generated config (receivers: `webhook`); stopped by PID."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "alertmanager.yml"
    config.write_text(json.dumps(config_for(webhook, bundle), indent=2))
    (tmp_path / "templates").mkdir()
    shutil.copy(TEMPLATES, tmp_path / "templates")
    with running_alertmanager_file(config, tmp_path) as running_one:
        yield running_one


@contextmanager
def running_alertmanager_file(config: Path, directory: Path) -> Iterator[tuple[str, Child]]:
    """Alertmanager on loopback with the config file `config` as it is (its templates beside it),
    its data and logs in `directory`; stopped by PID."""
    (directory / "data").mkdir(parents=True)
    port = free_port()
    args = [
        ALERTMANAGER,
        f"--config.file={config}",
        f"--storage.path={directory / 'data'}",
        f"--web.listen-address={LOOPBACK}:{port}",
        "--cluster.listen-address=",
        "--log.level=debug",
    ]
    url = f"http://{LOOPBACK}:{port}"
    with running("alertmanager", args, directory) as child:
        wait_http(f"{url}/-/ready", READY_TIMEOUT, watch=[child])
        yield url, child
