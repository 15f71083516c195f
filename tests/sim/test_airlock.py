"""The airlock-like FleetLock server: the semaphore model, the protocol over real HTTP, its metrics."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from local_exporter.sim.airlock import SEMAPHORES, LockError, Semaphores, make_airlock_app

HEADERS = {"fleet-lock-protocol": "true"}
GROUPS = {"default": 2, "workers": 1, "paused": 0}


def body(client_id: str, group: str = "default") -> dict[str, Any]:
    return {"client_params": {"id": client_id, "group": group}}


@pytest.fixture
async def client(aiohttp_client) -> TestClient:
    return await aiohttp_client(make_airlock_app(Semaphores(GROUPS)))  # type: ignore[no-any-return]


def semaphores_of(client: TestClient) -> Semaphores:
    assert client.app is not None
    semaphores: Semaphores = client.app[SEMAPHORES]
    return semaphores


async def post(
    client: TestClient, path: str, payload: Any, headers: dict[str, str] | None = HEADERS
) -> tuple[int, str]:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    async with client.post(path, data=data, headers=headers) as resp:
        return resp.status, await resp.text()


async def assert_error(
    client: TestClient,
    path: str,
    payload: Any,
    status: int,
    kind: str,
    value: str,
    headers: dict[str, str] | None = HEADERS,
) -> None:
    async with client.post(
        path, data=payload if isinstance(payload, bytes) else json.dumps(payload).encode(), headers=headers
    ) as resp:
        text = await resp.text()
        assert (resp.status, json.loads(text)) == (status, {"kind": kind, "value": value})
        # Written as Go's http.Error writes it: compact JSON, a newline, text/plain.
        assert text.endswith("}\n") and ", " not in text
        assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


# --- the pure model ---------------------------------------------------------------------------


def test_model_takes_and_releases_slots_recursively_and_never_expires() -> None:
    sem = Semaphores({"default": 2})
    assert sem.pre_reboot("default", "b") is True
    assert sem.pre_reboot("default", "a") is True
    assert sem.pre_reboot("default", "a") is False  # a holder asking again keeps its one slot
    assert sem.holders("default") == ("a", "b")
    with pytest.raises(LockError) as full:
        sem.pre_reboot("default", "c")
    assert (full.value.kind, full.value.value, full.value.status) == (
        "failed_lock",
        "all 2 semaphore slots currently locked",
        500,
    )
    assert sem.steady_state("default", "a") is True
    assert sem.steady_state("default", "a") is False
    assert sem.steady_state("default", "never-held") is False
    assert sem.holders("default") == ("b",)  # b (whose update failed) still holds: nothing expires
    assert sem.pre_reboot("default", "c") is True


@pytest.mark.parametrize(
    ("group", "client_id", "kind", "status"),
    [
        ("", "a", "invalid_client_identity", 400),
        ("default", "", "invalid_client_identity", 400),
        ("", "", "invalid_client_identity", 400),  # airlock checks the group first
        ("nope", "a", "unknown_group", 400),
    ],
)
def test_model_errors(group: str, client_id: str, kind: str, status: int) -> None:
    sem = Semaphores({"default": 1})
    for operation in (sem.pre_reboot, sem.steady_state):
        with pytest.raises(LockError) as err:
            operation(group, client_id)
        assert (err.value.kind, err.value.status) == (kind, status)
    assert sem.holders("default") == ()


def test_model_database_down_is_failed_sem_init_for_both_operations() -> None:
    sem = Semaphores({"default": 1})
    sem.pre_reboot("default", "a")
    sem.database_up = False
    for operation in (sem.pre_reboot, sem.steady_state):
        with pytest.raises(LockError) as err:
            operation("default", "a")
        assert (err.value.kind, err.value.status) == ("failed_sem_init", 500)
    sem.database_up = True
    assert sem.holders("default") == ("a",)


@pytest.mark.parametrize("slots", [-1, 1.5, True, "2"])
def test_model_rejects_bad_slot_counts(slots: Any) -> None:
    with pytest.raises(ValueError, match="slots must be an integer"):
        Semaphores({"default": slots})


def test_model_unknown_group_holders_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        Semaphores({"default": 1}).holders("nope")


# --- the protocol over HTTP -------------------------------------------------------------------


async def test_take_and_release_slots(client: TestClient) -> None:
    assert await post(client, "/v1/pre-reboot", body("host-a")) == (200, "")
    assert await post(client, "/v1/pre-reboot", body("host-b")) == (200, "")
    assert semaphores_of(client).holders("default") == ("host-a", "host-b")
    assert await post(client, "/v1/steady-state", body("host-a")) == (200, "")
    assert semaphores_of(client).holders("default") == ("host-b",)


async def test_full_semaphore_is_failed_lock_500(client: TestClient) -> None:
    assert await post(client, "/v1/pre-reboot", body("w1", "workers")) == (200, "")
    await assert_error(
        client, "/v1/pre-reboot", body("w2", "workers"), 500, "failed_lock", "all 1 semaphore slots currently locked"
    )
    await assert_error(
        client, "/v1/pre-reboot", body("p1", "paused"), 500, "failed_lock", "all 0 semaphore slots currently locked"
    )
    assert semaphores_of(client).holders("workers") == ("w1",)
    assert semaphores_of(client).holders("paused") == ()
    # Once the holder reports steady state, the next host gets the slot.
    assert await post(client, "/v1/steady-state", body("w1", "workers")) == (200, "")
    assert await post(client, "/v1/pre-reboot", body("w2", "workers")) == (200, "")


async def test_both_operations_are_idempotent(client: TestClient) -> None:
    for _ in range(3):
        assert await post(client, "/v1/pre-reboot", body("w1", "workers")) == (200, "")
    assert semaphores_of(client).holders("workers") == ("w1",)
    for _ in range(3):
        assert await post(client, "/v1/steady-state", body("w1", "workers")) == (200, "")
    assert await post(client, "/v1/steady-state", body("never-held", "workers")) == (200, "")
    assert semaphores_of(client).holders("workers") == ()


@pytest.mark.parametrize("path", ["/v1/pre-reboot", "/v1/steady-state"])
async def test_unknown_group_is_400(client: TestClient, path: str) -> None:
    await assert_error(client, path, body("a", "nope"), 400, "unknown_group", 'unknown group "nope"')


@pytest.mark.parametrize("path", ["/v1/pre-reboot", "/v1/steady-state"])
@pytest.mark.parametrize(
    "headers", [None, {"fleet-lock-protocol": "false"}, {"fleet-lock-protocol": "True"}, {"fleet-lock-protocol": ""}]
)
async def test_missing_or_wrong_protocol_header_is_400(
    client: TestClient, path: str, headers: dict[str, str] | None
) -> None:
    await assert_error(
        client,
        path,
        body("a"),
        400,
        "invalid_client_identity",
        "failed to validate client identity: wrong 'fleet-lock-protocol' header",
        headers=headers,
    )
    assert semaphores_of(client).holders("default") == ()


async def test_header_name_is_case_insensitive(client: TestClient) -> None:
    assert await post(client, "/v1/pre-reboot", body("a"), headers={"Fleet-Lock-Protocol": "true"}) == (200, "")


async def test_any_method_reaches_the_handler_like_gos_servemux(client: TestClient) -> None:
    async with client.get("/v1/pre-reboot") as resp:
        assert resp.status == 400
        assert json.loads(await resp.text())["kind"] == "invalid_client_identity"


@pytest.mark.parametrize("path", ["/v1/pre-reboot", "/v1/steady-state"])
@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "EOF"),
        (b"  \n", "EOF"),
        (b"{}", "empty group"),
        (b"null", "empty group"),
        ({"client_params": None}, "empty group"),
        ({"client_params": {"id": "a"}}, "empty group"),
        ({"client_params": {"group": "default"}}, "empty node ID"),
        ({"client_params": {"group": "default", "id": ""}}, "empty node ID"),
        ({"client_params": {"group": "default", "id": None}}, "empty node ID"),
        # The old protocol's field name is not the id.
        ({"client_params": {"group": "default", "node_uuid": "a"}}, "empty node ID"),
        ({"client_params": {"group": "", "id": "a"}}, "empty group"),
    ],
)
async def test_missing_fields_are_invalid_client_identity(
    client: TestClient, path: str, payload: Any, reason: str
) -> None:
    await assert_error(
        client, path, payload, 400, "invalid_client_identity", f"failed to validate client identity: {reason}"
    )


@pytest.mark.parametrize("path", ["/v1/pre-reboot", "/v1/steady-state"])
@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        b'{"client_params": {"id": "a", "group": "default"}',
        b"\xff\xfe",
        b"[]",
        b'"client_params"',
        b"42",
        {"client_params": []},
        {"client_params": "default"},
        {"client_params": {"id": 7, "group": "default"}},
        {"client_params": {"id": "a", "group": ["default"]}},
        # Stricter than Go's decoder, which stops after the first value.
        b'{"client_params": {"id": "a", "group": "default"}} trailing',
    ],
)
async def test_malformed_bodies_are_invalid_client_identity(client: TestClient, path: str, payload: Any) -> None:
    async with client.post(
        path, data=payload if isinstance(payload, bytes) else json.dumps(payload).encode(), headers=HEADERS
    ) as resp:
        error = json.loads(await resp.text())
        assert resp.status == 400
        assert set(error) == {"kind", "value"}
        assert error["kind"] == "invalid_client_identity"
        assert error["value"].startswith("failed to validate client identity: ")
    assert semaphores_of(client).holders("default") == ()


async def test_database_down_is_failed_sem_init_500(client: TestClient) -> None:
    semaphores_of(client).database_up = False
    await assert_error(
        client,
        "/v1/pre-reboot",
        body("a"),
        500,
        "failed_sem_init",
        "failed to initialize semaphore manager: context deadline exceeded",
    )


async def test_error_value_is_escaped_as_go_json(client: TestClient) -> None:
    async with client.post("/v1/pre-reboot", json=body("a", "<a&b>"), headers=HEADERS) as resp:
        text = await resp.text()
    assert text == '{"kind":"unknown_group","value":"unknown group \\"\\u003ca\\u0026b\\u003e\\""}\n'
    assert json.loads(text)["value"] == 'unknown group "<a&b>"'


# --- metrics ----------------------------------------------------------------------------------


async def scrape(
    client: TestClient,
) -> tuple[str, dict[str, str], dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """(text, family name -> type, (sample name, labels) -> value)."""
    async with client.get("/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = await resp.text()
    types: dict[str, str] = {}
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return text, types, samples


def per_group(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> dict[str, float]:
    return {dict(labels)["group"]: value for (sample, labels), value in samples.items() if sample == name}


async def test_metrics_families_and_types_before_any_request(client: TestClient) -> None:
    text, types, samples = await scrape(client)
    assert types == {
        "airlock_config_groups": "gauge",
        "airlock_config_semaphore_slots": "gauge",
        "airlock_database_semaphore_lock_holders": "gauge",
        "airlock_database_semaphore_slots": "gauge",
        # The parser names counter families without `_total`; the exposed samples carry it.
        "airlock_v1_pre_reboot_incoming_requests": "counter",
        "airlock_v1_steady_state_incoming_requests": "counter",
    }
    exposed = sorted({name for name, _ in samples})
    assert exposed == [
        "airlock_config_groups",
        "airlock_config_semaphore_slots",
        "airlock_database_semaphore_lock_holders",
        "airlock_database_semaphore_slots",
        "airlock_v1_pre_reboot_incoming_requests_total",
        "airlock_v1_steady_state_incoming_requests_total",
    ]  # no `_created` series, no process/platform collectors
    type_lines = [line for line in text.splitlines() if line.startswith("# TYPE ")]
    assert type_lines == sorted(type_lines)  # family order by name, as client_golang writes it
    assert samples[("airlock_v1_pre_reboot_incoming_requests_total", ())] == 0
    assert samples[("airlock_v1_steady_state_incoming_requests_total", ())] == 0
    assert per_group(samples, "airlock_database_semaphore_lock_holders") == {"default": 0, "workers": 0, "paused": 0}


async def test_metrics_after_a_sequence_of_requests(client: TestClient) -> None:
    await post(client, "/v1/steady-state", body("a"))  # initialization: release anything held
    await post(client, "/v1/pre-reboot", body("a"))
    await post(client, "/v1/pre-reboot", body("a"))  # recursive
    await post(client, "/v1/pre-reboot", body("b"))
    await post(client, "/v1/pre-reboot", body("c"))  # failed_lock
    await post(client, "/v1/pre-reboot", body("w1", "workers"))
    await post(client, "/v1/pre-reboot", body("x", "nope"))  # unknown_group
    await post(client, "/v1/pre-reboot", body("a"), headers=None)  # invalid_client_identity
    await post(client, "/v1/steady-state", b"{broken")  # invalid_client_identity
    await post(client, "/v1/steady-state", body("b"))
    _, _, samples = await scrape(client)
    assert samples[("airlock_config_groups", ())] == 3
    assert per_group(samples, "airlock_config_semaphore_slots") == {"default": 2, "workers": 1, "paused": 0}
    assert per_group(samples, "airlock_database_semaphore_slots") == {"default": 2, "workers": 1, "paused": 0}
    assert per_group(samples, "airlock_database_semaphore_lock_holders") == {"default": 1, "workers": 1, "paused": 0}
    # Every request counts, valid or not (airlock increments before validating).
    assert samples[("airlock_v1_pre_reboot_incoming_requests_total", ())] == 7
    assert samples[("airlock_v1_steady_state_incoming_requests_total", ())] == 3


async def test_each_app_has_its_own_registry(aiohttp_client) -> None:
    first = await aiohttp_client(make_airlock_app(Semaphores({"default": 1})))
    second = await aiohttp_client(make_airlock_app(Semaphores({"default": 1})))
    await post(first, "/v1/pre-reboot", body("a"))
    _, _, samples = await scrape(second)
    assert samples[("airlock_v1_pre_reboot_incoming_requests_total", ())] == 0
    assert per_group(samples, "airlock_database_semaphore_lock_holders") == {"default": 0}


async def test_promtool_check_metrics_is_clean(client: TestClient) -> None:
    promtool = shutil.which("promtool", path="/usr/bin") or shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed")
    await post(client, "/v1/pre-reboot", body("a"))
    await post(client, "/v1/steady-state", body("a"))
    text, _, _ = await scrape(client)
    result = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
