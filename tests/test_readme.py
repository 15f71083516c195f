"""README opens with the two fresh-machine commands, and CI runs exactly the test one."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```sh\n(.+?)\n```", text)[:2]


def test_readme_opens_with_demo_and_test_commands() -> None:
    run, test = readme_commands()
    assert run == "scripts/bootstrap && .venv/bin/local-exporter demo", "the main job is the demo (tests/demo)"
    assert test.startswith("scripts/bootstrap && ") and "pytest" in test
    head = (ROOT / "README.md").read_text().split("```sh")[0]
    assert head.count("\n") <= 4, "the commands come first"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    _, test = readme_commands()
    lines = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[-1] == test
