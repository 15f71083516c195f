"""`kind = "http"`: an exporter that speaks HTTP on this host, on a port or on a Unix socket.

`GET url` with the same deadline, byte cap and Content-Type rules as every kind (the body is
passed through; its format is recognised from the body, as for the others). `socket` sends the
request over a Unix stream socket instead of TCP, for daemons that serve HTTP there (the URL's
host is then only the Host header).
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from local_exporter.bridge.errors import PayloadTooLarge, SourceFailed, SourceUnavailable, from_os_error
from local_exporter.bridge.sources.base import ParseContext, SharedResources, SourceLimits
from local_exporter.bridge.sources.uds import MAX_PATH_BYTES
from local_exporter.common.fields import Table

if TYPE_CHECKING:
    # Imported at the first scrape instead: `check-config` never needs aiohttp's client, which
    # costs it ~150 ms of start-up (a serving bridge has it loaded with aiohttp's server anyway).
    import aiohttp

_UNAVAILABLE = frozenset((errno.ENOENT, errno.ECONNREFUSED, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.ENOTSOCK))
_CHUNK = 64 * 1024
# What Prometheus asks for: OpenMetrics first, then the text format. No compression, so that the
# byte cap counts what the exporter sends.
_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0;q=0.9,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "identity",
    "User-Agent": "local_exporter",
}


@dataclass(frozen=True)
class HttpSettings:
    url: str
    socket: PurePosixPath | None = None

    def describe(self) -> str:
        return f"http {self.url}" + (f" via {self.socket}" if self.socket else "")

    def open(self, limits: SourceLimits, shared: SharedResources) -> HttpSource:
        return HttpSource(self.url, None if self.socket is None else str(self.socket), limits.max_bytes)


def parse(table: Table, context: ParseContext) -> HttpSettings | None:
    url = table.string("url", required=True)
    socket = table.absolute_path("socket") if "socket" in table.raw else None
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        table.problem("url", f"must be an http:// URL with a host, got {url[:80]!r}")
        return None
    if socket is not None and len(os.fsencode(str(socket))) > MAX_PATH_BYTES:
        table.problem("socket", f"is longer than the {MAX_PATH_BYTES} bytes a Unix socket path may have")
        return None
    return HttpSettings(url, socket)


class HttpSource:
    def __init__(self, url: str, socket: str | None, max_bytes: int) -> None:
        self.url = url
        self.socket = socket
        self.max_bytes = max_bytes
        self._session: aiohttp.ClientSession | None = None

    def gauges(self) -> dict[str, float]:
        return {}

    def _client(self) -> aiohttp.ClientSession:
        # Made in the running loop at the first scrape; connections are kept alive between scrapes.
        if self._session is None:
            import aiohttp

            connector = aiohttp.UnixConnector(path=self.socket) if self.socket else aiohttp.TCPConnector(limit=8)
            self._session = aiohttp.ClientSession(connector=connector, headers=_HEADERS, auto_decompress=False)
        return self._session

    async def fetch(self) -> bytes:
        return await get(self._client(), self.url, self.max_bytes, self.socket or self.url)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def get(session: aiohttp.ClientSession, url: str, max_bytes: int, target: str) -> bytes:
    """The body of `GET url` (HTTP 200, uncompressed, at most max_bytes), or the SourceError
    that says why not; `target` is what a connection failure names (a socket path)."""
    import aiohttp  # loaded with the session on the first scrape: a dict lookup from then on

    try:
        async with session.get(url, allow_redirects=False) as response:
            if response.status != 200:
                raise SourceFailed(f"GET {url}: HTTP {response.status} {response.reason or ''}".rstrip())
            if response.headers.get("Content-Encoding", "identity") not in ("identity", ""):
                raise SourceFailed(f"GET {url}: compressed although identity was asked for")
            return await _read_capped(response, max_bytes)
    except aiohttp.ClientSSLError as exc:
        raise SourceFailed(f"GET {url}: TLS: {exc}"[:200]) from None
    except aiohttp.ClientConnectorDNSError:
        raise SourceUnavailable(f"GET {url}: the host name does not resolve") from None
    except aiohttp.ClientConnectorError as exc:
        cause = exc.os_error
        # aiohttp's error text ("Connect call failed (...)") hides errno's own words.
        if cause.errno:
            cause = OSError(cause.errno, os.strerror(cause.errno))
        raise from_os_error("connect", target, cause, _UNAVAILABLE) from None
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
        raise SourceFailed(f"GET {url}: {exc.__class__.__name__}: the server broke off") from None
    except aiohttp.ClientError as exc:
        raise SourceUnavailable(f"GET {url}: {exc.__class__.__name__}: {exc}"[:200]) from None


async def _read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    declared = response.content_length
    if declared is not None and declared > max_bytes:
        raise PayloadTooLarge(max_bytes)
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.content.iter_chunked(_CHUNK):
        total += len(chunk)
        if total > max_bytes:
            raise PayloadTooLarge(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)
