"""What kube-state-metrics (FLUO's node annotations) and Kured would show of the simulated
Flatcar hosts (agents/kubernetes.py: the annotation keys from flatcar-linux-update-operator's
pkg/constants/constants.go, the label names as kube-state-metrics makes them)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from local_exporter.agents import kubernetes as api
from local_exporter.agents import update_engine as ue
from local_exporter.sim import scenario_file
from local_exporter.sim.fleet import Fleet
from local_exporter.sim.kubernetes import KubernetesMetrics


def test_annotation_labels_are_what_kube_state_metrics_makes() -> None:
    assert (
        api.annotation_label(api.REBOOT_NEEDED) == "annotation_flatcar_linux_update_v1_flatcar_linux_net_reboot_needed"
    )
    assert api.allowlist().startswith(
        "--metric-annotations-allowlist=nodes=[flatcar-linux-update.v1.flatcar-linux.net/"
    )


def test_a_node_waiting_for_its_reboot_needs_one_for_fluo_and_kured() -> None:
    fleet = Fleet(scenario_file.preset("mixed"), lambda t: 1_700_000_000 + t)
    metrics = KubernetesMetrics(fleet)
    waiting = None
    for minute in range(240):
        fleet.advance(minute * 60.0)
        waiting = next(
            (h for h in fleet.flatcar if h.agent.status.operation == ue.NEED_REBOOT and not h.rebooting), None
        )
        if waiting is not None:
            break
    assert waiting is not None
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    annotations = {s.labels["node"]: s.labels for s in families[api.NODE_ANNOTATIONS].samples}
    kured = {s.labels["node"]: s.value for s in families[api.KURED_REBOOT_REQUIRED].samples}
    assert annotations[waiting.name][api.annotation_label(api.REBOOT_NEEDED)] == "true"
    assert annotations[waiting.name][api.annotation_label(api.STATUS)] == ue.NEED_REBOOT
    assert kured[waiting.name] == 1
    idle = next(h for h in fleet.flatcar if h.agent.status.operation == ue.IDLE and not h.rebooting)
    assert annotations[idle.name][api.annotation_label(api.REBOOT_NEEDED)] == "false" and kured[idle.name] == 0
