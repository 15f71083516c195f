"""Reading a regular file whole, within the cap, whatever fstat said about its size."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from local_exporter.errors import PayloadTooLarge
from local_exporter.sources.file import FileSource, _read_on

BODY = b"a 1\n" * 50_000  # 200 KB: more than one 64 KiB chunk


def test_a_regular_file_is_read_whole(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(BODY)
    assert FileSource(str(tmp_path / "f"), max_bytes=len(BODY)).fetch() == BODY


def test_exactly_max_bytes_is_accepted_and_one_more_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(BODY)
    assert FileSource(str(tmp_path / "f"), max_bytes=len(BODY)).fetch() == BODY
    with pytest.raises(PayloadTooLarge):
        FileSource(str(tmp_path / "f"), max_bytes=len(BODY) - 1).fetch()


@pytest.mark.parametrize(
    "first_read",
    [
        1,  # /proc and sysfs files report size 0: the first read asks for 1 byte
        101,  # the file grew since fstat said 100 bytes
    ],
)
def test_a_file_larger_than_fstat_said_is_read_on(tmp_path: Path, first_read: int) -> None:
    (tmp_path / "f").write_bytes(BODY)
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        assert _read_on(fd, os.read(fd, first_read), max_bytes=len(BODY)) == BODY
    finally:
        os.close(fd)


@pytest.mark.parametrize("first_read", [1, 101])
def test_reading_on_stops_one_byte_over_the_cap(tmp_path: Path, first_read: int) -> None:
    (tmp_path / "f").write_bytes(BODY)
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        with pytest.raises(PayloadTooLarge):
            _read_on(fd, os.read(fd, first_read), max_bytes=len(BODY) - 1)
    finally:
        os.close(fd)


def test_a_proc_file_reporting_size_zero_is_read_whole() -> None:
    # A real file whose fstat size is 0 but whose content is not: the kernel's own view.
    assert os.stat("/proc/self/mounts").st_size == 0
    body = FileSource("/proc/self/mounts", max_bytes=1 << 20).fetch()
    assert body.endswith(b"\n") and b" / " in body
