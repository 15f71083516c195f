"""deploy/fcos/: the Ignition config validates against Ignition's own schema, closed to unknown keys
as Ignition's parser warns of them; the Butane config says what the Ignition config says; the
bridge config loads and passes a real `check-config`, and is the container image's default; the
Quadlet unit uses only keys podman's Quadlet knows, mounts the socket directory read-only and
nothing broader, and runs unprivileged with the agent's group, and its systemd sections pass
`systemd-analyze verify`.

The schema, tests/data/ignition/ignition-3.4.0.schema.json, is coreos/ignition's
config/v3_4/schema/ignition.json at commit a5d574a8d2ad42a6f5702c6982d7c5f67ec05107 (the file
last changed in 86d17f15b62b3e58399c645c7dd3beb1836ca70f), committed as test data.

Not run here: Butane, podman's Quadlet generator (podman 5.1 or later) and Ignition, none of
which this machine has. The Butane translation below follows Butane's base/v0_5/translate.go.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from local_exporter.bridge.config import load, parse
from local_exporter.bundle import fcos
from local_exporter.bundle.compose import DBUS_DIRECTORY, STATE_DIRECTORY, ZINCATI_SOCKETS
from local_exporter.bundle.config import BundleConfig
from tests.support.processes import local_exporter_args, python_env

ROOT = Path(__file__).resolve().parents[2]
CONFIG = BundleConfig()
SCHEMA = json.loads((ROOT / "tests" / "data" / "ignition" / "ignition-3.4.0.schema.json").read_text())
IGNITION: dict[str, Any] = json.loads((ROOT / fcos.IGNITION_PATH).read_text())
BUTANE: dict[str, Any] = yaml.safe_load((ROOT / fcos.BUTANE_PATH).read_text())
#: Butane's fcos spec -> the Ignition spec it translates to (Butane's docs/config-fcos-v1_5.md).
BUTANE_TO_IGNITION = {"1.5.0": "3.4.0"}
ANALYZE = shutil.which("systemd-analyze")

#: Every [Container] key of podman-systemd.unit(5) in podman v5.1.0 (its supportedContainerKeys,
#: pkg/systemd/quadlet/quadlet.go): the first release with GroupAdd. Quadlet refuses a unit with
#: any other key, so the service would never exist.
QUADLET_CONTAINER_KEYS = frozenset(
    [
        "AddCapability",
        "AddDevice",
        "Annotation",
        "AutoUpdate",
        "ContainerName",
        "ContainersConfModule",
        "DNS",
        "DNSOption",
        "DNSSearch",
        "DropCapability",
        "Entrypoint",
        "Environment",
        "EnvironmentFile",
        "EnvironmentHost",
        "Exec",
        "ExposeHostPort",
        "GIDMap",
        "GlobalArgs",
        "Group",
        "GroupAdd",
        "HealthCmd",
        "HealthInterval",
        "HealthOnFailure",
        "HealthRetries",
        "HealthStartPeriod",
        "HealthStartupCmd",
        "HealthStartupInterval",
        "HealthStartupRetries",
        "HealthStartupSuccess",
        "HealthStartupTimeout",
        "HealthTimeout",
        "HostName",
        "IP",
        "IP6",
        "Image",
        "Label",
        "LogDriver",
        "Mask",
        "Mount",
        "Network",
        "NoNewPrivileges",
        "Notify",
        "PidsLimit",
        "Pod",
        "PodmanArgs",
        "PublishPort",
        "Pull",
        "ReadOnly",
        "ReadOnlyTmpfs",
        "RemapGid",
        "RemapUid",
        "RemapUidSize",
        "RemapUsers",
        "Rootfs",
        "RunInit",
        "SeccompProfile",
        "Secret",
        "SecurityLabelDisable",
        "SecurityLabelFileType",
        "SecurityLabelLevel",
        "SecurityLabelNested",
        "SecurityLabelType",
        "ShmSize",
        "StopTimeout",
        "SubGIDMap",
        "SubUIDMap",
        "Sysctl",
        "Timezone",
        "Tmpfs",
        "UIDMap",
        "Ulimit",
        "Unmask",
        "User",
        "UserNS",
        "VolatileTmp",
        "Volume",
        "WorkingDir",
    ]
)
#: Keys the unit gives more than once; Quadlet takes the last of any other key, so a repeat would
#: silently undo the first.
REPEATED_KEYS = frozenset({"Volume"})
#: The sections Quadlet reads ([Container]) or hands to systemd unchanged.
SECTIONS = ("Unit", "Container", "Service", "Install")


# --- the Ignition config ------------------------------------------------------------------------


def _closed(schema: dict[str, Any]) -> dict[str, Any]:
    """Ignition's schema with every object closed to keys it does not define.

    Ignition's parser warns of each unused key (config/validate/validate.go ValidateUnusedKeys)
    and `butane --strict` fails on warnings; the schema itself leaves objects open. Its allOf
    compositions (a file is a node and more) are merged first, so that closing one part does
    not refuse the other's keys."""
    closed = copy.deepcopy(schema)

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        if "$ref" not in node:
            return node
        target: Any = closed
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return resolve(target)

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        if not isinstance(node, dict):
            return
        if "allOf" in node:
            parts = [copy.deepcopy(resolve(part)) for part in node.pop("allOf")]
            node["type"] = "object"
            node["properties"] = {k: v for part in parts for k, v in part.get("properties", {}).items()}
            node["required"] = sorted({r for part in parts for r in part.get("required", [])})
        if "properties" in node:
            node["additionalProperties"] = False
        for value in node.values():
            walk(value)

    walk(closed)
    return closed


VALIDATOR = jsonschema.validators.validator_for(SCHEMA)(_closed(SCHEMA))


def _errors(config: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(config)]


def test_the_ignition_config_validates_against_ignitions_schema() -> None:
    assert _errors(IGNITION) == []
    # The schema does not pin the version; Ignition accepts only the one it parses this spec as.
    assert IGNITION["ignition"]["version"] == fcos.IGNITION_VERSION


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(lambda c: c["storage"]["files"][0].__setitem__("owerwrite", True), id="a misspelt file key"),
        pytest.param(lambda c: c["storage"]["directories"][0]["user"].__setitem__("uid", 0), id="a misspelt owner"),
        pytest.param(lambda c: c["storage"]["files"][1].__setitem__("mode", "0644"), id="a mode as a string"),
        pytest.param(lambda c: c["storage"]["files"][1].pop("path"), id="a file without its path"),
        pytest.param(lambda c: c.__setitem__("systemd", {"unit": []}), id="a misspelt section"),
    ],
)
def test_the_validator_rejects_a_broken_copy(breakage: Any) -> None:
    broken = copy.deepcopy(IGNITION)
    breakage(broken)
    assert _errors(broken)


def _decoded(source: str) -> str:
    # Only the URL-escaped form is written (bundle/fcos.py): anything else is a change to notice.
    assert source.startswith("data:,"), source[:40]
    return urllib.parse.unquote(source.removeprefix("data:,"), errors="strict")


def _ignition_nodes(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Each directory and file as what lands on the host: the contents decoded."""
    storage = config["storage"]
    directories = [{"kind": "directory", **d} for d in storage["directories"]]
    files = [
        {"kind": "file", **{k: v for k, v in f.items() if k != "contents"}, "text": _decoded(f["contents"]["source"])}
        for f in storage["files"]
    ]
    return directories + files


def _butane_nodes(butane: dict[str, Any]) -> list[dict[str, Any]]:
    """The same from the Butane config, as Butane translates it: inline contents become the file's."""
    storage = butane["storage"]
    directories = [{"kind": "directory", **d} for d in storage["directories"]]
    files = [
        {"kind": "file", **{k: v for k, v in f.items() if k != "contents"}, "text": f["contents"]["inline"]}
        for f in storage["files"]
    ]
    return directories + files


def test_the_butane_config_says_what_the_ignition_config_says() -> None:
    assert BUTANE["variant"] == "fcos"
    assert BUTANE_TO_IGNITION[BUTANE["version"]] == IGNITION["ignition"]["version"]
    assert set(BUTANE) == {"variant", "version", "storage"} and set(IGNITION) == {"ignition", "storage"}
    assert _butane_nodes(BUTANE) == _ignition_nodes(IGNITION)


def test_the_butane_file_writes_modes_in_octal_as_people_read_them() -> None:
    text = (ROOT / fcos.BUTANE_PATH).read_text()
    assert re.findall(r"^\s+mode: (\S+)$", text, re.M) == ["0700", "0644", "0644"]
    assert [n["mode"] for n in _butane_nodes(BUTANE)] == [0o700, 0o644, 0o644]


def test_what_lands_on_the_host() -> None:
    nodes = {n["path"]: n for n in _ignition_nodes(IGNITION)}
    assert set(nodes) == {STATE_DIRECTORY, fcos.CONFIG_PATH, fcos.UNIT_PATH}
    # The boot record's directory, the bridge's user's alone; podman needs it to exist to mount it.
    assert nodes[STATE_DIRECTORY] == {
        "kind": "directory",
        "path": STATE_DIRECTORY,
        "mode": 0o700,
        "user": {"id": 65534},
        "group": {"id": 65534},
    }
    for path in (fcos.CONFIG_PATH, fcos.UNIT_PATH):
        assert nodes[path]["mode"] == 0o644 and nodes[path]["overwrite"] is True
        assert "user" not in nodes[path], "root's, as Ignition leaves it"
    assert nodes[fcos.UNIT_PATH]["path"].startswith("/etc/containers/systemd/")


def test_the_files_are_the_same_for_the_same_config() -> None:
    assert (
        fcos.render(CONFIG)
        == fcos.render(BundleConfig())
        == {path: (ROOT / path).read_text() for path in (fcos.BUTANE_PATH, fcos.IGNITION_PATH)}
    )
    other = fcos.render(BundleConfig(image="registry.example.org/le:1", agent_group_id=981))
    unit = _decoded(json.loads(other[fcos.IGNITION_PATH])["storage"]["files"][1]["contents"]["source"])
    assert "Image=registry.example.org/le:1\n" in unit and "GroupAdd=981\n" in unit


# --- the bridge config --------------------------------------------------------------------------


def _file(path: str) -> str:
    text: str = next(n["text"] for n in _ignition_nodes(IGNITION) if n["path"] == path)
    return text


def test_the_bridge_config_is_the_images_default() -> None:
    loaded = parse(_file(fcos.CONFIG_PATH), fcos.CONFIG_PATH)
    assert loaded == load(ROOT / "deploy" / "container" / "config.toml")
    (selector,) = loaded.selectors
    assert selector.name == "zincati" and selector.kind == "os_update"
    assert selector.source.agent_socket.startswith(ZINCATI_SOCKETS + "/")  # type: ignore[attr-defined]
    assert selector.source.boot_record.startswith(STATE_DIRECTORY + "/")  # type: ignore[attr-defined]
    assert (loaded.service.address, loaded.service.port) == ("0.0.0.0", 9598)


def test_check_config_accepts_the_bridge_config(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(_file(fcos.CONFIG_PATH))
    result = subprocess.run(
        local_exporter_args("check-config", str(path)), capture_output=True, text=True, env=python_env(), timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{path}: OK, 1 selector(s): zincati\n"


# --- the Quadlet unit ---------------------------------------------------------------------------


def _entries(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of every line of a unit file, read strictly: a line that is not a
    comment, a section header or KEY=VALUE fails, and so does a line continuation."""
    entries, section = [], None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"line {number}: a continuation"
        if header := re.fullmatch(r"\[([A-Za-z]+)\]", line):
            section = header.group(1)
            assert section in SECTIONS, f"line {number}: section {section}"
            continue
        pair = re.fullmatch(r"([A-Za-z][A-Za-z0-9]*)=(\S.*)", line)
        assert pair and section, f"line {number}: {line!r}"
        entries.append((section, pair.group(1), pair.group(2)))
    return entries


def _container(text: str) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for section, key, value in _entries(text):
        if section == "Container":
            keys.setdefault(key, []).append(value)
    return keys


UNIT = _file(fcos.UNIT_PATH)
CONTAINER = _container(UNIT)


def _unknown_keys(text: str) -> list[str]:
    keys = _container(text)
    unknown = [k for k in keys if k not in QUADLET_CONTAINER_KEYS]
    repeated = [k for k, values in keys.items() if len(values) > 1 and k not in REPEATED_KEYS]
    return unknown + repeated


def test_the_unit_uses_only_quadlets_keys_once_each() -> None:
    # Each section in one piece, in the usual order.
    assert [s for s, _, _ in _entries(UNIT)] == sorted((s for s, _, _ in _entries(UNIT)), key=SECTIONS.index)
    assert _unknown_keys(UNIT) == []


@pytest.mark.parametrize(
    ("right", "wrong"),
    [("ReadOnly=true", "ReadOnlyRootfs=true"), ("User=65534", "User=65534\nUser=0")],
)
def test_the_key_check_would_catch_a_wrong_key(right: str, wrong: str) -> None:
    assert right in UNIT
    assert _unknown_keys(UNIT.replace(right, wrong))


def test_the_socket_directory_is_mounted_read_only_and_nothing_broader() -> None:
    volumes = [v.split(":") for v in CONTAINER["Volume"]]
    assert volumes == [
        [ZINCATI_SOCKETS, ZINCATI_SOCKETS, "ro"],
        [DBUS_DIRECTORY, DBUS_DIRECTORY, "ro"],
        [STATE_DIRECTORY, STATE_DIRECTORY],
        [fcos.CONFIG_DIRECTORY, fcos.CONFIG_DIRECTORY, "ro"],
    ]
    # No host path above the socket directory, and no relabelling of any (see the SELinux comment).
    for source, *_ in volumes:
        assert not Path(ZINCATI_SOCKETS).is_relative_to(source) or source == ZINCATI_SOCKETS
    assert CONTAINER["SecurityLabelDisable"] == ["true"]
    assert not [v for v in CONTAINER["Volume"] if {"z", "Z"} & set(",".join(v.split(":")[2:]).split(","))]
    assert "Mount" not in CONTAINER and "Tmpfs" not in CONTAINER


def test_the_container_runs_unprivileged_with_the_agents_group() -> None:
    assert CONTAINER["User"] == ["65534"] and CONTAINER["Group"] == ["65534"]
    assert CONTAINER["GroupAdd"] == [str(CONFIG.agent_group_id)]
    assert CONTAINER["ReadOnly"] == ["true"] and CONTAINER["NoNewPrivileges"] == ["true"]
    assert CONTAINER["DropCapability"] == ["all"]
    # Nothing that would give back what the lines above take away.
    assert not {"AddCapability", "AddDevice", "PodmanArgs", "GlobalArgs", "UserNS", "Network"} & set(CONTAINER)
    assert CONTAINER["Image"] == [CONFIG.image]
    assert CONTAINER["PublishPort"] == ["9598:9598"]
    assert CONTAINER["Exec"] == [f"serve --config {fcos.CONFIG_PATH}"]


def test_the_health_check_is_the_images_as_an_exec_array() -> None:
    (command,) = CONTAINER["HealthCmd"]
    # Podman runs a JSON array without a shell; Quadlet strips quotes off a value's ends, which an
    # array's brackets keep clear of.
    argv = json.loads(command)
    assert argv[0] == "/opt/local_exporter/bin/python" and "http://127.0.0.1:9598/-/healthy" in argv[-1]
    containerfile = (ROOT / "Containerfile").read_text()
    assert argv[-1] in containerfile, "the Containerfile's HEALTHCHECK probes the same way"
    assert CONTAINER["HealthOnFailure"] == ["kill"]


def _service_part(text: str) -> str:
    """What Quadlet hands to systemd as it is ([Unit], [Service], [Install]), with an ExecStart
    standing in for the `podman run` it adds, and podman's path one that exists here."""
    kept, skipping = [], False
    for line in text.splitlines():
        if line.startswith("["):
            skipping = line == "[Container]"
        if not skipping:
            kept.append(line)
    true = shutil.which("true")
    assert true is not None
    service = "\n".join(kept).replace("/usr/bin/podman", true) + "\n"
    return service.replace("[Service]\n", f"[Service]\nExecStart={true}\n", 1)


def _verify(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    unit = tmp_path / "local-exporter.service"
    unit.write_text(_service_part(text))
    return subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_units_systemd_sections(tmp_path: Path) -> None:
    service = {(s, k): v for s, k, v in _entries(UNIT) if s != "Container"}
    assert service[("Service", "Restart")] == "always" and service[("Install", "WantedBy")] == "multi-user.target"
    result = _verify(tmp_path, UNIT)
    assert result.returncode == 0 and result.stdout + result.stderr == ""


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_verify_would_catch_a_bad_directive(tmp_path: Path) -> None:
    result = _verify(tmp_path, UNIT.replace("Restart=always", "Restart=sometimes"))
    assert "restart specifier" in result.stderr
