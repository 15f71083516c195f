"""local_exporter.common.dbus_bus: a bus that hangs up during authentication is an error, not a
frozen event loop, and no socket outlives a failed connect. The peers are real Unix sockets
(tests/support/dbus.py); the working path runs against a private dbus-daemon."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from pathlib import Path

import pytest
from dbus_next.aio.message_bus import MessageBus

from local_exporter.common.dbus_bus import AuthenticationClosed, Bus
from tests.support.dbus import HANG_UPS, DBusDaemon, HangUp, bus_that_hangs_up


def open_fds() -> int:
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


async def _connect_while_ticking(bus: MessageBus, deadline: float = 2) -> tuple[BaseException | None, int]:
    """Connect `bus` within `deadline` while a task ticks every 10 ms: what the connect raised
    and how often the loop ticked meanwhile (a frozen loop ticks not at all)."""
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        await asyncio.wait_for(bus.connect(), deadline)
    except (Exception, TimeoutError) as exc:  # noqa: BLE001 - the test looks at what it was
        return exc, ticks
    finally:
        ticker.cancel()
    return None, ticks


#: What the connect may raise for each hang-up. A peer closing at once races the client's first
#: byte: closed with it unread, the connection is reset; closed before it, the write fails or the
#: client reads the end of the stream. Once the peer has read the AUTH line, it is the end.
RAISED: dict[HangUp, tuple[type[BaseException], ...]] = {
    "at once": (ConnectionResetError, BrokenPipeError, AuthenticationClosed),
    "after AUTH": (AuthenticationClosed,),
    "mid-answer": (AuthenticationClosed,),
}


@pytest.mark.parametrize("when", HANG_UPS)
async def test_a_bus_hanging_up_during_authentication_is_an_error_at_once(short_dir: Path, when: HangUp) -> None:
    async with bus_that_hangs_up(short_dir, when) as address:
        before = open_fds()
        started = time.monotonic()
        error, _ = await _connect_while_ticking(Bus(bus_address=address))
        assert type(error) in RAISED[when], repr(error)
        assert time.monotonic() - started < 1
        assert open_fds() == before


async def test_dbus_next_alone_would_freeze_the_loop_on_that_hang_up(short_dir: Path) -> None:
    """Why the override exists (dbus-next 0.2.3, aio/message_bus.py `_auth_readline`): its own
    connect to a bus hanging up after the AUTH line ignores a 0.5 s deadline, its loop frozen. In
    a child process, killed after 2 s; once dbus-next stops looping, this fails and the override
    can go."""
    script = (
        "import asyncio, sys\n"
        "from dbus_next.aio.message_bus import MessageBus\n"
        "async def main():\n"
        "    async def peer(r, w):\n"
        "        await r.readline(); w.close()\n"
        "    await asyncio.start_unix_server(peer, sys.argv[1])\n"
        "    await asyncio.wait_for(MessageBus(bus_address='unix:path=' + sys.argv[1]).connect(), 0.5)\n"
        "asyncio.run(main())\n"
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, str(short_dir / "bus"), stderr=asyncio.subprocess.DEVNULL
    )
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(child.wait(), 2)
    finally:
        child.kill()
        await child.wait()


async def test_a_bus_that_never_answers_is_left_to_the_callers_deadline(short_dir: Path) -> None:
    before = open_fds()
    async with bus_that_hangs_up(short_dir, None) as address:
        bus = Bus(bus_address=address)
        error, ticks = await _connect_while_ticking(bus, 0.5)
        assert isinstance(error, TimeoutError), repr(error)
        assert ticks > 10  # the loop ran on while the connect waited
        assert not bus.connected
    assert open_fds() == before  # the peer's end too, closed with its server


async def test_a_bus_that_answers_connects_as_before(dbus_bus: DBusDaemon) -> None:
    bus = Bus(bus_address=dbus_bus.address)
    await bus.connect()
    try:
        assert bus.connected and bus.unique_name is not None and bus.unique_name.startswith(":")
    finally:
        bus.disconnect()  # type: ignore[no-untyped-call]
        await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]


def test_a_connect_to_no_socket_leaves_no_descriptor(short_dir: Path) -> None:
    before = open_fds()
    with pytest.raises(FileNotFoundError):
        asyncio.run(Bus(bus_address=f"unix:path={short_dir}/none").connect())
    assert open_fds() == before
