"""The demo's webhook receiver: every notification Alertmanager sends, printed as one line per alert."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Receiver:
    """Records what each receiver path (`/pager`, `/ticket`, `/heartbeat`) gets, and prints each
    alert when it first fires and when it resolves (Alertmanager repeats a group's alerts in every
    notification of the group)."""

    out: Callable[[str], None] = print
    #: Keep every alert in `received` (the demo and tests read it); a long-running receiver does not.
    remember: bool = True
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _status: dict[tuple[str, tuple[tuple[str, str], ...]], str] = field(default_factory=dict)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{receiver}", self._notification)
        app.router.add_get("/-/healthy", self._healthy)
        return app

    def firing(self) -> set[str]:
        """Alert names notified as firing (and not resolved since), heartbeat excluded."""
        state: dict[str, str] = {}
        for path, alert in self.received:
            if path != "heartbeat":
                state[alert["labels"]["alertname"]] = alert["status"]
        return {name for name, status in state.items() if status == "firing"}

    async def _healthy(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _notification(self, request: web.Request) -> web.Response:
        path = request.match_info["receiver"]
        try:
            body = await request.json()
            alerts = list(body["alerts"])
        except (ValueError, KeyError, TypeError):
            raise web.HTTPBadRequest(text="not an Alertmanager webhook notification\n") from None
        for alert in alerts:
            if self.remember:
                self.received.append((path, alert))
            key = (path, tuple(sorted(alert.get("labels", {}).items())))
            if self._status.get(key) != alert.get("status"):
                self._status[key] = alert.get("status", "")
                self.out(_line(path, alert))
        return web.Response(text="ok\n")


def _line(path: str, alert: dict[str, Any]) -> str:
    labels, annotations = alert.get("labels", {}), alert.get("annotations", {})
    where = labels.get("instance") or labels.get("stream") or labels.get("job") or ""
    when = time.strftime("%H:%M:%S")
    status = str(alert.get("status", "?")).upper()
    name, summary = labels.get("alertname", "?"), annotations.get("summary", "")
    return f"  {when}  alert -> {path:<9} {status:<8} {name} {where}  {summary}"
