"""The app's other endpoints: own metrics, health, readiness, landing page."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from local_exporter.bridge import metrics
from local_exporter.bridge.errors import OUTCOME_STATUS
from tests.support.bridges import bridge_app, open_selectors, sample

CONFIG = """
[bridge.selectors]
zincati = { kind = "uds", path = "/run/zincati/public/metrics.promsock" }
"a.file" = { kind = "file", path = "/run/x/metrics.prom" }
prombus = { kind = "dbus", destination = "com.github.lucab.Prombus", path = "/com/github/lucab/Prombus", method = "com.github.lucab.Prombus.Observable.PromMetrics" }
"""


@pytest.fixture
async def client(aiohttp_client) -> TestClient:
    registry = CollectorRegistry()
    client = await aiohttp_client(bridge_app(CONFIG, registry))
    client.registry = registry
    return client  # type: ignore[no-any-return]


async def test_selector_series_exist_from_start(client: TestClient) -> None:
    registry = client.registry  # type: ignore[attr-defined]
    for selector in ("zincati", "a.file", "prombus"):
        for outcome in OUTCOME_STATUS:
            assert sample(registry, metrics.REQUESTS_TOTAL, selector=selector, outcome=outcome) == 0
        assert sample(registry, f"{metrics.REQUEST_DURATION_SECONDS}_count", selector=selector) == 0
        assert sample(registry, metrics.IN_FLIGHT_REQUESTS, selector=selector) == 0
        assert sample(registry, metrics.LAST_SUCCESS_TIMESTAMP_SECONDS, selector=selector) == 0
    assert sample(registry, metrics.SELECTOR_INFO, selector="prombus", kind="dbus") == 1
    for reason in ("bad_request", "unknown_selector"):
        assert sample(registry, metrics.REJECTED_REQUESTS_TOTAL, reason=reason) == 0


async def test_metrics_endpoint_text_and_openmetrics(client: TestClient) -> None:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    names = {family.name for family in text_string_to_metric_families(await response.text())}
    assert {"local_exporter_build_info", "local_exporter_bridge_requests", "process_resident_memory_bytes"} <= names
    om = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["Content-Type"].startswith("application/openmetrics-text")
    assert (await om.text()).endswith("# EOF\n")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed")
async def test_promtool_check_metrics_is_clean(client: TestClient) -> None:
    await client.get("/bridge?selector=zincati")  # some non-zero series too
    await client.get("/bridge?selector=nope")
    body = await (await client.get("/metrics")).read()
    result = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")


async def test_health_and_readiness(client: TestClient) -> None:
    for path, text in (("/-/healthy", "Healthy.\n"), ("/-/ready", "Ready.\n")):
        response = await client.get(path)
        assert (response.status, await response.text()) == (200, text)


async def test_landing_page_lists_selectors_with_links(client: TestClient) -> None:
    response = await client.get("/")
    page = await response.text()
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    for name in ("zincati", "a.file", "prombus"):
        assert f'href="bridge?selector={name}"' in page
    assert "uds /run/zincati/public/metrics.promsock" in page
    assert 'href="metrics"' in page


async def test_wrong_method_is_405(client: TestClient) -> None:
    response = await client.post("/bridge?selector=zincati")
    assert response.status == 405


def test_metric_names_declared_once() -> None:
    # Every name the bridge registers comes from a module constant the bundle can import.
    declared = {value for key, value in vars(metrics).items() if key.isupper() and isinstance(value, str)}
    registry = CollectorRegistry()
    metrics.ExporterMetrics(registry, open_selectors(("s", "file")))
    own = {
        name
        for family in registry.collect()
        for name in [family.name + ("_total" if family.type == "counter" else "")]
        if name.startswith(metrics.NAMESPACE)
    }
    assert own and own <= declared, own - declared


def test_example_payload_is_shipped(zincati_payload: bytes) -> None:
    assert zincati_payload.startswith(b"# HELP process_start_time_seconds")
    assert (
        Path(__file__).parents[2].joinpath("local_exporter/agents/examples/zincati.prom").read_bytes()
        == zincati_payload
    )
