"""Reading a regular file whole, within the cap, whatever fstat said about its size."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from local_exporter.errors import PayloadTooLarge
from local_exporter.sources.file import _read_capped

BODY = b"a 1\n" * 50_000  # 200 KB: more than one 64 KiB chunk


@pytest.mark.parametrize(
    "size_hint",
    [
        len(BODY),  # the usual case: one read of the file's own size
        0,  # /proc and sysfs files report 0: read on in chunks
        100,  # the file grew since fstat: read on in chunks
        len(BODY) * 2,  # it shrank: the short first read is EOF
    ],
)
def test_whole_file_whatever_the_size_hint(tmp_path: Path, size_hint: int) -> None:
    (tmp_path / "f").write_bytes(BODY)
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        assert _read_capped(fd, size_hint, max_bytes=len(BODY)) == BODY
    finally:
        os.close(fd)


@pytest.mark.parametrize("size_hint", [len(BODY), 0, 100])
def test_one_byte_over_the_cap_is_too_large(tmp_path: Path, size_hint: int) -> None:
    (tmp_path / "f").write_bytes(BODY)
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        with pytest.raises(PayloadTooLarge):
            _read_capped(fd, size_hint, max_bytes=len(BODY) - 1)
    finally:
        os.close(fd)
