"""Grafana's provisioning files: the data source the dashboards expect, and a read-only provider
for the dashboards directory."""

from __future__ import annotations

from pathlib import Path

import yaml

from local_exporter.bundle import dashboards, provisioning
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.dashboards.style import DATASOURCE

ROOT = Path(__file__).resolve().parents[2]
CONFIG = BundleConfig()


def _load(relative: str) -> dict:
    data: dict = yaml.safe_load((ROOT / relative).read_text())
    return data


def test_the_data_source_is_the_default_prometheus_the_dashboards_read() -> None:
    (source,) = _load(provisioning.DATASOURCE_PATH)["datasources"]
    assert source["type"] == DATASOURCE["type"] == "prometheus"
    assert source["isDefault"] is True and source["editable"] is False
    assert source["jsonData"]["timeInterval"] == CONFIG.scrape_interval
    assert source["url"] == provisioning.PROMETHEUS_URL


def test_the_provider_loads_the_dashboards_read_only_into_one_folder() -> None:
    (provider,) = _load(provisioning.DASHBOARDS_PATH)["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == provisioning.DASHBOARDS_MOUNT
    assert provider["allowUiUpdates"] is False and provider["disableDeletion"] is True
    assert provider["folder"] == CONFIG.dashboard_folder


def test_every_dashboard_picks_its_data_source_from_the_variable() -> None:
    for name in dashboards.DASHBOARDS:
        text = (ROOT / dashboards.DIRECTORY / name).read_text()
        assert '"uid": "${datasource}"' in text and "__inputs" not in text
