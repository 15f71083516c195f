"""The `dbus` kind's cap on calls in flight: one per destination on a bus, shared by its selectors.

Observed where it matters, at the service: a private dbus-daemon and a prombus-like service
process that notes, as each call arrives, how many calls it has in flight (`PrombusService.calls`).
"""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient

from local_exporter.bridge import config, reload
from local_exporter.bridge.app import BRIDGE
from local_exporter.bridge.sources import SharedResources, SourceLimits
from local_exporter.bridge.sources.dbus import CallCap, DBusSettings, DBusSource
from tests.bridge.sources.test_dbus import SMALL, AiohttpClient, assert_error, scrape, selector, start_bridge
from tests.support.bridges import until
from tests.support.dbus import PROMBUS_INTERFACE, PROMBUS_NAME, PROMBUS_PATH, DBusDaemon, PrombusFactory


def capped(address: str, **caps: int) -> str:
    """Selectors NAME=CAP on prombus, each read by every scrape (no coalescing, room for 8 reads)."""
    return "".join(
        selector(
            name,
            address=address,
            extra=f"coalesce = false\nmax_concurrency = 8\nmax_calls_in_flight = {cap}",
        )
        for name, cap in caps.items()
    )


def source(client: TestClient, name: str) -> DBusSource:
    assert client.app is not None
    opened = client.app[BRIDGE].selectors.by_name[name].source
    assert isinstance(opened, DBusSource)
    return opened


def apply_reload(client: TestClient, old: str, new: str) -> None:
    """What a reload does to the selectors (app.py), from config text to config text."""
    assert client.app is not None
    before, after = config.parse(old, "test.toml"), config.parse(new, "test.toml")
    client.app[BRIDGE].selectors.apply(after.selectors, reload.diff(before, after))


async def statuses(client: TestClient, *names: str) -> list[int]:
    """Scrape all of `names` at once; their statuses in that order."""
    return [r.status for r in await asyncio.gather(*(scrape(client, name) for name in names))]


# --- through the bridge, seen at the service ----------------------------------------------------


async def test_selectors_of_one_destination_share_its_cap(
    aiohttp_client: AiohttpClient, dbus_bus: DBusDaemon, prombus: PrombusFactory
) -> None:
    service = prombus(SMALL, mode="slow")
    client = await start_bridge(aiohttp_client, capped(dbus_bus.address, a=2, b=2))
    assert source(client, "a").cap is source(client, "b").cap
    assert await statuses(client, *("a", "b") * 4) == [200] * 8
    calls = service.calls()
    assert len(calls) == 8
    # Never more than 2 at once at the service, and 2 at once did happen: a cap per selector,
    # as before, let 4 through here.
    assert max(calls) == 2


async def test_selectors_of_different_destinations_do_not_wait_for_each_other(
    aiohttp_client: AiohttpClient, dbus_bus: DBusDaemon, prombus: PrombusFactory
) -> None:
    stuck = prombus(SMALL, name="com.example.Stuck", mode="hang")
    prombus(SMALL)
    toml_text = selector("stuck", address=dbus_bus.address, destination="com.example.Stuck", timeout=2) + selector(
        address=dbus_bus.address, timeout=1
    )
    client = await start_bridge(aiohttp_client, toml_text)
    assert source(client, "stuck").cap is not source(client, "prombus").cap
    held = asyncio.ensure_future(scrape(client, "stuck"))
    # Stuck's only slot (the default cap, 1) is taken until its 2 s deadline.
    await until(lambda: stuck.calls() == [1])
    # Within prombus' 1 s deadline each time: waiting behind stuck would be a 504.
    for _ in range(3):
        assert (await scrape(client)).status == 200
    assert not held.done()
    await assert_error(await held, 504, "selector stuck: timeout:")


async def test_a_scrape_waiting_for_the_cap_times_out_and_takes_no_slot_with_it(
    aiohttp_client: AiohttpClient, dbus_bus: DBusDaemon, prombus: PrombusFactory
) -> None:
    service = prombus(SMALL, mode="hang")
    toml_text = selector("a", address=dbus_bus.address, timeout=2) + selector(
        "b", address=dbus_bus.address, timeout=0.5
    )
    client = await start_bridge(aiohttp_client, toml_text)
    cap = source(client, "a").cap
    held = asyncio.ensure_future(scrape(client, "a"))
    await until(lambda: service.calls() == [1])
    # b waits for the destination's one slot, a's, and gives up at its own deadline.
    await assert_error(await scrape(client, "b"), 504, "selector b: timeout:", "0.5 s deadline")
    assert cap.in_flight == 1
    await assert_error(await held, 504, "selector a: timeout:")
    assert cap.in_flight == 0
    # b's wait never reached the service; the slot a left is free for the next call.
    await assert_error(await scrape(client, "b"), 504, "selector b: timeout:")
    assert service.calls() == [1, 2]  # the service never answers: both are in flight there
    assert cap.in_flight == 0


async def test_the_smallest_cap_of_a_destination_wins_and_reloads_keep_the_cap(
    aiohttp_client: AiohttpClient, dbus_bus: DBusDaemon, prombus: PrombusFactory
) -> None:
    service = prombus(SMALL, mode="slow")
    first = capped(dbus_bus.address, a=3, b=1)
    client = await start_bridge(aiohttp_client, first)
    cap = source(client, "a").cap
    assert cap.limit == 1
    # b's 1 holds a's calls too: both selectors call one service.
    assert await statuses(client, "a", "a", "a", "b") == [200] * 4
    assert max(service.calls()) == 1

    # b removed: the cap is a's 3 once b's source has closed.
    second = capped(dbus_bus.address, a=3)
    apply_reload(client, first, second)
    await until(lambda: cap.limit == 3)
    seen = len(service.calls())
    assert await statuses(client, *["a"] * 6) == [200] * 6
    assert max(service.calls()[seen:]) == 3

    # a reopened with 2 and b back with 3: new sources, the same cap, now 2 (a's old 3 leaves
    # when its old source closes, at once: it has no calls running).
    third = capped(dbus_bus.address, a=2, b=3)
    old_a = source(client, "a")
    apply_reload(client, second, third)
    assert source(client, "a") is not old_a
    assert source(client, "a").cap is source(client, "b").cap is cap
    await until(lambda: cap.limit == 2)
    seen = len(service.calls())
    assert await statuses(client, *("a", "b") * 3) == [200] * 6
    assert max(service.calls()[seen:]) == 2


# --- the cap itself -------------------------------------------------------------------------


async def test_a_slot_handed_to_a_waiter_whose_deadline_passed_goes_to_the_next() -> None:
    cap = CallCap()
    cap.join(1)
    await cap.acquire()
    late = asyncio.ensure_future(cap.acquire())
    after = asyncio.ensure_future(cap.acquire())
    await asyncio.sleep(0)  # both are waiting
    cap.release()  # handed to `late`...
    late.cancel()  # ...whose deadline passes before it runs
    await asyncio.gather(late, return_exceptions=True)
    assert late.cancelled()
    await asyncio.wait_for(after, 1)
    assert cap.in_flight == 1


async def test_a_waiter_cancelled_before_its_turn_leaves_the_queue() -> None:
    cap = CallCap()
    cap.join(1)
    await cap.acquire()
    gone = asyncio.ensure_future(cap.acquire())
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    cap.release()
    # Nothing queued any more: the next call takes the free slot at once.
    await asyncio.wait_for(cap.acquire(), 1)
    assert cap.in_flight == 1


async def test_a_waiter_gets_its_slot_when_the_smallest_cap_leaves() -> None:
    cap = CallCap()
    cap.join(1)
    cap.join(3)
    await cap.acquire()
    waiting = asyncio.ensure_future(cap.acquire())
    await asyncio.sleep(0)
    assert not waiting.done()
    cap.leave(1)
    await asyncio.wait_for(waiting, 1)
    assert (cap.limit, cap.in_flight) == (3, 2)


async def test_sources_join_the_cap_of_their_destination_once_and_leave_it_once() -> None:
    def settings(destination: str, calls_in_flight: int) -> DBusSettings:
        # Never connected: sources connect on their first fetch.
        return DBusSettings(
            "session",
            "unix:path=/nonexistent/bus",
            destination,
            PROMBUS_PATH,
            PROMBUS_INTERFACE,
            "PromMetrics",
            calls_in_flight,
        )

    shared = SharedResources()
    limits = SourceLimits(max_bytes=1000)
    a = settings(PROMBUS_NAME, 3).open(limits, shared)
    b = settings(PROMBUS_NAME, 1).open(limits, shared)
    other = settings("com.example.Other", 5).open(limits, shared)
    assert a.cap is b.cap and other.cap is not a.cap
    assert (a.cap.limit, other.cap.limit) == (1, 5)
    # At stop a replaced source may be closed twice (by its drain and by the app): b leaves once.
    await b.aclose()
    await b.aclose()
    assert a.cap.limit == 3
    for opened in (a, other):
        await opened.aclose()
    await shared.aclose()
    assert a.cap.limit == 1  # nobody left: the default
