"""deploy/kubernetes/: the DaemonSet and Service validate strictly against Kubernetes' own schemas,
the pods read the agent's socket directory and nothing broader as an unprivileged user, the
PodMonitor scrapes the jobs the rules select with each node as `instance`, and the PrometheusRule
holds exactly the rule files' groups (promtool accepts them)."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from local_exporter.bundle import kubernetes
from local_exporter.bundle.compose import ZINCATI_SOCKETS
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.prometheus_config import job_name
from tests.support.prometheus import PROMTOOL

ROOT = Path(__file__).resolve().parents[2]
CONFIG = BundleConfig()
#: The oldest Kubernetes release still supported upstream when this was written, and the newest
#: the validator knows.
VERSIONS = ("1.31.0", kubernetes_validate.latest_version())
DOCUMENTS: list[dict[str, Any]] = list(yaml.safe_load_all((ROOT / kubernetes.MANIFESTS_PATH).read_text()))
BY_KIND = {d["kind"]: d for d in DOCUMENTS}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("kind", ["DaemonSet", "Service"])
def test_core_objects_validate_strictly(kind: str, version: str) -> None:
    kubernetes_validate.validate(BY_KIND[kind], version, strict=True)


def test_the_validator_rejects_a_misspelt_field() -> None:
    broken = copy.deepcopy(BY_KIND["DaemonSet"])
    broken["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_the_pods_read_the_agents_interfaces_and_write_only_their_boot_record_unprivileged() -> None:
    pod = BY_KIND["DaemonSet"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["volumes"] == [
        {"name": "zincati", "hostPath": {"path": ZINCATI_SOCKETS, "type": "Directory"}},
        {"name": "dbus", "hostPath": {"path": "/run/dbus", "type": "Directory"}},
        {"name": "state", "hostPath": {"path": "/var/lib/local_exporter", "type": "DirectoryOrCreate"}},
    ]
    # Zincati's socket and the system bus (rpm-ostree) read-only; the boot record the only write.
    assert container["volumeMounts"] == [
        {"name": "zincati", "mountPath": ZINCATI_SOCKETS, "readOnly": True},
        {"name": "dbus", "mountPath": "/run/dbus", "readOnly": True},
        {"name": "state", "mountPath": "/var/lib/local_exporter"},
    ]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["supplementalGroups"] == [CONFIG.agent_group_id]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and pod["automountServiceAccountToken"] is False
    assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready"


def test_selectors_match_the_pods() -> None:
    pod_labels = BY_KIND["DaemonSet"]["spec"]["template"]["metadata"]["labels"]
    for kind, selector in (
        ("DaemonSet", BY_KIND["DaemonSet"]["spec"]["selector"]["matchLabels"]),
        ("Service", BY_KIND["Service"]["spec"]["selector"]),
        ("PodMonitor", BY_KIND["PodMonitor"]["spec"]["selector"]["matchLabels"]),
    ):
        assert selector.items() <= pod_labels.items(), kind


def test_the_podmonitor_scrapes_the_jobs_the_rules_select_per_node() -> None:
    monitor = BY_KIND["PodMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    endpoints = monitor["spec"]["podMetricsEndpoints"]
    jobs = [next(r["replacement"] for r in e["relabelings"] if r["targetLabel"] == "job") for e in endpoints]
    assert jobs == [job_name(CONFIG.agent_selector), job_name(CONFIG.bridge_selector)]
    assert endpoints[0]["path"] == "/bridge" and endpoints[0]["params"] == {"selector": ["zincati"]}
    for endpoint in endpoints:
        assert endpoint["port"] == "http"
        assert {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "instance"} in endpoint[
            "relabelings"
        ]


def test_the_prometheusrule_holds_the_rule_files_and_promtool_accepts_it(tmp_path: Path) -> None:
    (rule,) = yaml.safe_load_all((ROOT / kubernetes.RULES_PATH).read_text())
    assert rule["kind"] == "PrometheusRule" and rule["apiVersion"] == "monitoring.coreos.com/v1"
    files = [yaml.safe_load((ROOT / "prometheus" / "rules" / f).read_text()) for f in ("recording.yml", "alerts.yml")]
    assert rule["spec"]["groups"] == [g for f in files for g in f["groups"]]
    path = tmp_path / "spec.yml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    checked = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
