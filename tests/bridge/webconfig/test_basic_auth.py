"""Basic auth's password checks (webconfig/basic_auth.py) with real bcrypt hashes: the caches,
the throttle per address, the queue's refusals, and clients that leave, first on
`BasicAuthUsers` itself, then on a bridge served for real, where each refusal has its status,
its one-line reason and its count.

The queue's thread is held busy by a job that waits on an event, so that a test decides when a
check may start instead of guessing how long one takes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import bcrypt
import pytest

from local_exporter.bridge import limits
from local_exporter.bridge.webconfig.basic_auth import BasicAuthUsers, ClientGone, PasswordChecks, Throttled
from local_exporter.bridge.webconfig.checks import CheckQueue
from local_exporter.bridge.webconfig.guard import CHALLENGE
from tests.support.bridges import until, until_read
from tests.support.web import PASSWORD, USER, Served, bcrypt_hash, get, served_bridge, users_yaml

GATE_TIMEOUT = 30.0
CHECKS = "local_exporter_web_password_checks_total"


def basic(user: str, password: str) -> str:
    return aiohttp.encode_basic_auth(user, password)


class Holder:
    """A job that keeps the queue's thread busy until its gate opens."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.running = threading.Event()

    def rank(self) -> int:
        return 0

    def settled(self) -> bool | BaseException | None:
        return None

    def work(self) -> bool:
        self.running.set()
        return self.gate.wait(GATE_TIMEOUT)

    def finished(self, result: bool) -> None:
        assert result, "the test never opened the gate"

    def dropped(self) -> None:
        raise AssertionError("the holder is never dropped")


@asynccontextmanager
async def held(queue: CheckQueue) -> AsyncIterator[None]:
    holder = Holder()
    task = asyncio.create_task(queue.run(holder))
    try:
        await until(holder.running.is_set)
        yield
    finally:
        holder.gate.set()
        await asyncio.wait([task])


def _users(checks: PasswordChecks) -> BasicAuthUsers:
    return BasicAuthUsers({USER: bcrypt_hash(PASSWORD).encode()}, checks)


async def test_a_pair_is_checked_once_then_answered_from_its_cache() -> None:
    checks = PasswordChecks()
    users = _users(checks)
    for _ in range(3):
        assert await users.allows(basic(USER, PASSWORD), "192.0.2.1") is True
        assert await users.allows(basic(USER, "wrong"), "192.0.2.1") is False
        assert await users.allows(basic("mallory", "guess"), "192.0.2.1") is False
    assert checks.counts == {"match": 1, "mismatch": 2, "abandoned": 0}


async def test_a_flood_of_distinct_guesses_cannot_evict_a_right_password() -> None:
    checks = PasswordChecks()
    users = _users(checks)
    assert await users.allows(basic(USER, PASSWORD), "192.0.2.1")
    guesses = limits.PASSWORD_FAILURES_CACHED + 44
    for n in range(guesses):
        # An address per guess, so that the throttle does not stop the flood first.
        assert not await users.allows(basic(USER, f"guess {n}"), f"10.0.{n // 256}.{n % 256}")
    assert len(checks.failures) == limits.PASSWORD_FAILURES_CACHED
    assert await users.allows(basic(USER, PASSWORD), "192.0.2.1")
    assert checks.counts == {"match": 1, "mismatch": guesses, "abandoned": 0}


async def test_concurrent_checks_of_one_pair_run_bcrypt_once() -> None:
    checks = PasswordChecks()
    users = _users(checks)
    async with held(checks.queue):
        logins = [asyncio.create_task(users.allows(basic(USER, PASSWORD), f"192.0.2.{n}")) for n in range(4)]
        await until(lambda: checks.queue.waiting == 4)
    assert await asyncio.gather(*logins) == [True] * 4
    assert checks.counts["match"] == 1


async def test_a_password_longer_than_bcrypt_reads_is_checked_on_its_first_72_bytes() -> None:
    # As Go's bcrypt (the toolkit's) does, rather than a ValueError from Python's and a 500.
    checks = PasswordChecks()
    users = BasicAuthUsers({USER: bcrypt.hashpw(b"a" * 72, bcrypt.gensalt(4))}, checks)
    assert await users.allows(basic(USER, "a" * 100), "192.0.2.1") is True
    assert await users.allows(basic(USER, "b" * 100), "192.0.2.1") is False


async def test_an_address_past_its_limit_is_throttled_with_no_check_but_its_cached_login_works() -> None:
    checks = PasswordChecks()
    users = _users(checks)
    assert await users.allows(basic(USER, PASSWORD), "192.0.2.1")
    for n in range(limits.PASSWORD_FAILURES_PER_ADDRESS):
        assert not await users.allows(basic(USER, f"guess {n}"), "192.0.2.1")
    with pytest.raises(Throttled, match=r"^too many wrong passwords from 192\.0\.2\.1: try again in \d+ s$") as info:
        await users.allows(basic(USER, "one more"), "192.0.2.1")
    assert 1 <= info.value.seconds <= limits.PASSWORD_FAILURE_WINDOW_SECONDS
    # The cached login costs no check, so it is always answered.
    assert await users.allows(basic(USER, PASSWORD), "192.0.2.1")
    assert await users.allows(basic(USER, "from elsewhere"), "192.0.2.2") is False
    assert checks.counts == {"match": 1, "mismatch": limits.PASSWORD_FAILURES_PER_ADDRESS + 1, "abandoned": 0}


async def test_queued_guesses_of_an_address_that_crosses_its_limit_are_refused_unchecked() -> None:
    checks = PasswordChecks()
    users = _users(checks)
    limit = limits.PASSWORD_FAILURES_PER_ADDRESS
    async with held(checks.queue):
        guesses = [asyncio.create_task(users.allows(basic(USER, f"guess {n}"), "192.0.2.1")) for n in range(limit + 3)]
        await until(lambda: checks.queue.waiting == limit + 3)
    results = await asyncio.gather(*guesses, return_exceptions=True)
    assert results[:limit] == [False] * limit
    assert all(isinstance(result, Throttled) for result in results[limit:])
    assert checks.counts["mismatch"] == limit


async def test_a_check_whose_client_is_gone_by_its_turn_is_dropped_unchecked() -> None:
    checks = PasswordChecks()
    users = _users(checks)
    connected = True
    async with held(checks.queue):
        guess = asyncio.create_task(users.allows(basic(USER, "guess"), "192.0.2.1", lambda: connected))
        await until(lambda: checks.queue.waiting == 1)
        connected = False
    with pytest.raises(ClientGone):
        await guess
    assert checks.counts == {"match": 0, "mismatch": 0, "abandoned": 1}


# On a bridge served for real: statuses, reasons, counts.

BRIDGE = '[bridge.selectors]\nf = {{ kind = "file", path = "{dir}/f.prom" }}\n'


def _bridge(directory: Path) -> str:
    (directory / "f.prom").write_text("up 1\n")
    return BRIDGE.format(dir=directory)


async def get_from(url: str, address: str, auth: tuple[str, str]) -> tuple[int, str, dict[str, str]]:
    """One GET from `address` (any of 127.0.0.0/8 reaches the bridge on 127.0.0.1): status, body, headers."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0), force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(url, headers={"Authorization": basic(*auth)}) as response,
    ):
        return response.status, await response.text(), dict(response.headers)


def _checks(served: Served, outcome: str) -> float:
    return served.registry.get_sample_value(CHECKS, {"outcome": outcome}) or 0.0


async def test_a_full_queue_answers_503_at_once(tmp_path: Path) -> None:
    async with served_bridge(tmp_path, _bridge(tmp_path), users_yaml()) as served:
        queue, url = served.guard.checks.queue, f"{served.url}/bridge?selector=f"
        full = limits.PASSWORD_CHECKS_WAITING
        async with held(queue):
            # From addresses of their own, so that none of them is throttled.
            guesses = [
                asyncio.create_task(get_from(url, f"127.0.0.{10 + n}", (USER, f"guess {n}"))) for n in range(full)
            ]
            await until(lambda: queue.waiting == full)
            status, body, _ = await get_from(url, "127.0.0.2", (USER, PASSWORD))
            assert (status, body) == (503, "password checks busy: try again\n")
            assert served.rejected("auth_busy") == 1
        assert [status for status, _, _ in await asyncio.gather(*guesses)] == [401] * full
        assert (_checks(served, "mismatch"), _checks(served, "match")) == (full, 0)


async def test_a_check_not_started_in_time_answers_503(tmp_path: Path) -> None:
    async with served_bridge(tmp_path, _bridge(tmp_path), users_yaml()) as served:
        queue = served.guard.checks.queue
        queue.max_wait = 0.05
        async with held(queue):
            status, body, _ = await get(f"{served.url}/metrics", auth=(USER, PASSWORD))
            assert (status, body) == (503, "password checks busy: not started within 0.05 s, try again\n")
        assert served.rejected("auth_busy") == 1
        assert _checks(served, "match") == 0
        assert (await get(f"{served.url}/metrics", auth=(USER, PASSWORD)))[0] == 200


async def test_an_address_that_failed_too_often_gets_429_with_retry_after(tmp_path: Path) -> None:
    async with served_bridge(tmp_path, _bridge(tmp_path), users_yaml()) as served:
        url = f"{served.url}/bridge?selector=f"
        for n in range(limits.PASSWORD_FAILURES_PER_ADDRESS):
            status, _, headers = await get(url, auth=(USER, f"guess {n}"))
            assert status == 401 and headers["WWW-Authenticate"] == CHALLENGE
        # Even the right password: it would cost a check.
        status, body, headers = await get(url, auth=(USER, PASSWORD))
        assert status == 429
        seconds = int(headers["Retry-After"])
        assert 1 <= seconds <= limits.PASSWORD_FAILURE_WINDOW_SECONDS
        assert body == f"too many wrong passwords from 127.0.0.1: try again in {seconds} s\n"
        assert served.rejected("auth_throttled") == 1
        assert (_checks(served, "mismatch"), _checks(served, "match")) == (limits.PASSWORD_FAILURES_PER_ADDRESS, 0)
        # Another address is not concerned.
        assert (await get_from(url, "127.0.0.2", (USER, PASSWORD)))[:2] == (200, "up 1\n")


async def test_once_the_window_is_over_the_address_logs_in(tmp_path: Path) -> None:
    async with served_bridge(tmp_path, _bridge(tmp_path), users_yaml()) as served:
        served.guard.checks.throttle.window = 0.5
        url = f"{served.url}/bridge?selector=f"
        for n in range(limits.PASSWORD_FAILURES_PER_ADDRESS):
            assert (await get(url, auth=(USER, f"guess {n}")))[0] == 401
        assert (await get(url, auth=(USER, PASSWORD)))[0] == 429

        async def login() -> int:
            return (await get(url, auth=(USER, PASSWORD)))[0]

        await until_read(login, 200)
        assert _checks(served, "match") == 1


async def test_clients_that_leave_while_queued_cost_no_check(tmp_path: Path) -> None:
    async with served_bridge(tmp_path, _bridge(tmp_path), users_yaml()) as served:
        queue, url = served.guard.checks.queue, f"{served.url}/metrics"
        async with held(queue):
            leaving = [asyncio.create_task(get_from(url, f"127.0.0.{10 + n}", (USER, f"guess {n}"))) for n in range(3)]
            await until(lambda: queue.waiting == 3)
            for client in leaving:
                client.cancel()
            await asyncio.wait(leaving)
            # aiohttp cancels the handler of a client that disconnects: its waiter leaves the queue.
            await until(lambda: queue.waiting == 0)
        assert (_checks(served, "abandoned"), _checks(served, "mismatch")) == (3, 0)
        assert (await get(url, auth=(USER, "after")))[0] == 401
        assert _checks(served, "mismatch") == 1


async def test_a_right_password_stays_cached_across_a_reload(tmp_path: Path) -> None:
    web = users_yaml()
    async with served_bridge(tmp_path, _bridge(tmp_path), web) as served:
        assert (await get(f"{served.url}/metrics", auth=(USER, PASSWORD)))[0] == 200
        served.path.write_text(web + "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n")
        assert served.guard.reload()[0]
        _, _, headers = await get(f"{served.url}/metrics", auth=(USER, PASSWORD))
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert _checks(served, "match") == 1
