"""The catalogue of Zincati's families (agents/zincati.py) against the reference exposition
(agents/examples/zincati.prom: one host's output, constructed from coreos/zincati's source) and
against what the simulator renders."""

from __future__ import annotations

from importlib import resources

import pytest
from prometheus_client.parser import text_string_to_metric_families

from local_exporter.agents.zincati import FAMILIES
from local_exporter.sim.zincati import Environment, ZincatiAgent, ZincatiConfig, ZincatiIdentity

REFERENCE = resources.files("local_exporter.agents").joinpath("examples/zincati.prom").read_text()


def _label_names(text: str) -> dict[str, set[tuple[str, ...]]]:
    """Family name (as written in TYPE) -> the label-name tuples of its samples."""
    found: dict[str, set[tuple[str, ...]]] = {}
    for family in text_string_to_metric_families(text):
        name = family.name + ("_total" if family.type == "counter" and f"{family.name}_total" in text else "")
        found.setdefault(name, set()).update(tuple(sorted(sample.labels)) for sample in family.samples)
    return found


def test_every_family_of_the_reference_is_in_the_catalogue_with_its_type_help_and_labels() -> None:
    reference = _label_names(REFERENCE)
    assert reference, "the reference exposition has no families"
    for name, label_sets in reference.items():
        family = FAMILIES[name]
        assert label_sets == {family.labels}, name
        assert f"# TYPE {name} {family.type}\n" in REFERENCE, name
        assert f"# HELP {name} {family.help}\n" in REFERENCE, name


def test_the_simulator_renders_the_catalogues_labels_only() -> None:
    agent = ZincatiAgent(ZincatiIdentity("39.20240101.3.0"), ZincatiConfig(strategy="fleet_lock"))
    agent.start(0.0)
    now = 0.0
    env = Environment(offer="99.0", check_error=None, pre_reboot_error="failed_lock")
    for _ in range(40):
        now += agent.tick(now, env) or 1.0
    rendered = _label_names(agent.render().decode())
    assert "zincati_strategy_fleet_lock_errors_total" in rendered  # the labelled families are shown
    for name, label_sets in rendered.items():
        assert label_sets <= {FAMILIES[name].labels}, name


def test_a_label_the_catalogue_lacks_is_refused() -> None:
    agent = ZincatiAgent(ZincatiIdentity("39.20240101.3.0"), ZincatiConfig())
    agent.start(0.0)
    agent._proc.metrics["zincati_updates_strategy_mode"] = {(("mode", "immediate"),): 1.0}
    with pytest.raises(ValueError, match="zincati_updates_strategy_mode has labels"):
        agent.render()


@pytest.mark.parametrize(
    ("name", "help_text", "source"),
    [
        # Families the reference exposition does not show, whose HELP texts were once guessed.
        ("zincati_identity_rollout_wariness", "Client wariness for updates rollout", "src/identity/mod.rs"),
        (
            "zincati_update_agent_finalization_blocked_count",
            "Total number of finalization attempts blocked due to reasons unrelated to update strategy.",
            "src/update_agent/actor.rs",
        ),
        (
            "zincati_update_agent_finalization_detected_active_users",
            "Number of active users detected by the update-agent.",
            "src/update_agent/mod.rs",
        ),
        (
            "zincati_update_agent_finalization_successes",
            "Total number of successful update finalizations by the update agent.",
            "src/update_agent/actor.rs",
        ),
        (
            "zincati_update_agent_postponed_finalizations_total",
            "Total number of update finalization postponements due to active users.",
            "src/update_agent/mod.rs",
        ),
        (
            "zincati_updates_strategy_periodic_schedule_length_minutes",
            "Total length of the periodic strategy schedule in use",
            "src/strategy/mod.rs",
        ),
    ],
)
def test_help_texts_are_zincatis_own(name: str, help_text: str, source: str) -> None:
    # coreos/zincati be76c4aa (v0.0.32), `source`: the text its registration passes.
    assert FAMILIES[name].help == help_text
