"""deploy/kubernetes/dashboards-configmaps.yaml and grafanadashboards.yaml: every dashboard once in
each, byte for byte as in dashboards/; the ConfigMaps validate strictly against Kubernetes' own
schemas and carry what kube-prometheus-stack's sidecar selects and files them by; the
GrafanaDashboards validate against grafana-operator's CRD, made as strict as the API server is
under `kubectl apply`'s default `--validate=strict`; both fit Kubernetes' size limits.

tests/data/grafana-operator/grafanadashboard-v1beta1.schema.json is the `openAPIV3Schema` of the
v1beta1 version of config/crd/bases/grafana.integreatly.org_grafanadashboards.yaml in
grafana/grafana-operator at v5.24.0 (commit 065a718a1fe83728d08054c299de7f8577e88f79; the Helm
chart's copy, deploy/helm/grafana-operator/files/crds/, is identical), converted to JSON unchanged.
Its CEL rules (`x-kubernetes-validations`: folder, folderUID and folderRef exclusive; uid
immutable) are not evaluated here.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from local_exporter.bundle import dashboards, grafana_k8s
from local_exporter.bundle.config import BundleConfig

ROOT = Path(__file__).resolve().parents[2]
CONFIG = BundleConfig()
#: As for the bridge's manifests (test_kubernetes.py): the oldest Kubernetes release still
#: supported upstream when this was written, and the newest the validator knows.
VERSIONS = ("1.31.0", kubernetes_validate.latest_version())
CONFIGMAPS: list[dict[str, Any]] = list(yaml.safe_load_all((ROOT / grafana_k8s.CONFIGMAPS_PATH).read_text()))
GRAFANADASHBOARDS: list[dict[str, Any]] = list(
    yaml.safe_load_all((ROOT / grafana_k8s.GRAFANADASHBOARDS_PATH).read_text())
)
CRD_SCHEMA = json.loads((ROOT / "tests/data/grafana-operator/grafanadashboard-v1beta1.schema.json").read_text())
#: ConfigMap data: the API server's limit on data and binaryData together (core.MaxSecretSize).
CONFIGMAP_LIMIT = 1024 * 1024
#: All of an object's annotations together (apimachinery's TotalAnnotationSizeLimitB): client-side
#: `kubectl apply` stores the whole object in one, so an object must fit in it to be applied so.
ANNOTATIONS_LIMIT = 256 * 1024


def _committed(file: str) -> str:
    return (ROOT / dashboards.DIRECTORY / file).read_bytes().decode("utf-8")


def _strict(node: dict[str, Any]) -> dict[str, Any]:
    """The schema with unknown fields rejected wherever it lists the fields. The API server
    prunes unknown fields of a structural schema silently, but reports them as errors under
    strict field validation, which `kubectl apply` asks for by default."""
    out = dict(node)
    if "properties" in node:
        out["properties"] = {key: _strict(value) for key, value in node["properties"].items()}
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            out[key] = _strict(node[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in node:
            out[key] = [_strict(n) for n in node[key]]
    return out


STRICT = jsonschema.Draft7Validator(_strict(CRD_SCHEMA))
AS_PUBLISHED = jsonschema.Draft7Validator(CRD_SCHEMA)


def _errors(validator: jsonschema.Draft7Validator, document: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(document)]


def _by_name(documents: list[dict[str, Any]]) -> list[Any]:
    return [pytest.param(d, id=d["metadata"]["name"]) for d in documents]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("configmap", _by_name(CONFIGMAPS))
def test_configmaps_validate_strictly(configmap: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(configmap, version, strict=True)


def test_the_validator_rejects_a_misspelt_configmap_field() -> None:
    broken = copy.deepcopy(CONFIGMAPS[0])
    broken["metadata"]["annotation"] = broken["metadata"].pop("annotations")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


@pytest.mark.parametrize("configmap", _by_name(CONFIGMAPS))
def test_each_configmap_is_what_kube_prometheus_stacks_sidecar_selects_and_files(configmap: dict[str, Any]) -> None:
    # The chart's defaults, as its values spell them: label grafana_dashboard, labelValue "1";
    # k8s-sidecar's folder annotation when FOLDER_ANNOTATION is unset.
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"k8s-sidecar-target-directory": CONFIG.dashboard_folder}


@pytest.mark.parametrize("configmap", _by_name(CONFIGMAPS))
def test_each_configmap_holds_one_committed_dashboard_byte_for_byte(configmap: dict[str, Any]) -> None:
    ((file, text),) = configmap["data"].items()
    assert text == _committed(file)
    assert json.loads(text)["uid"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("resource", _by_name(GRAFANADASHBOARDS))
def test_grafanadashboards_validate_against_the_operators_crd(resource: dict[str, Any], version: str) -> None:
    assert resource["apiVersion"] == "grafana.integreatly.org/v1beta1" and resource["kind"] == "GrafanaDashboard"
    assert _errors(STRICT, resource) == []
    # The CRD leaves metadata to the API server, which checks it as every object's ObjectMeta.
    kubernetes_validate.validate(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": resource["metadata"]}, version, strict=True
    )


@pytest.mark.parametrize(
    ("breakage", "pruned"),
    [
        pytest.param(lambda r: r["spec"].__setitem__("folders", "x"), True, id="a misspelt spec field"),
        pytest.param(
            lambda r: r["spec"]["instanceSelector"].__setitem__("matchLabel", {"a": "b"}),
            True,
            id="a misspelt selector",
        ),
        pytest.param(lambda r: r["spec"].pop("instanceSelector"), False, id="no instanceSelector"),
        pytest.param(lambda r: r["spec"].__setitem__("json", {"uid": "x"}), False, id="json as an object"),
    ],
)
def test_the_crd_schema_rejects_a_broken_grafanadashboard(breakage: Any, pruned: bool) -> None:
    broken = copy.deepcopy(GRAFANADASHBOARDS[0])
    breakage(broken)
    assert _errors(STRICT, broken)
    # A misspelt field passes the schema as published (the API server would prune it): the
    # strictness above is what catches it.
    assert bool(_errors(AS_PUBLISHED, broken)) is not pruned


@pytest.mark.parametrize("resource", _by_name(GRAFANADASHBOARDS))
def test_each_grafanadashboard_holds_the_dashboard_for_the_documented_grafana(resource: dict[str, Any]) -> None:
    spec = resource["spec"]
    name = resource["metadata"]["name"].removeprefix("local-exporter-") + ".json"
    assert spec["json"] == _committed(name)
    assert spec["folder"] == CONFIG.dashboard_folder
    # The label grafana-operator's quick start gives its Grafana.
    assert spec["instanceSelector"] == {"matchLabels": {"dashboards": "grafana"}}


def test_every_dashboard_appears_exactly_once_in_each_file() -> None:
    expected = Counter(_committed(file) for file in dashboards.DASHBOARDS)
    assert Counter(text for c in CONFIGMAPS for text in c["data"].values()) == expected
    assert Counter(r["spec"]["json"] for r in GRAFANADASHBOARDS) == expected
    assert sorted(file for c in CONFIGMAPS for file in c["data"]) == sorted(dashboards.DASHBOARDS)
    for documents in (CONFIGMAPS, GRAFANADASHBOARDS):
        names = [d["metadata"]["name"] for d in documents]
        assert len(set(names)) == len(names) == len(dashboards.DASHBOARDS)
        # DNS subdomain names, as Kubernetes requires of both kinds.
        assert all(re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", n) and len(n) <= 253 for n in names)


@pytest.mark.parametrize("resource", _by_name(CONFIGMAPS + GRAFANADASHBOARDS))
def test_each_object_fits_the_size_limits(resource: dict[str, Any]) -> None:
    if resource["kind"] == "ConfigMap":
        assert sum(len(k.encode()) + len(v.encode()) for k, v in resource["data"].items()) < CONFIGMAP_LIMIT
    # What client-side `kubectl apply` writes into its last-applied-configuration annotation.
    assert len(json.dumps(resource, separators=(",", ":")).encode()) < ANNOTATIONS_LIMIT


def test_the_deploy_guide_names_the_label_the_folder_setting_and_the_instance_label() -> None:
    guide = (ROOT / "docs" / "deploy.md").read_text()
    for text in (
        "grafana_dashboard",
        grafana_k8s.FOLDER_ANNOTATION,
        "foldersFromFilesStructure",
        *(f"{k}: {v}" for k, v in grafana_k8s.INSTANCE_LABELS.items()),
        grafana_k8s.CONFIGMAPS_PATH,
        grafana_k8s.GRAFANADASHBOARDS_PATH,
    ):
        assert text in guide, text
