"""The package's layers, kept by import-linter's contracts in pyproject.toml (docs/architecture.md):
cli > demo > sim | bundle > bridge > agents > common, no import cycles at any depth, and grafanalib
only behind the dashboards' house style. A broken contract fails here, naming the import."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "local_exporter"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on the package under `root`, with this project's contracts."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_contracts_are_kept() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # The daemon importing the simulator: the layers contract names the import.
        (
            "bridge/limits.py",
            "from local_exporter.sim import scenario",
            "local_exporter.bridge.limits -> local_exporter.sim.scenario",
        ),
        # The catalogue importing the daemon.
        (
            "agents/zincati.py",
            "from local_exporter.bridge import errors",
            "local_exporter.agents.zincati -> local_exporter.bridge.errors",
        ),
        # A cycle inside one layer: limits <- config already, so config <- limits closes it.
        (
            "bridge/limits.py",
            "from local_exporter.bridge import config",
            "No cycles are allowed in local_exporter.bridge",
        ),
        # grafanalib outside the house style.
        ("bundle/rules.py", "import grafanalib.core", "local_exporter.bundle.rules -> grafanalib"),
    ],
)
def test_a_violation_fails_naming_the_import(tmp_path: Path, module: str, line: str, broken: str) -> None:
    copy = tmp_path / "local_exporter"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + f"\n{line}\n")
    result = _lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert broken in result.stdout, result.stdout


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _private_imports(text: str, name: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(text, name)):
        if isinstance(node, ast.ImportFrom):
            names = [node.module] if node.module and node.level == 0 else []
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [
            f"{name}:{node.lineno}: {module}"
            for module in names
            if not module.startswith("local_exporter") and any(_private(part) for part in module.split("."))
        ]
    return found


def test_no_private_module_of_a_library_is_imported() -> None:
    # A library's private modules change without notice (grafanalib's `_gen` once stood here).
    found = [
        hit
        for path in sorted(PACKAGE.rglob("*.py"))
        for hit in _private_imports(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert found == []


def test_the_private_import_check_sees_one() -> None:
    text = "import json\nfrom local_exporter.bridge import _x\nfrom grafanalib._gen import DashboardEncoder\n"
    assert _private_imports(text, "style.py") == ["style.py:3: grafanalib._gen"]
