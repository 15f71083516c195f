"""The example web configs in deploy/web-config/: Debian's `promtool check web-config` accepts the
portable one, and our loader accepts both; every key is documented in docs/web-config.md."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from local_exporter.bridge.webconfig.loader import load
from tests.support.processes import ROOT
from tests.support.web import Pki

EXAMPLES = ROOT / "deploy" / "web-config"
PORTABLE = EXAMPLES / "web-config.yml"
EVERY_KEY = EXAMPLES / "web-config-every-key.yml"
DOC = (ROOT / "docs" / "web-config.md").read_text()
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
# Keys newer than the exporter-toolkit Debian 12's promtool (2.42) was built with.
NEWER_THAN_PROMTOOL = {"client_allowed_sans", "auth_excluded_paths", "rate_limit"}


def _with_certificates(example: Path, directory: Path) -> Path:
    """The example copied next to the TLS files it names (tls/ relative to it)."""
    pki = Pki(directory)
    (directory / "tls").mkdir()
    for name, source in (("server.crt", "server.crt"), ("server.key", "server.key"), ("client-ca.crt", "ca.pem")):
        shutil.copy(directory / source, directory / "tls" / name)
    assert pki.directory == directory
    return Path(shutil.copy(example, directory / example.name))


def _promtool(path: Path) -> subprocess.CompletedProcess[str]:
    # Run from elsewhere: relative names must resolve against the file's directory.
    return subprocess.run(
        [PROMTOOL, "check", "web-config", str(path)], capture_output=True, text=True, cwd="/", check=False
    )


def test_promtool_accepts_the_portable_example(tmp_path: Path) -> None:
    result = _promtool(_with_certificates(PORTABLE, tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_promtool_rejects_only_the_keys_newer_than_its_toolkit(tmp_path: Path) -> None:
    result = _promtool(_with_certificates(EVERY_KEY, tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert set(re.findall(r"field (\w+) not found", output)) == NEWER_THAN_PROMTOOL, output


@pytest.mark.parametrize("example", [PORTABLE, EVERY_KEY], ids=lambda p: p.name)
def test_our_loader_accepts_the_examples(tmp_path: Path, example: Path) -> None:
    config = load(_with_certificates(example, tmp_path))
    assert config.tls is not None and config.tls.client_auth_type == "RequireAndVerifyClientCert"
    assert dict(config.users).keys() == {"prometheus"}


def _keys(node: object, prefix: str = "") -> set[str]:
    if not isinstance(node, dict):
        return set()
    found = set()
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        found.add(dotted)
        if key not in ("basic_auth_users",):
            found |= _keys(value, f"{dotted}.")
    return found


def test_every_key_is_documented() -> None:
    keys = _keys(yaml.safe_load(EVERY_KEY.read_text())) | {
        "tls_server_config.cert",
        "tls_server_config.key",
        "tls_server_config.client_ca",
    }
    keys |= {"tls_server_config.curve_preferences"}  # documented as refused
    undocumented = sorted(key for key in keys if f"`{key.rsplit('.', 1)[-1]}`" not in DOC)
    assert not undocumented
