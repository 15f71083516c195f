"""Fedora CoreOS provisioning: a Butane config and the Ignition config it stands for, written from
the same files so that the two cannot say different things.

Ignition writes them at a host's first boot: the bridge's config, its state directory, and a
Quadlet unit from which podman's generator makes `local-exporter.service`. The container mounts
what the DaemonSet mounts, and its config, and runs as the same unprivileged user with the
agent's group.

The Ignition JSON is what `butane --strict` makes of the Butane file, but for the encoding of
each file's contents: Butane picks the shortest of URL-escaped, base64 and gzipped text, this
module always URL-escapes: the text stays legible in the JSON, and its bytes depend on no
compressor's version. Ignition decodes either to the same file.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

import yaml

from local_exporter.bundle.compose import DBUS_DIRECTORY, STATE_DIRECTORY, ZINCATI_SOCKETS
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.kubernetes import USER_ID
from local_exporter.bundle.prometheus_config import BRIDGE_PORT
from local_exporter.bundle.yamltext import HEADER
from local_exporter.common import jobs

BUTANE_PATH = "deploy/fcos/local-exporter.bu"
IGNITION_PATH = "deploy/fcos/local-exporter.ign"
#: Butane's fcos 1.5.0 translates to Ignition 3.4.0 (Butane's docs/config-fcos-v1_5.md), a spec
#: Ignition reads since 2.15.0 (February 2023), so any image since then provisions from it.
BUTANE_VARIANT = "fcos"
BUTANE_VERSION = "1.5.0"
IGNITION_VERSION = "3.4.0"
CONFIG_DIRECTORY = "/etc/local_exporter"
CONFIG_PATH = f"{CONFIG_DIRECTORY}/config.toml"
#: Rootful Quadlet units are read from here; the unit's name makes `local-exporter.service`.
UNIT_PATH = "/etc/containers/systemd/local-exporter.container"
CONTAINER_NAME = "local-exporter"
ZINCATI_SOCKET = f"{ZINCATI_SOCKETS}/metrics.promsock"
FILE_MODE = 0o644
#: The boot record is the bridge's alone.
STATE_MODE = 0o700


@dataclass(frozen=True)
class File:
    path: str
    mode: int
    contents: str


@dataclass(frozen=True)
class Directory:
    path: str
    mode: int
    owner_id: int


def bridge_config() -> str:
    """The bridge's config: the container image's default (deploy/container/config.toml)."""
    return f"""\
# The bridge on a Fedora CoreOS host (docs/deploy.md): the container image's default config.
# The `{jobs.AGENT_SELECTOR}` selector serves Zincati's metrics and the host's update phase, from Zincati's
# socket, rpm-ostree on the system bus and the boot record in {STATE_DIRECTORY}.
# After an edit: `systemctl reload local-exporter` (a bad config is refused, the running one kept).
[service]
address = "0.0.0.0"
port = {BRIDGE_PORT}

[bridge.selectors]
{jobs.AGENT_SELECTOR} = {{ kind = "os_update", agent_socket = "{ZINCATI_SOCKET}" }}
"""


def quadlet_unit(config: BundleConfig) -> str:
    """The Quadlet container unit; its keys are those of podman-systemd.unit(5) in podman 5.1."""
    health = json.dumps(
        [
            "/opt/local_exporter/bin/python",
            "-c",
            f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{BRIDGE_PORT}/-/healthy', timeout=3)",
        ]
    )
    return f"""\
# local_exporter's bridge under podman on Fedora CoreOS (docs/deploy.md). Quadlet (podman 5.1 or
# later, for GroupAdd) makes local-exporter.service of it at boot and on `systemctl daemon-reload`.
[Unit]
Description=local_exporter: the update agent's metrics (Zincati's socket) for Prometheus
Documentation=https://github.com/local-exporter/local_exporter/blob/main/docs/deploy.md
Wants=network-online.target
After=network-online.target zincati.service

[Container]
ContainerName={CONTAINER_NAME}
Image={config.image}
Exec=serve --config {CONFIG_PATH}
PublishPort={BRIDGE_PORT}:{BRIDGE_PORT}
User={USER_ID}
Group={USER_ID}
# The agent's group owns Zincati's socket directory (`getent group zincati` on a host).
GroupAdd={config.agent_group_id}
# Zincati's sockets and the system bus (rpm-ostree) read-only; the boot record is the only write.
Volume={ZINCATI_SOCKETS}:{ZINCATI_SOCKETS}:ro
Volume={DBUS_DIRECTORY}:{DBUS_DIRECTORY}:ro
Volume={STATE_DIRECTORY}:{STATE_DIRECTORY}
# The directory rather than the file: a bind-mounted file stays the inode it was when the
# container started, so a config replaced by an editor would go unseen by a reload.
Volume={CONFIG_DIRECTORY}:{CONFIG_DIRECTORY}:ro
# SELinux: a container's own label (container_t) may use only files labelled for containers and
# may not talk to host daemons' sockets. `:z`/`:Z` would relabel the host paths, and with them
# the sockets of Zincati and the system bus, which other services use (`:Z` would even shut them
# out). So nothing is relabelled and the container runs without label separation; it is still
# held by its unprivileged user, no capabilities, no new privileges and read-only mounts.
SecurityLabelDisable=true
ReadOnly=true
NoNewPrivileges=true
DropCapability=all
HealthCmd={health}
HealthInterval=30s
HealthTimeout=5s
HealthRetries=3
HealthStartPeriod=10s
# An unhealthy bridge is killed, and systemd starts it again.
HealthOnFailure=kill

[Service]
Restart=always
# The first start pulls the image.
TimeoutStartSec=900
# `systemctl reload local-exporter`: the bridge re-reads its config on SIGHUP.
ExecReload=/usr/bin/podman kill --signal HUP {CONTAINER_NAME}

[Install]
WantedBy=multi-user.target
"""


def files(config: BundleConfig) -> list[File]:
    return [
        File(CONFIG_PATH, FILE_MODE, bridge_config()),
        File(UNIT_PATH, FILE_MODE, quadlet_unit(config)),
    ]


def directories() -> list[Directory]:
    # podman refuses a bind mount whose source is missing, and the bridge writes here as its user.
    return [Directory(STATE_DIRECTORY, STATE_MODE, USER_ID)]


class _Mode(int):
    """A permission mode, written in octal as Butane's documentation writes it (`0644`)."""


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Files inline as block literals, readable as they land on the host.
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


def _mode(dumper: yaml.SafeDumper, value: _Mode) -> yaml.ScalarNode:
    # A leading 0 is octal to Butane's YAML decoder and to YAML 1.1 readers alike.
    return dumper.represent_scalar("tag:yaml.org,2002:int", f"0{value:o}")


_Dumper.add_representer(str, _str)
_Dumper.add_representer(_Mode, _mode)


def _owner(owner_id: int) -> dict[str, Any]:
    return {"user": {"id": owner_id}, "group": {"id": owner_id}}


def butane_data(config: BundleConfig) -> dict[str, Any]:
    return {
        "variant": BUTANE_VARIANT,
        "version": BUTANE_VERSION,
        "storage": {
            "directories": [{"path": d.path, "mode": _Mode(d.mode), **_owner(d.owner_id)} for d in directories()],
            "files": [
                {"path": f.path, "mode": _Mode(f.mode), "overwrite": True, "contents": {"inline": f.contents}}
                for f in files(config)
            ],
        },
    }


def data_url(text: str) -> str:
    """`text` as a URL-escaped data URL, as Ignition reads a file's contents."""
    return "data:," + urllib.parse.quote(text, safe="/")


def ignition_data(config: BundleConfig) -> dict[str, Any]:
    return {
        "ignition": {"version": IGNITION_VERSION},
        "storage": {
            "directories": [{"path": d.path, "mode": d.mode, **_owner(d.owner_id)} for d in directories()],
            "files": [
                {"path": f.path, "mode": f.mode, "overwrite": True, "contents": {"source": data_url(f.contents)}}
                for f in files(config)
            ],
        },
    }


def butane_text(config: BundleConfig) -> str:
    intro = (
        "# The bridge on Fedora CoreOS (docs/deploy.md): its config and its Quadlet unit.\n"
        "# `butane --pretty --strict local-exporter.bu > local-exporter.ign`, or use local-exporter.ign beside it.\n"
    )
    return HEADER + intro + yaml.dump(butane_data(config), Dumper=_Dumper, sort_keys=False, width=120)


def ignition_text(config: BundleConfig) -> str:
    return json.dumps(ignition_data(config), indent=2) + "\n"


def render(config: BundleConfig) -> dict[str, str]:
    return {BUTANE_PATH: butane_text(config), IGNITION_PATH: ignition_text(config)}
