"""`local-exporter bundle` writes where a bundle belongs (bundle/generate.py writable): a new or
empty directory, or one holding a bundle already; never scattered into someone's directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_exporter.cli import main


def test_a_new_directory_gets_the_bundle(tmp_path: Path) -> None:
    out = tmp_path / "monitoring"
    assert main(["bundle", "--out", str(out)]) == 0
    assert (out / "prometheus" / "rules" / "recording.yml").is_file()
    # Written again over itself: a directory holding a bundle is the bundle's.
    (out / "README.local").write_text("notes\n")
    assert main(["bundle", "--out", str(out)]) == 0
    assert main(["bundle", "--out", str(out), "--check"]) == 0


def test_someone_elses_directory_is_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("mine\n")
    assert main(["bundle", "--out", str(tmp_path)]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    error = capsys.readouterr().err
    assert f"{tmp_path} holds other files and no bundle: nothing written" in error and "--out" in error


def test_a_file_is_no_place_for_a_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["bundle", "--out", str(target)]) == 1
    assert target.read_text() == "x"
    assert f"{target} is not a directory: nothing written" in capsys.readouterr().err
