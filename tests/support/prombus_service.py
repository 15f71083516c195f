"""A prombus-like DBus service, run as its own process by `tests.support.dbus.PrombusService`.

    python -m tests.support.prombus_service --address ADDRESS --payload FILE [--name NAME] [--mode MODE]
        [--calls FILE]

It owns NAME on the bus at ADDRESS and answers `com.github.lucab.Prombus.Observable.PromMetrics()`
on `/com/github/lucab/Prombus`, re-reading FILE on every call. MODE says how it answers:

    ay      the file's bytes as `ay`, like prombus
    s       the file's text as `s`
    wrong   an `i` (a reply signature no exposition comes in)
    error   a DBus error reply
    hang    no reply at all
    slow    the file's bytes as `ay`, SLOW_REPLY_SECONDS after the call

With --calls, each call appends a line to that file as it arrives: how many calls are in
flight at the service then, itself included (what the bridge's cap bounds, seen from here).

It prints `ready` once the name is its own. On SIGTERM it releases the name and disconnects
before exiting, so the name is gone from the bus by the time the process has exited; if the
bus goes away it exits with status 1.

The call is answered by a message handler rather than a `ServiceInterface`: that lets it reply
with any signature, or not at all, without signature-string annotations.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import IO

from dbus_next.aio.message_bus import MessageBus
from dbus_next.constants import MessageType, NameFlag, RequestNameReply
from dbus_next.message import Message

PATH = "/com/github/lucab/Prombus"
INTERFACE = "com.github.lucab.Prombus.Observable"
MEMBER = "PromMetrics"
ERROR_NAME = "com.github.lucab.Prombus.Error.Broken"
MODES = ("ay", "s", "wrong", "error", "hang", "slow")
# Long enough that calls the bridge lets through together overlap here, short enough for tests.
SLOW_REPLY_SECONDS = 0.3


class Observable:
    def __init__(self, bus: MessageBus, payload: Path, mode: str, calls: IO[str] | None) -> None:
        self.bus = bus
        self.payload = payload
        self.mode = mode
        self.calls = calls
        self.in_flight = 0
        self._replies: set[asyncio.Task[None]] = set()

    def handle(self, msg: Message) -> Message | bool:
        if not (
            msg.message_type == MessageType.METHOD_CALL
            and msg.path == PATH
            and msg.interface == INTERFACE
            and msg.member == MEMBER
        ):
            return False
        self.in_flight += 1
        if self.calls is not None:
            self.calls.write(f"{self.in_flight}\n")
            self.calls.flush()
        if self.mode == "hang":
            return True  # handled: no reply, ever (still in flight)
        if self.mode == "slow":
            reply = asyncio.get_running_loop().create_task(self._reply_later(msg))
            self._replies.add(reply)  # the loop keeps only a weak reference to a task
            reply.add_done_callback(self._replies.discard)
            return True
        self.in_flight -= 1
        return self._reply(msg)

    async def _reply_later(self, msg: Message) -> None:
        await asyncio.sleep(SLOW_REPLY_SECONDS)
        self.in_flight -= 1
        self.bus.send(Message.new_method_return(msg, "ay", [self.payload.read_bytes()]))

    def _reply(self, msg: Message) -> Message:
        if self.mode == "error":
            return Message.new_error(msg, ERROR_NAME, "metrics are broken on purpose")
        data = self.payload.read_bytes()
        if self.mode == "s":
            return Message.new_method_return(msg, "s", [data.decode("utf-8")])
        if self.mode == "wrong":
            return Message.new_method_return(msg, "i", [len(data)])
        return Message.new_method_return(msg, "ay", [data])


async def serve(address: str, name: str, payload: Path, mode: str, calls: IO[str] | None) -> int:
    bus = await MessageBus(bus_address=address).connect()
    observable = Observable(bus, payload, mode, calls)
    bus.add_message_handler(observable.handle)
    reply = await bus.request_name(name, NameFlag.DO_NOT_QUEUE)
    if reply != RequestNameReply.PRIMARY_OWNER:
        print(f"could not own {name}: {reply}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    stopping = asyncio.create_task(stop.wait())
    gone = asyncio.create_task(bus.wait_for_disconnect())  # type: ignore[no-untyped-call]
    await asyncio.wait((stopping, gone), return_when=asyncio.FIRST_COMPLETED)
    if gone.done():
        stopping.cancel()
        print(f"bus went away: {gone.exception()!r}", file=sys.stderr)
        return 1
    await bus.release_name(name)
    bus.disconnect()  # type: ignore[no-untyped-call]
    await gone
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--payload", required=True, type=Path)
    parser.add_argument("--name", default="com.github.lucab.Prombus")
    parser.add_argument("--mode", choices=MODES, default="ay")
    parser.add_argument("--calls", type=Path)
    args = parser.parse_args()
    if args.calls is None:
        return asyncio.run(serve(args.address, args.name, args.payload, args.mode, None))
    with args.calls.open("a") as calls:
        return asyncio.run(serve(args.address, args.name, args.payload, args.mode, calls))


if __name__ == "__main__":
    sys.exit(main())
