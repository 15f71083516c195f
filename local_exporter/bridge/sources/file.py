"""`kind = "file"`: the whole content of a regular file, as written by the daemon."""

from __future__ import annotations

import errno
import os
import stat
import time
from dataclasses import dataclass
from pathlib import PurePosixPath

from local_exporter.bridge.errors import (
    PayloadTooLarge,
    SourceError,
    SourceFailed,
    SourceStale,
    from_os_error,
)
from local_exporter.bridge.sources.base import ParseContext, SharedResources, SourceLimits
from local_exporter.common.fields import Table

# Below glibc's mmap threshold (128 KiB), so reading on costs no mmap/munmap per chunk.
_CHUNK = 64 * 1024
_MISSING = frozenset((errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.EPERM))


@dataclass(frozen=True)
class FileSettings:
    path: PurePosixPath
    #: Seconds since the last write after which the file is `stale` (503); 0: never.
    max_age: float = 0.0

    def describe(self) -> str:
        return f"file {self.path}"

    def open(self, limits: SourceLimits, shared: SharedResources) -> FileSource:
        return FileSource(str(self.path), limits.max_bytes, self.max_age)


def parse(table: Table, context: ParseContext) -> FileSettings | None:
    path = table.absolute_path("path")
    max_age = table.number("max_age", 0.0, low=0, high=MAX_AGE_SECONDS, zero_ok=True)
    return None if path is None else FileSettings(path, max_age)


#: A week: a larger max_age would hide a daemon that stopped for good.
MAX_AGE_SECONDS = 7 * 24 * 3600.0


class FileSource:
    def __init__(self, path: str, max_bytes: int, max_age: float = 0.0) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_age = max_age
        # The modification time seen at the last read, for /metrics.
        self.mtime: float | None = None

    def gauges(self) -> dict[str, float]:
        if self.mtime is None:
            try:
                self.mtime = os.stat(self.path).st_mtime
            except OSError:
                return {}
        return {"file_mtime_seconds": self.mtime}

    def fetch(self) -> bytes:
        body = self._read()
        # Empty, or cut short without its final newline: a daemon rewriting the file in place
        # (not by rename) was caught mid-write. One more read, at once, usually sees it whole;
        # if not, the bridge's payload check reports it.
        if not body.endswith(b"\n"):
            body = self._read()
        return body

    def _read(self) -> bytes:
        # Read synchronously: files under /run are in memory and a thread hop would cost more than
        # the read. O_NONBLOCK keeps a FIFO from blocking the open; anything but a regular file is
        # refused so /dev/zero or a pipe cannot hang the loop or stream forever.
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
        except OSError as exc:
            raise _error("open", self.path, exc) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise SourceFailed(f"read {self.path}: not a regular file")
            self.mtime = info.st_mtime
            if self.max_age:
                age = time.time() - info.st_mtime
                if age > self.max_age:
                    raise SourceStale(
                        f"{self.path} was last written {age:.0f} s ago, more than max_age {self.max_age:g} s"
                    )
            # The first read asks for the size fstat reported plus one byte: a short read means
            # EOF, so a file that is not being written is read in one call into a buffer of its
            # own size. (Asking for max_bytes + 1 at once would make every read allocate and
            # fault in the whole cap: measured at 55-100 µs per scrape.)
            wanted = min(info.st_size + 1, self.max_bytes + 1)
            first = os.read(fd, wanted)
            if len(first) < wanted:
                return first
            return _read_on(fd, first, self.max_bytes)
        except OSError as exc:
            raise _error("read", self.path, exc) from None
        finally:
            os.close(fd)

    async def aclose(self) -> None:
        return None


def _read_on(fd: int, first: bytes, max_bytes: int) -> bytes:
    """The rest of a file that grew since fstat, never holding more than max_bytes + 1 bytes.

    It is read in chunks, and the byte past the cap tells "exactly max_bytes" from "more".
    """
    limit = max_bytes + 1
    chunks = [first]
    total = len(first)
    while total < limit:
        chunk = os.read(fd, min(_CHUNK, limit - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > max_bytes:
        raise PayloadTooLarge(max_bytes)
    return b"".join(chunks)


def _error(action: str, path: str, exc: OSError) -> SourceError:
    return from_os_error(action, path, exc, _MISSING)
