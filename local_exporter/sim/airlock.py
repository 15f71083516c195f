"""An airlock-like FleetLock server for the simulator: a pure semaphore model and its HTTP app.

`Semaphores` is the reboot-slot database, with no clock and no I/O: each group has a number of
slots; `pre_reboot` takes one (recursively: a holder asking again keeps its one slot),
`steady_state` releases it if held. Nothing ever expires: a host whose update fails never reports
steady state, keeps its slot and so stalls its group, exactly as airlock does on purpose.

`make_airlock_app` serves it over the FleetLock protocol as coreos/airlock does (read from its
sources, `internal/server/*.go`, `internal/lock/*.go`, `internal/herrors`):

- `/v1/pre-reboot` and `/v1/steady-state`. The protocol says POST; airlock's Go `ServeMux`
  routes every method to the handler, and so does this app (a GET without the header gets the
  same 400 as in airlock).
- Every request first counts in `airlock_v1_*_incoming_requests_total`, valid or not.
- Validation, in airlock's order: header `fleet-lock-protocol` must be exactly `true`; the body
  must decode as JSON `{"client_params": {"id": str, "group": str}}`; group non-empty; id
  non-empty. Any failure is **400** `invalid_client_identity`. Then a group missing from the
  configuration is **400** `unknown_group`; an unreachable database (`Semaphores.database_up =
  False`, etcd down in airlock) is **500** `failed_sem_init`; a full semaphore is **500**
  `failed_lock` — the code Zincati counts under `zincati_strategy_fleet_lock_errors_total`.
- Success is **200** with an empty body. Errors are written as Go's `http.Error` writes them:
  `Content-Type: text/plain; charset=utf-8`, `X-Content-Type-Options: nosniff`, body the
  compact JSON `{"kind":…,"value":…}` plus a newline (clients parse the body, not the type).

Deliberate differences from airlock, all outside what Zincati ever sends:

- The body is parsed strictly: Go's decoder would ignore data after the first JSON value and
  match field names case-insensitively; here both are `invalid_client_identity`.
- `GET /metrics` is served by the same app; airlock serves it on a separate status port.
- `/metrics` holds only airlock's own six families (no `go_*`/`process_*`), values read live from
  the model. Airlock refreshes the `airlock_database_*` gauges from etcd once a minute and after
  each steady-state; the live view is what it would show after its next consistency check.
- The database always holds the configured slot count (airlock keeps the count a group's
  semaphore was first created with, and only warns when the configuration later differs).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from local_exporter.agents.airlock import (
    CONFIG_GROUPS,
    CONFIG_SLOTS,
    DATABASE_SLOTS,
    ERROR_STATUS,
    LOCK_HOLDERS,
    METRICS_PATH,
    PRE_REBOOT_PATH,
    PRE_REBOOT_REQUESTS,
    PROTOCOL_HEADER,
    STEADY_STATE_PATH,
    STEADY_STATE_REQUESTS,
    ErrorKind,
)

_METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: What Go's encoding/json escapes by default (json.Marshal uses HTML-safe escaping).
_GO_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


class LockError(Exception):
    """A FleetLock error: `kind` is machine-readable (Zincati's metric label), `value` is for humans."""

    def __init__(self, kind: ErrorKind, value: str) -> None:
        super().__init__(f"{kind}: {value}")
        self.kind: ErrorKind = kind
        self.value = value

    @property
    def status(self) -> int:
        return ERROR_STATUS[self.kind]


def _invalid_identity(reason: str) -> LockError:
    return LockError("invalid_client_identity", f"failed to validate client identity: {reason}")


class Semaphores:
    """Airlock's reboot semaphores, one per configured group; pure and deterministic."""

    def __init__(self, groups: Mapping[str, int]) -> None:
        for group, slots in groups.items():
            if not group:
                raise ValueError("group names must be non-empty")
            if isinstance(slots, bool) or not isinstance(slots, int) or slots < 0:
                raise ValueError(f"group {group!r}: slots must be an integer >= 0, got {slots!r}")
        self._slots = dict(groups)
        self._holders: dict[str, set[str]] = {group: set() for group in groups}
        #: False simulates an unreachable database: every lock operation fails with `failed_sem_init`.
        self.database_up = True
        #: Requests received per endpoint, by HTTP or from simulated hosts sharing this object.
        self.pre_reboot_requests = 0
        self.steady_state_requests = 0

    @property
    def slots(self) -> dict[str, int]:
        """Configured slots per group (a copy)."""
        return dict(self._slots)

    def holders(self, group: str) -> tuple[str, ...]:
        """Current holders of `group`'s slots, sorted (airlock keeps them sorted too)."""
        if group not in self._holders:
            raise KeyError(group)
        return tuple(sorted(self._holders[group]))

    def pre_reboot(self, group: str, client_id: str) -> bool:
        """Take a slot for `client_id`; True if newly taken, False if it already held one.

        Raises `LockError` (`invalid_client_identity`, `unknown_group`, `failed_sem_init`, `failed_lock`).
        """
        holders = self._semaphore(group, client_id)
        if client_id in holders:
            return False
        if len(holders) >= self._slots[group]:
            raise LockError("failed_lock", f"all {self._slots[group]} semaphore slots currently locked")
        holders.add(client_id)
        return True

    def steady_state(self, group: str, client_id: str) -> bool:
        """Release `client_id`'s slot if it holds one; True if a slot was released.

        Raises `LockError` (`invalid_client_identity`, `unknown_group`, `failed_sem_init`).
        """
        holders = self._semaphore(group, client_id)
        if client_id not in holders:
            return False
        holders.remove(client_id)
        return True

    def _semaphore(self, group: str, client_id: str) -> set[str]:
        if not group:
            raise _invalid_identity("empty group")
        if not client_id:
            raise _invalid_identity("empty node ID")
        if group not in self._slots:
            raise LockError("unknown_group", f"unknown group {_go_quote(group)}")
        if not self.database_up:
            raise LockError("failed_sem_init", "failed to initialize semaphore manager: context deadline exceeded")
        return self._holders[group]


def _go_quote(text: str) -> str:
    """Close enough to Go's `%q` for the group names airlock reports."""
    return json.dumps(text, ensure_ascii=False)


def _go_json(payload: Mapping[str, str]) -> str:
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    for raw, escaped in _GO_JSON_ESCAPES.items():
        text = text.replace(raw, escaped)
    return text


class AirlockCollector(Collector):
    """Airlock's metric families, read live from the model plus the two request counters."""

    def __init__(self, semaphores: Semaphores) -> None:
        self.semaphores = semaphores

    def collect(self) -> Iterable[Metric]:
        slots = self.semaphores.slots
        groups = sorted(slots)
        # Families in name order, as Go's client_golang writes them.
        yield GaugeMetricFamily(CONFIG_GROUPS, "Total number of configured groups.", value=len(slots))
        yield self._per_group(CONFIG_SLOTS, "Total number of configured slots per group.", groups, slots.__getitem__)
        yield self._per_group(
            LOCK_HOLDERS,
            "Total number of locked slots per group, in the database.",
            groups,
            lambda group: len(self.semaphores.holders(group)),
        )
        yield self._per_group(
            DATABASE_SLOTS,
            "Total number of slots per group, in the database.",
            groups,
            slots.__getitem__,
        )
        yield CounterMetricFamily(
            PRE_REBOOT_REQUESTS,
            "Total number of incoming requests to /v1/pre-reboot.",
            value=self.semaphores.pre_reboot_requests,
        )
        yield CounterMetricFamily(
            STEADY_STATE_REQUESTS,
            "Total number of incoming requests to /v1/steady-state.",
            value=self.semaphores.steady_state_requests,
        )

    @staticmethod
    def _per_group(name: str, documentation: str, groups: list[str], value: Callable[[str], int]) -> Metric:
        family = GaugeMetricFamily(name, documentation, labels=["group"])
        for group in groups:
            family.add_metric([group], value(group))
        return family


SEMAPHORES = web.AppKey("airlock_semaphores", Semaphores)
COLLECTOR = web.AppKey("airlock_collector", AirlockCollector)
REGISTRY = web.AppKey("airlock_registry", CollectorRegistry)


async def _client_params(request: web.Request) -> tuple[str, str]:
    """(group, id) from a FleetLock request, or `invalid_client_identity` as airlock validates it."""
    if request.headers.get(PROTOCOL_HEADER) != "true":
        raise _invalid_identity("wrong 'fleet-lock-protocol' header")
    raw = await request.read()
    if not raw.strip(b" \t\r\n"):
        raise _invalid_identity("EOF")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as err:
        raise _invalid_identity(str(err)) from None
    if body is None:
        body = {}  # Go decodes a JSON null into the zero value: empty group and id
    if not isinstance(body, dict):
        raise _invalid_identity(f"cannot unmarshal {type(body).__name__} into the request body")
    params = body.get("client_params")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise _invalid_identity(f"cannot unmarshal {type(params).__name__} into client_params")
    fields: dict[str, str] = {}
    for name in ("group", "id"):
        value = params.get(name)
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise _invalid_identity(f"cannot unmarshal {type(value).__name__} into client_params.{name}")
        fields[name] = value
    return fields["group"], fields["id"]


def _error_response(err: LockError) -> web.Response:
    return web.Response(
        status=err.status,
        text=_go_json({"kind": err.kind, "value": err.value}) + "\n",
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


async def _pre_reboot(request: web.Request) -> web.Response:
    request.app[SEMAPHORES].pre_reboot_requests += 1
    return await _lock_operation(request, request.app[SEMAPHORES].pre_reboot)


async def _steady_state(request: web.Request) -> web.Response:
    request.app[SEMAPHORES].steady_state_requests += 1
    return await _lock_operation(request, request.app[SEMAPHORES].steady_state)


async def _lock_operation(request: web.Request, operation: Callable[[str, str], object]) -> web.Response:
    """Both endpoints: count first (airlock does), then validate, then take or release a slot."""
    try:
        group, client_id = await _client_params(request)
        operation(group, client_id)
    except LockError as err:
        return _error_response(err)
    return web.Response(status=200)


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": _METRICS_CONTENT_TYPE})


def make_airlock_app(semaphores: Semaphores) -> web.Application:
    """The FleetLock endpoints and `/metrics` (on a private registry) over `semaphores`."""
    collector = AirlockCollector(semaphores)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    app = web.Application()
    app[SEMAPHORES] = semaphores
    app[COLLECTOR] = collector
    app[REGISTRY] = registry
    app.router.add_route("*", PRE_REBOOT_PATH, _pre_reboot)
    app.router.add_route("*", STEADY_STATE_PATH, _steady_state)
    app.router.add_get(METRICS_PATH, _metrics)
    return app
