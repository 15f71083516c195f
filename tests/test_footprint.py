"""What a real `serve` process loads: the daemon only, and a source kind's or the web config's
libraries only when its config needs them (bench/footprint.py measures what that saves)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from tests.support.processes import LOOPBACK, free_port, http_get, python_env, running, wait_http
from tests.support.web import users_yaml

# Run `serve` as the console script does, and write the modules it loaded when it exits.
_SERVE = """
import atexit, sys
from pathlib import Path
atexit.register(lambda: Path(sys.argv[1]).write_text("\\n".join(sorted(sys.modules))))
from local_exporter.cli import main
sys.exit(main(["serve", *sys.argv[2:]]))
"""
# Other products of the package, and libraries a file selector without a web config never needs.
NEVER_FOR_A_FILE = (
    "local_exporter.bundle",
    "local_exporter.sim",
    "local_exporter.demo",
    "local_exporter.bridge.webconfig",
    "local_exporter.bridge.sources.dbus",
    "local_exporter.bridge.sources.http",
    "local_exporter.bridge.sources.uds",
    "grafanalib",
    "yaml",
    "dbus_next",
    "bcrypt",
)


def _serve_modules(directory: Path, selectors: str, web_yaml: str | None = None) -> set[str]:
    """The modules a serve process had loaded by its clean exit, after one scrape of each selector."""
    port = free_port()
    (directory / "config.toml").write_text(
        f'[service]\naddress = "{LOOPBACK}"\nport = {port}\n[bridge.selectors]\n{selectors}'
    )
    args = ["-c", str(directory / "config.toml")]
    if web_yaml is not None:
        (directory / "web.yml").write_text(web_yaml)
        args += ["--web.config.file", str(directory / "web.yml")]
    dump = directory / "modules.txt"
    command = [sys.executable, "-c", _SERVE, str(dump), *args]
    with running("serve", command, directory, python_env()) as child:
        url = f"http://{LOOPBACK}:{port}"
        wait_http(f"{url}/-/healthy", 20, watch=[child])
        for line in selectors.splitlines():
            http_get(f"{url}/bridge?selector={line.split()[0]}")
        http_get(f"{url}/metrics")
        child.process.send_signal(signal.SIGTERM)
        assert child.process.wait(10) == 0
    return set(dump.read_text().split())


def _loaded(modules: set[str], prefix: str) -> list[str]:
    return sorted(m for m in modules if m == prefix or m.startswith(prefix + "."))


def test_serve_with_a_file_selector_loads_the_daemon_only(tmp_path: Path) -> None:
    (tmp_path / "a.prom").write_text("a 1\n")
    modules = _serve_modules(tmp_path, f'a = {{ kind = "file", path = "{tmp_path}/a.prom" }}\n')
    assert "local_exporter.bridge.sources.file" in modules and "local_exporter.bridge.app" in modules
    assert {prefix: _loaded(modules, prefix) for prefix in NEVER_FOR_A_FILE} == {
        prefix: [] for prefix in NEVER_FOR_A_FILE
    }


def test_a_dbus_selector_and_a_web_config_load_their_libraries(tmp_path: Path) -> None:
    modules = _serve_modules(
        tmp_path,
        'a = { kind = "dbus", destination = "org.example.X", path = "/org/example/X", method = "org.example.X.Get" }\n',
        users_yaml() + "auth_excluded_paths: [/-/healthy]\n",
    )
    for needed in (
        "dbus_next",
        "local_exporter.bridge.sources.dbus",
        "bcrypt",
        "local_exporter.bridge.webconfig.guard",
    ):
        assert needed in modules, needed
    for prefix in ("local_exporter.bundle", "local_exporter.sim", "local_exporter.demo", "grafanalib"):
        assert _loaded(modules, prefix) == [], prefix
