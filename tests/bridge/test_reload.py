"""Reloading the config: POST /-/reload and SIGHUP (a real `serve` process). A bad config is
refused whole and the old one keeps serving; a good one takes effect for new scrapes while
scrapes in flight finish; the reload gauges say how it went."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from local_exporter.bridge import config
from local_exporter.bridge.app import make_app
from tests.support.bridges import sample
from tests.support.processes import LOOPBACK, free_port, http_get, local_exporter_args, python_env, running, wait_http
from tests.support.unix_servers import unix_server

SUCCESSFUL = "local_exporter_config_last_reload_successful"
SUCCESS_TIME = "local_exporter_config_last_reload_success_timestamp_seconds"
REQUESTS = "local_exporter_bridge_requests_total"


def _config(directory: Path, *selectors: str, service: str = "") -> str:
    lines = [service, "[bridge.selectors]"]
    lines += [f'{name} = {{ kind = "file", path = "{directory}/{name}.prom" }}' for name in selectors]
    return "\n".join(lines) + "\n"


async def _bridge(aiohttp_client, directory: Path, text: str) -> tuple[TestClient, CollectorRegistry, Path]:
    for name in ("a", "b", "c"):
        (directory / f"{name}.prom").write_text(f"{name} 1\n")
    path = directory / "config.toml"
    path.write_text(text)
    registry = CollectorRegistry()
    client = await aiohttp_client(make_app(config.load(path), registry, path, lifecycle=True))
    return client, registry, path


async def _status(client: TestClient, selector: str) -> int:
    async with client.get(f"/bridge?selector={selector}") as response:
        return response.status


async def test_a_reload_adds_and_removes_selectors_and_keeps_the_counts_of_the_rest(
    aiohttp_client, short_dir: Path
) -> None:
    client, registry, path = await _bridge(aiohttp_client, short_dir, _config(short_dir, "a", "b"))
    assert await _status(client, "a") == 200 and await _status(client, "c") == 404
    before = sample(registry, SUCCESS_TIME)
    path.write_text(_config(short_dir, "a", "c"))
    async with client.post("/-/reload") as response:
        assert response.status == 200
        assert await response.text() == "config reloaded: 2 selector(s)\n"
    assert await _status(client, "a") == 200 and await _status(client, "c") == 200
    assert await _status(client, "b") == 404
    assert sample(registry, REQUESTS, selector="a", outcome="success") == 2  # kept counting
    assert registry.get_sample_value(REQUESTS, {"selector": "b", "outcome": "success"}) is None
    assert sample(registry, SUCCESSFUL) == 1 and sample(registry, SUCCESS_TIME) >= before


async def test_a_bad_config_is_refused_and_the_old_one_keeps_serving(aiohttp_client, short_dir: Path) -> None:
    client, registry, path = await _bridge(aiohttp_client, short_dir, _config(short_dir, "a"))
    good_time = sample(registry, SUCCESS_TIME)
    path.write_text(_config(short_dir, "a") + 'b = { kind = "file", path = "relative.prom" }\n')
    async with client.post("/-/reload") as response:
        assert response.status == 500
        reason = await response.text()
    assert reason.startswith("config reload failed, still serving the previous config: ")
    assert "config.toml:4: bridge.selectors.b.path: must be an absolute path" in reason
    assert await _status(client, "a") == 200 and await _status(client, "b") == 404
    assert sample(registry, SUCCESSFUL) == 0 and sample(registry, SUCCESS_TIME) == good_time
    path.write_text(_config(short_dir, "a", "b"))
    async with client.post("/-/reload") as response:
        assert response.status == 200
    assert sample(registry, SUCCESSFUL) == 1 and await _status(client, "b") == 200


async def test_a_scrape_in_flight_finishes_on_the_selector_a_reload_removed(aiohttp_client, short_dir: Path) -> None:
    socket_path = short_dir / "s.sock"
    text = _config(short_dir, "a") + f'slow = {{ kind = "uds", path = "{socket_path}" }}\n'
    client, _, path = await _bridge(aiohttp_client, short_dir, text)

    async def late(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.5)
        writer.write(b"slow 1\n")
        await writer.drain()

    async with unix_server(socket_path, late) as server:
        scrape = asyncio.ensure_future(client.get("/bridge?selector=slow"))
        deadline = time.monotonic() + 5
        while server.accepted == 0:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        path.write_text(_config(short_dir, "a"))
        async with client.post("/-/reload") as response:
            assert response.status == 200
        assert await _status(client, "slow") == 404  # new scrapes see the new config
        response = await scrape
        assert response.status == 200 and await response.read() == b"slow 1\n"
        response.release()


async def test_a_new_address_is_reported_as_needing_a_restart(aiohttp_client, short_dir: Path) -> None:
    client, _, path = await _bridge(aiohttp_client, short_dir, _config(short_dir, "a"))
    path.write_text(_config(short_dir, "a", service="[service]\nport = 9599\n"))
    async with client.post("/-/reload") as response:
        assert response.status == 200
        assert "still listening on 0.0.0.0:9598: a new address or port takes a restart" in await response.text()


async def test_without_a_file_there_is_nothing_to_reload(aiohttp_client, short_dir: Path) -> None:
    (short_dir / "a.prom").write_text("a 1\n")
    client = await aiohttp_client(make_app(config.parse(_config(short_dir, "a")), lifecycle=True))
    async with client.post("/-/reload") as response:
        assert response.status == 500
        assert "no config file to reload" in await response.text()
    async with client.get("/-/reload") as response:
        assert response.status == 405


def test_sighup_reloads_a_running_serve(tmp_path: Path) -> None:
    port = free_port()
    for name in ("a", "b"):
        (tmp_path / f"{name}.prom").write_text(f"{name} 1\n")
    service = f'[service]\naddress = "{LOOPBACK}"\nport = {port}\n'
    path = tmp_path / "config.toml"
    path.write_text(_config(tmp_path, "a", service=service))
    base = f"http://{LOOPBACK}:{port}"
    with running("serve", local_exporter_args("serve", "-c", str(path)), tmp_path, env=python_env()) as child:
        wait_http(f"{base}/-/ready", 20, watch=[child])
        assert http_get(f"{base}/bridge?selector=b").status == 404
        path.write_text(_config(tmp_path, "a", "b", service=service))
        child.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while http_get(f"{base}/bridge?selector=b").status != 200:
            assert time.monotonic() < deadline, "SIGHUP did not reload"
            time.sleep(0.1)
        assert "local_exporter_config_last_reload_successful 1.0" in http_get(f"{base}/metrics").text


@pytest.mark.parametrize("enabled", [False, True])
def test_post_reload_needs_the_lifecycle_flag_and_sighup_does_not(tmp_path: Path, enabled: bool) -> None:
    port = free_port()
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.prom").write_text(f"{name} 1\n")
    service = f'[service]\naddress = "{LOOPBACK}"\nport = {port}\n'
    path = tmp_path / "config.toml"
    path.write_text(_config(tmp_path, "a", service=service))
    base = f"http://{LOOPBACK}:{port}"
    args = local_exporter_args("serve", "-c", str(path), *(["--web.enable-lifecycle"] if enabled else []))
    with running("serve", args, tmp_path, env=python_env()) as child:
        wait_http(f"{base}/-/ready", 20, watch=[child])
        path.write_text(_config(tmp_path, "a", "b", service=service))
        answer = http_get(f"{base}/-/reload", method="POST")
        if enabled:
            assert answer.status == 200 and answer.text.startswith("config reloaded: 2 selector(s)"), answer.text
            assert http_get(f"{base}/bridge?selector=b").status == 200
        else:
            assert answer.status == 403
            assert answer.text == (
                "lifecycle endpoints are off: start serve with --web.enable-lifecycle, or send SIGHUP\n"
            )
            assert http_get(f"{base}/bridge?selector=b").status == 404
            metrics = http_get(f"{base}/metrics").text
            assert 'local_exporter_bridge_rejected_requests_total{reason="lifecycle_disabled"} 1.0' in metrics
        # SIGHUP reloads either way.
        path.write_text(_config(tmp_path, "a", "b", "c", service=service))
        child.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while http_get(f"{base}/bridge?selector=c").status != 200:
            assert time.monotonic() < deadline, "SIGHUP did not reload"
            time.sleep(0.1)
