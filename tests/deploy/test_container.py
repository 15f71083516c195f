"""The Containerfile: multi-stage, an unprivileged user, a HEALTHCHECK that works, the config at
/etc/local_exporter/config.toml, and a build context holding exactly what it copies. (The docker
engine cannot run here: the file is checked, and its healthcheck command run against a real bridge.)"""

from __future__ import annotations

import fnmatch
import re
import socket
import subprocess
import sys
from pathlib import Path

from local_exporter.bridge.config import load
from local_exporter.bundle import compose
from tests.support.processes import LOOPBACK, free_port, local_exporter_args, python_env, running, wait_http

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = (ROOT / "Containerfile").read_text()
INSTRUCTIONS = [
    line.strip()
    for line in re.sub(r"\\\n\s*", " ", CONTAINERFILE).splitlines()
    if line.strip() and not line.startswith("#")
]


def _instructions(keyword: str) -> list[str]:
    return [line.split(" ", 1)[1] for line in INSTRUCTIONS if line.split(" ", 1)[0] == keyword]


def test_two_stages_and_only_the_virtualenv_reaches_the_image() -> None:
    stages = _instructions("FROM")
    assert len(stages) == 2 and stages[0].endswith(" AS build")
    final = INSTRUCTIONS[[i for i, line in enumerate(INSTRUCTIONS) if line.startswith("FROM")][-1] :]
    copies = [line for line in final if line.startswith("COPY")]
    assert copies == [
        "COPY --from=build /opt/local_exporter /opt/local_exporter",
        "COPY deploy/container/config.toml /etc/local_exporter/config.toml",
    ]
    assert not [line for line in final if line.startswith("RUN")], "no build steps in the final stage"


def test_it_runs_unprivileged_with_the_config_where_the_docs_say() -> None:
    (user,) = _instructions("USER")
    uid, gid = user.split(":")
    assert int(uid) != 0 and int(gid) != 0
    assert _instructions("CMD") == ['["serve", "--config", "/etc/local_exporter/config.toml"]']
    assert _instructions("ENTRYPOINT") == ['["/opt/local_exporter/bin/local-exporter"]']


def test_the_images_default_config_reads_the_socket_the_stacks_mount() -> None:
    config = load(ROOT / "deploy" / "container" / "config.toml")
    (selector,) = config.selectors
    assert selector.kind == "os_update" and config.service.port == 9598
    assert selector.source.agent_socket.startswith(compose.ZINCATI_SOCKETS + "/")  # type: ignore[attr-defined]
    assert selector.source.boot_record.startswith(compose.STATE_DIRECTORY + "/")  # type: ignore[attr-defined]


def test_the_build_context_holds_every_file_copied_and_little_else() -> None:
    patterns = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]

    def included(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            body = pattern.lstrip("!")
            if fnmatch.fnmatch(path, body) or path.startswith(body.rstrip("/") + "/"):
                keep = negated
        return keep

    for line in _instructions("COPY"):
        if line.startswith("--from"):
            continue
        *sources, _ = line.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert included(source), f"{source} is left out of the build context by .dockerignore"
    assert not included("tests/test_bridge.py") and not included(".venv/bin/python")


def test_the_healthcheck_command_passes_against_a_real_bridge(tmp_path: Path) -> None:
    (check,) = _instructions("HEALTHCHECK")
    command = re.search(r'CMD \["/opt/local_exporter/bin/python", "-c", "(.+)"\]$', check)
    assert command, check
    port = free_port()
    probe = command.group(1).replace("127.0.0.1:9598", f"{LOOPBACK}:{port}")
    config = tmp_path / "config.toml"
    exposition = tmp_path / "metrics.prom"
    exposition.write_text("up 1\n")
    config.write_text(
        f'[service]\naddress = "{LOOPBACK}"\nport = {port}\n\n[bridge.selectors]\n'
        f'm = {{ kind = "file", path = "{exposition}" }}\n'
    )
    with running("bridge", local_exporter_args("serve", "-c", str(config)), tmp_path, env=python_env()) as child:
        wait_http(f"http://{LOOPBACK}:{port}/-/healthy", 20, watch=[child])
        assert subprocess.run([sys.executable, "-c", probe], timeout=30).returncode == 0
    with socket.socket() as closed:
        assert closed.connect_ex((LOOPBACK, port)) != 0
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=30).returncode != 0
