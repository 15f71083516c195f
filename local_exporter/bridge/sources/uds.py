"""`kind = "uds"`: Zincati's protocol — connect, send nothing, read to EOF.

The daemon writes its whole exposition to each new connection and closes it. A close with
zero bytes is a failure (Zincati does that when its encoder fails), never an empty success.
A socket whose listen backlog is full (a daemon that stopped accepting) is `unavailable`.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from dataclasses import dataclass
from pathlib import PurePosixPath

from local_exporter.bridge.errors import (
    BadPayload,
    PayloadTooLarge,
    SourceError,
    SourceUnavailable,
    from_os_error,
)
from local_exporter.bridge.sources.base import ParseContext, SharedResources, SourceLimits
from local_exporter.common.fields import Table

_UNAVAILABLE = frozenset((errno.ENOENT, errno.ECONNREFUSED, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.ENOTSOCK))
# Below glibc's mmap threshold (128 KiB): a larger receive buffer costs an mmap/munmap per call.
_CHUNK = 64 * 1024
# sockaddr_un.sun_path holds 108 bytes with the terminating NUL: longer paths cannot be connected to.
MAX_PATH_BYTES = 107
BACKLOG_FULL = "the socket's listen backlog is full: the daemon is not accepting connections"


@dataclass(frozen=True)
class UdsSettings:
    path: PurePosixPath

    def describe(self) -> str:
        return f"uds {self.path}"

    def open(self, limits: SourceLimits, shared: SharedResources) -> UdsSource:
        return UdsSource(str(self.path), limits.max_bytes)


def parse(table: Table, context: ParseContext) -> UdsSettings | None:
    path = table.absolute_path("path")
    if path is None:
        return None
    size = len(os.fsencode(str(path)))
    if size > MAX_PATH_BYTES:
        table.problem("path", f"is {size} bytes long; Unix socket paths are limited to {MAX_PATH_BYTES} bytes")
        return None
    return UdsSettings(path)


class UdsSource:
    def __init__(self, path: str, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes

    def gauges(self) -> dict[str, float]:
        return {}

    async def fetch(self) -> bytes:
        loop = asyncio.get_running_loop()
        # A bare non-blocking socket costs less per scrape than a StreamReader, and closing it in
        # `finally` releases the fd on every path, including cancellation at the deadline.
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.setblocking(False)
            # Not loop.sock_connect: a Unix socket connects at once or fails, never "in
            # progress", and its EAGAIN means the listen backlog is full. sock_connect takes
            # EAGAIN for a connect in progress, waits for the socket to be writable (an
            # unconnected one is, at once) and returns as if connected; the read then failed
            # with EINVAL, a 502 "Invalid argument" that said nothing of the cause.
            try:
                sock.connect(self.path)
            except BlockingIOError:
                raise SourceUnavailable(f"connect {self.path}: {BACKLOG_FULL}") from None
            except OSError as exc:
                raise _error("connect", self.path, exc) from None
            chunks = []
            total = 0
            try:
                # Read in the same coroutine: every await layer costs ~1 % of a scrape.
                while chunk := await loop.sock_recv(sock, _CHUNK):
                    total += len(chunk)
                    if total > self.max_bytes:
                        raise PayloadTooLarge(self.max_bytes)
                    chunks.append(chunk)
            except OSError as exc:
                raise _error("read", self.path, exc) from None
            if total == 0:
                raise BadPayload(f"read {self.path}: closed without writing any bytes")
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        finally:
            sock.close()

    async def aclose(self) -> None:
        return None


def _error(action: str, path: str, exc: OSError) -> SourceError:
    return from_os_error(action, path, exc, _UNAVAILABLE)
