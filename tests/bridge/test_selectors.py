"""A selector's lifecycle (selectors.py) and what a reload changes (reload.py): a source is
reopened only when a field it reads changed; the rest apply around the open source."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from local_exporter.bridge import config, reload
from local_exporter.bridge.app import BRIDGE, SELECTORS, make_app
from tests.support.bridges import sample

REQUESTS = "local_exporter_bridge_requests_total"


def _config(directory: Path, extra: str = "", *, name: str = "a", kind: str = "file", service: str = "") -> str:
    path = f"{directory}/a.prom" if kind == "file" else f"{directory}/a.sock"
    return f'{service}\n[bridge.selectors.{name}]\nkind = "{kind}"\npath = "{path}"\n{extra}'


async def _reload(client: TestClient, path: Path, text: str) -> str:
    path.write_text(text)
    async with client.post("/-/reload") as response:
        assert response.status == 200
        return await response.text()


async def _bridge(aiohttp_client, directory: Path, text: str) -> tuple[TestClient, CollectorRegistry, Path]:
    (directory / "a.prom").write_text("a 1\n")
    (directory / "b.prom").write_text("b 1\n")
    path = directory / "config.toml"
    path.write_text(text)
    registry = CollectorRegistry()
    return await aiohttp_client(make_app(config.load(path), registry, path, lifecycle=True)), registry, path


async def _scrape(client: TestClient, selector: str = "a") -> tuple[int, bytes]:
    async with client.get(f"/bridge?selector={selector}") as response:
        return response.status, await response.read()


@pytest.mark.parametrize(
    "extra",
    ["timeout = 2\n", "max_concurrency = 3\n", "coalesce = false\n", 'labels = { node = "h1" }\n'],
)
async def test_a_change_around_the_source_keeps_it_open_and_counting(
    aiohttp_client, short_dir: Path, extra: str
) -> None:
    client, registry, path = await _bridge(aiohttp_client, short_dir, _config(short_dir))
    source = client.app[SELECTORS].by_name["a"].source
    assert await _scrape(client) == (200, b"a 1\n")
    assert await _reload(client, path, _config(short_dir, extra)) == "config reloaded: 1 selector(s)\n"
    live = client.app[SELECTORS].by_name["a"]
    assert live.source is source
    assert live.config == config.load(path).selectors[0]  # the new settings apply
    status, body = await _scrape(client)
    assert status == 200
    assert body == (b'a{node="h1"} 1\n' if "labels" in extra else b"a 1\n")
    assert sample(registry, REQUESTS, selector="a", outcome="success") == 2


@pytest.mark.parametrize("extra", ["max_bytes = 1000\n", "max_age = 60\n"])
async def test_a_change_the_source_reads_reopens_it_and_keeps_counting(
    aiohttp_client, short_dir: Path, extra: str
) -> None:
    client, registry, path = await _bridge(aiohttp_client, short_dir, _config(short_dir))
    source = client.app[SELECTORS].by_name["a"].source
    assert await _scrape(client) == (200, b"a 1\n")
    await _reload(client, path, _config(short_dir, extra))
    assert client.app[SELECTORS].by_name["a"].source is not source
    assert await _scrape(client) == (200, b"a 1\n")
    assert sample(registry, REQUESTS, selector="a", outcome="success") == 2


async def test_a_new_kind_opens_a_new_source_with_new_counts(aiohttp_client, short_dir: Path) -> None:
    client, registry, path = await _bridge(aiohttp_client, short_dir, _config(short_dir))
    assert await _scrape(client) == (200, b"a 1\n")
    await _reload(client, path, _config(short_dir, kind="uds"))
    assert client.app[SELECTORS].by_name["a"].config.kind == "uds"
    assert (await _scrape(client))[0] == 503  # nothing listens on a.sock
    assert sample(registry, REQUESTS, selector="a", outcome="success") == 0
    assert sample(registry, REQUESTS, selector="a", outcome="unavailable") == 1


async def test_a_new_scrape_timeout_offset_applies_to_selectors_that_did_not_change(
    aiohttp_client, short_dir: Path
) -> None:
    client, _, path = await _bridge(aiohttp_client, short_dir, _config(short_dir, "timeout = 30\n"))
    headers = {"X-Prometheus-Scrape-Timeout-Seconds": "10"}
    async with client.get("/bridge?selector=a", headers=headers) as response:
        assert response.status == 200
    selector = client.app[SELECTORS].by_name["a"]
    assert selector.deadlines == {"10": 9.5}  # the default offset: 0.5 s
    await _reload(client, path, _config(short_dir, "timeout = 30\n", service="[service]\nscrape_timeout_offset = 2"))
    assert client.app[SELECTORS].by_name["a"] is selector and client.app[BRIDGE].timeout_offset == 2
    async with client.get("/bridge?selector=a", headers=headers) as response:
        assert response.status == 200
    assert selector.deadlines == {"10": 8.0}


def test_the_diff_names_each_selector_by_what_changed(tmp_path: Path) -> None:
    old = config.parse(
        "[bridge.selectors]\n"
        f'same = {{ kind = "file", path = "{tmp_path}/s" }}\n'
        f'around = {{ kind = "file", path = "{tmp_path}/r" }}\n'
        f'reads = {{ kind = "file", path = "{tmp_path}/o" }}\n'
        f'gone = {{ kind = "file", path = "{tmp_path}/g" }}\n'
    )
    new = config.parse(
        "[service]\nport = 9599\n[bridge.selectors]\n"
        f'same = {{ kind = "file", path = "{tmp_path}/s" }}\n'
        f'around = {{ kind = "file", path = "{tmp_path}/r", timeout = 1 }}\n'
        f'reads = {{ kind = "file", path = "{tmp_path}/other" }}\n'
        f'new = {{ kind = "uds", path = "{tmp_path}/n.sock" }}\n'
    )
    assert reload.diff(old, new) == reload.Changes(
        added=("new",),
        removed=("gone",),
        reconfigured=("around",),
        reopened=("reads",),
        restart_note="still listening on 0.0.0.0:9598: a new address or port takes a restart",
    )
    assert reload.diff(new, new) == reload.Changes(added=(), removed=(), reconfigured=(), reopened=())
