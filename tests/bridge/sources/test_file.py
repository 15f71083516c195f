"""Reading a regular file whole, within the cap, whatever fstat said about its size."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from local_exporter.bridge.errors import PayloadTooLarge, SourceStale
from local_exporter.bridge.sources.file import FileSource, _read_on

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


def test_a_file_older_than_max_age_is_stale(tmp_path: Path) -> None:
    path = tmp_path / "m.prom"
    path.write_text("up 1\n")
    old = time.time() - 120
    os.utime(path, (old, old))
    with pytest.raises(SourceStale) as caught:
        FileSource(str(path), 1000, max_age=60).fetch()
    assert caught.value.status == 503
    assert f"{path} was last written 120 s ago, more than max_age 60 s" in str(caught.value)
    # Within max_age, or without one, the same file is served.
    assert FileSource(str(path), 1000, max_age=600).fetch() == b"up 1\n"
    assert FileSource(str(path), 1000).fetch() == b"up 1\n"


def test_the_mtime_is_reported_for_metrics(tmp_path: Path) -> None:
    path = tmp_path / "m.prom"
    path.write_text("up 1\n")
    os.utime(path, (1_700_000_000, 1_700_000_000))
    source = FileSource(str(path), 1000)
    assert source.gauges() == {"file_mtime_seconds": 1_700_000_000}  # before any scrape: stat
    os.utime(path, (1_700_000_100, 1_700_000_100))
    source.fetch()
    assert source.gauges() == {"file_mtime_seconds": 1_700_000_100}
    assert FileSource(str(tmp_path / "missing.prom"), 1000).gauges() == {}


def test_a_file_caught_mid_rewrite_is_read_once_more(tmp_path: Path) -> None:
    """A daemon rewriting in place (truncate, then write) between two reads: the second sees it whole."""
    path = tmp_path / "m.prom"
    path.write_text("up 1\nfoo 2")  # cut short: no final newline
    source = FileSource(str(path), 1000)
    reads = []
    original = source._read

    def read_and_finish_the_write() -> bytes:
        body = original()
        reads.append(body)
        path.write_text("up 1\nfoo 2\n")
        return body

    source._read = read_and_finish_the_write  # type: ignore[method-assign]
    assert source.fetch() == b"up 1\nfoo 2\n"
    assert reads == [b"up 1\nfoo 2", b"up 1\nfoo 2\n"]


def test_a_file_still_incomplete_after_the_retry_is_returned_for_the_payload_check(tmp_path: Path) -> None:
    path = tmp_path / "m.prom"
    path.write_text("")
    assert FileSource(str(path), 1000).fetch() == b""  # the bridge turns this into bad_payload (502)
