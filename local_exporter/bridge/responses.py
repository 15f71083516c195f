"""Small response helpers shared by every endpoint."""

from __future__ import annotations

import gzip
from typing import TypeVar

from aiohttp import web
from aiohttp.hdrs import ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, VARY
from aiohttp.web import ContentCoding
from multidict import CIMultiDict

from local_exporter.bridge.answers import AnswerBudget, HeldAnswer

GZIP_LEVEL = 1
_INLINE_GZIP_LIMIT = 256 * 1024


def text(status: int, message: str) -> web.Response:
    """A one-line `text/plain` answer, as every error of ours is."""
    return web.Response(status=status, text=message + "\n", content_type="text/plain", charset="utf-8")


def exposition(
    request: web.Request, body: bytes, content_type: str, budget: AnswerBudget | None = None, size: int = 0
) -> web.Response:
    """A 200 with `body`, gzip-compressed when the client accepts it (Prometheus does). With a
    `budget`, a HeldAnswer: its slot and `size` bytes held there until it is written.

    Up to 256 KiB we compress on the loop at level 1: aiohttp's default level 6 cost ~5x the
    CPU (613 vs 115 µs on 50 KB) for bodies a few percent smaller, and its thread hop costs
    more than compressing these. Larger bodies are left to aiohttp, which compresses them in
    its executor so one big exposition does not stall every other scrape.

    This runs on every scrape, so it makes no Python calls on its common paths: the verdict on
    each Accept-Encoding value and the headers of each content type are looked up, not rebuilt
    (each Python call costs ~0.3 % of a scrape).
    """
    encoding = request.headers.get(ACCEPT_ENCODING, "")
    gzipped = _GZIP_BY_HEADER.get(encoding)
    if gzipped is None:
        gzipped = _remember(_GZIP_BY_HEADER, encoding, accepts_gzip(encoding))
    if not gzipped or len(body) > _INLINE_GZIP_LIMIT:
        headers = _PLAIN_HEADERS.get(content_type) or _remember(_PLAIN_HEADERS, content_type, _headers(content_type))
        response = _response(body, headers, budget, size)
        if gzipped:
            response.enable_compression(ContentCoding.gzip)
        return response
    headers = _GZIP_HEADERS.get(content_type) or _remember(_GZIP_HEADERS, content_type, _headers(content_type, "gzip"))
    return _response(gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0), headers, budget, size)


def _response(body: bytes, headers: CIMultiDict[str], budget: AnswerBudget | None, size: int) -> web.Response:
    if budget is None:
        return web.Response(body=body, headers=headers)
    return HeldAnswer(budget, size, body=body, headers=headers)


# Memos keyed by header values and content types, bounded so that clients sending arbitrary
# values cannot grow memory. aiohttp copies the headers into each response: sharing is safe.
_MEMO_LIMIT = 64
_GZIP_BY_HEADER: dict[str, bool] = {}
_PLAIN_HEADERS: dict[str, CIMultiDict[str]] = {}
_GZIP_HEADERS: dict[str, CIMultiDict[str]] = {}
V = TypeVar("V")


def _remember(memo: dict[str, V], key: str, value: V) -> V:
    if len(memo) < _MEMO_LIMIT:
        memo[key] = value
    return value


def _headers(content_type: str, encoding: str = "") -> CIMultiDict[str]:
    headers = CIMultiDict({CONTENT_TYPE: content_type, VARY: ACCEPT_ENCODING})
    if encoding:
        headers[CONTENT_ENCODING] = encoding
    return headers


def accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding header admits gzip (explicitly or as `*`, with q > 0)."""
    for item in header.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "*"):
            continue
        quality = params.strip().lower().replace(" ", "")
        if quality.startswith("q="):
            try:
                return float(quality[2:]) > 0
            except ValueError:
                return False
        return True
    return False
