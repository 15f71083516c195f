"""replace_file writes a file whole and leaves no temporary file behind."""

from __future__ import annotations

from pathlib import Path

from local_exporter.common.files import replace_file


def test_a_file_is_replaced_whole_text_or_bytes(tmp_path: Path) -> None:
    path = tmp_path / "targets.json"
    replace_file(path, "[]\n")
    assert path.read_text() == "[]\n"
    replace_file(path, b"\x00new")
    assert path.read_bytes() == b"\x00new"
    assert [p.name for p in tmp_path.iterdir()] == ["targets.json"]
