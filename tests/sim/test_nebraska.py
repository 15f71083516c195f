"""The simulated Nebraska's /metrics counts as the real one's SQL does (flatcar/nebraska
backend/pkg/api/internal/dbreads/metrics.go): instances by version and channel, failed updates
as every error event; a version no instance runs any more keeps its last count."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from local_exporter.agents import nebraska as api
from local_exporter.sim import scenario_file
from local_exporter.sim.fleet import Fleet
from local_exporter.sim.nebraska import NebraskaMetrics


def _samples(metrics: NebraskaMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    metrics.refresh()
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_instances_per_version_and_channel_and_failed_installs() -> None:
    fleet = Fleet(scenario_file.preset("mixed"), lambda t: 1_700_000_000 + t)
    metrics = NebraskaMetrics(fleet)
    app = (("application", api.FLATCAR_APPLICATION),)
    before = _samples(metrics)
    assert before[(api.INSTANCES_PER_CHANNEL, (*app, ("channel", "stable"), ("version", "4152.2.0")))] == 8
    assert before[(api.FAILED_UPDATES, app)] == 0
    fleet.advance(fleet.scenario.duration)
    after = _samples(metrics)
    # Every host but the one whose postinstall fails moved on; the old version keeps its count
    # of those still on it (one), and its failed installs were error events.
    assert after[(api.INSTANCES_PER_CHANNEL, (*app, ("channel", "stable"), ("version", "4230.2.1")))] == 7
    assert after[(api.INSTANCES_PER_CHANNEL, (*app, ("channel", "stable"), ("version", "4152.2.0")))] == 1
    assert after[(api.FAILED_UPDATES, app)] >= 1
