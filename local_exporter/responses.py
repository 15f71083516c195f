"""Small response helpers shared by every endpoint."""

from __future__ import annotations

from aiohttp import web
from aiohttp.hdrs import ACCEPT_ENCODING
from aiohttp.web import ContentCoding


def text(status: int, message: str) -> web.Response:
    """A one-line `text/plain` answer, as every error of ours is."""
    return web.Response(status=status, text=message + "\n", content_type="text/plain", charset="utf-8")


def compress_if_accepted(request: web.Request, response: web.Response) -> web.Response:
    if accepts_gzip(request.headers.get(ACCEPT_ENCODING, "")):
        response.enable_compression(ContentCoding.gzip)
    return response


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
