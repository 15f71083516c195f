"""What the fleet-level kinds share (`cincinnati`, `nebraska`): JSON read from an update server
over HTTP(S), kept for `cache_for` seconds, and the last good answer kept for when the server
fails.

A feed is read by one bridge next to Prometheus, not by every host, so a scrape answers from
the cache while it is fresh and reads the server again once it is older: the read is bounded
by the scrape's deadline like any source's. When that read fails (unreachable, an error status,
too slow, malformed, too large), the bridge serves the last good answer instead
(`last_good`, bridge.py), counts the scrape as `last_good`, logs the failure once and shows the
answer's age on /metrics (`answer_age_seconds`). Until a first read succeeds, a failure gets
its status like any source's.

A kind supplies the URLs to read and two pure functions: one that turns the JSON documents
into its state (raising `ValueError` with a one-line reason on a wrong shape) and one that
renders that state at a moment (a rollout's planned share moves with time, so the cached state
is rendered again at each scrape).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import urlsplit

from local_exporter.bridge.errors import BadPayload, PayloadTooLarge, SourceUnavailable
from local_exporter.bridge.sources.http import get
from local_exporter.common.fields import Table

if TYPE_CHECKING:
    import aiohttp

#: The update servers refresh their answers every 15-30 s; reading them once a minute is plenty.
DEFAULT_CACHE_SECONDS = 60.0
MAX_CACHE_SECONDS = 86400.0
_HEADERS = {"Accept": "application/json", "Accept-Encoding": "identity", "User-Agent": "local_exporter"}

State = TypeVar("State")


@dataclass(frozen=True)
class FeedSettings:
    """The keys every feed has: where the server is and how long an answer is kept."""

    url: str
    cache_for: float
    #: A file holding a bearer token for servers behind authentication ("" = none).
    bearer_token_file: str = ""


def parse_feed(table: Table) -> FeedSettings | None:
    """`url` (http or https, no query), `cache_for` seconds and `bearer_token_file`."""
    url = table.string("url", required=True)
    cache_for = table.number("cache_for", DEFAULT_CACHE_SECONDS, low=0, high=MAX_CACHE_SECONDS, zero_ok=True)
    token_file = table.string("bearer_token_file", "")
    if url is None or token_file is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        table.problem("url", f"must be an http:// or https:// URL with a host, got {url[:80]!r}")
        return None
    if parts.query or parts.fragment:
        table.problem("url", "must be the server's base URL, without a query or fragment")
        return None
    if token_file and not token_file.startswith("/"):
        table.problem("bearer_token_file", f"must be an absolute path, got {token_file!r}")
        return None
    return FeedSettings(url.rstrip("/"), cache_for, token_file)


async def fetch_capped(session: aiohttp.ClientSession, url: str, remaining: int, limit: int) -> bytes:
    """One answer within what is left of a read's byte budget; too_large names the whole budget."""
    try:
        return await get(session, url, remaining, url)
    except PayloadTooLarge:
        raise PayloadTooLarge(limit) from None


def decode(url: str, body: bytes) -> Any:
    """A JSON document, or BadPayload saying where it broke."""
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise BadPayload(f"GET {url}: not UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise BadPayload(f"GET {url}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


#: What a feed's `load` reads documents with: `await get("/v1/graph?...")` is the decoded JSON
#: of the server's answer to that path (SourceError when there is none).
Get = Callable[[str], Awaitable[Any]]


class FeedSource(Generic[State]):
    """A cached read of the server: `load(get)` reads what it needs through `get` and returns
    its state (ValueError with a one-line reason for a wrong shape); `render(state, fetched,
    now)` writes it. `max_bytes` bounds everything one read takes in, every page together."""

    def __init__(
        self,
        settings: FeedSettings,
        load: Callable[[Get], Awaitable[State]],
        render: Callable[[State, float, float], bytes],
        max_bytes: int,
    ) -> None:
        self.settings = settings
        self._load = load
        self._render = render
        self.max_bytes = max_bytes
        self._session: aiohttp.ClientSession | None = None
        self._state: State | None = None
        self._fetched = 0.0

    def fetch(self) -> bytes | Awaitable[bytes]:
        now = time.time()
        if self._state is not None and now - self._fetched < self.settings.cache_for:
            return self._render(self._state, self._fetched, now)
        return self._read()

    def last_good(self) -> bytes | None:
        """The last good answer rendered now, or None before the first one."""
        return None if self._state is None else self._render(self._state, self._fetched, time.time())

    def gauges(self) -> dict[str, float]:
        return {} if self._state is None else {"answer_age_seconds": max(0.0, time.time() - self._fetched)}

    async def _read(self) -> bytes:
        session = self._client()
        if self.settings.bearer_token_file:
            # Read at each fetch: a rotated token is used from the next read on.
            session.headers["Authorization"] = f"Bearer {_token(self.settings.bearer_token_file)}"
        taken = 0
        last_url = self.settings.url

        async def get(path: str) -> Any:
            nonlocal taken, last_url
            last_url = self.settings.url + path
            body = await fetch_capped(session, last_url, self.max_bytes - taken, self.max_bytes)
            taken += len(body)
            return decode(last_url, body)

        try:
            state = await self._load(get)
        except ValueError as exc:
            raise BadPayload(f"GET {last_url}: {exc}") from None
        self._state, self._fetched = state, time.time()
        return self._render(state, self._fetched, self._fetched)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(headers=_HEADERS, auto_decompress=False)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _token(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read(4096).strip()
    except OSError as exc:
        raise SourceUnavailable(f"bearer_token_file {path}: {exc.strerror or exc}") from None
