"""deploy/systemd/local-exporter.service: accepted by systemd-analyze without a warning, hardened
as the issue asks, and scored by systemd's own exposure analysis."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "local-exporter.service"
ANALYZE = shutil.which("systemd-analyze")
#: Where the unit expects the command (pip's default for a system-wide install).
INSTALLED = "/usr/local/bin/local-exporter"

pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def _here(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with its command pointing at this checkout's (verify checks it is executable)."""
    command = Path(sys.executable).with_name("local-exporter")
    unit = tmp_path / "local-exporter.service"
    unit.write_text((text or UNIT.read_text()).replace(INSTALLED, str(command)))
    return unit


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60)


def test_systemd_analyze_verifies_the_unit_without_a_word(tmp_path: Path) -> None:
    result = _verify(_here(tmp_path))
    assert result.returncode == 0 and result.stdout + result.stderr == ""


def test_verify_would_catch_a_bad_directive(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystem=everything")
    result = _verify(_here(tmp_path, broken))
    assert "protect system value" in result.stderr


def test_the_unit_is_hardened_as_asked() -> None:
    directives = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in UNIT.read_text().splitlines() if "=" in line}
    assert directives["DynamicUser"] == "yes" and directives["SupplementaryGroups"] == "zincati"
    assert directives["NoNewPrivileges"] == "yes" and directives["ProtectSystem"] == "strict"
    assert directives["ProtectHome"] == "yes" and directives["PrivateTmp"] == "yes"
    assert directives["RestrictAddressFamilies"] == "AF_UNIX AF_INET AF_INET6"
    assert directives["ReadOnlyPaths"] == "-/run/zincati/public"
    assert directives["ExecStart"] == f"{INSTALLED} serve --config /etc/local_exporter/config.toml"


def test_systemds_exposure_score_is_low(tmp_path: Path) -> None:
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "security", "--offline=yes", str(_here(tmp_path))], capture_output=True, text=True, timeout=60
    )
    score = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert score, result.stdout[-500:] + result.stderr
    assert float(score.group(1)) <= 2.0, result.stdout
