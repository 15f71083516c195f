"""A private dbus-daemon and prombus-like service processes, for the DBus source's tests.

Both are real processes, started with `subprocess` and stopped by their pid (SIGTERM, then
SIGKILL if they do not exit in time). Both can be stopped and started again on the same
address, which is how the tests restart a service or the bus under a running bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Literal, Protocol

from dbus_next.aio.message_bus import MessageBus
from dbus_next.message import Message

ROOT = Path(__file__).resolve().parents[2]
DBUS_DAEMON = "/usr/bin/dbus-daemon"

PROMBUS_NAME = "com.github.lucab.Prombus"
PROMBUS_PATH = "/com/github/lucab/Prombus"
PROMBUS_INTERFACE = "com.github.lucab.Prombus.Observable"
PROMBUS_METHOD = f"{PROMBUS_INTERFACE}.PromMetrics"

Mode = Literal["ay", "s", "wrong", "error", "hang", "slow"]

# Generous: a Python process importing dbus-next on a loaded CI machine.
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class DBusDaemon:
    """A session-config dbus-daemon listening on `<directory>/bus`."""

    def __init__(self, directory: Path) -> None:
        self.socket = directory / "bus"
        self.address = f"unix:path={self.socket}"
        self.log = directory / "dbus-daemon.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None, "dbus-daemon is not running"
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        assert self._process is None, "dbus-daemon already started"
        command = [DBUS_DAEMON, "--session", "--nofork", "--print-address=1", f"--address={self.address}"]
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
        try:
            # Printed once the socket listens: `unix:path=...,guid=...`.
            printed = _read_line(self._process, "dbus-daemon", self.log)
            assert printed.startswith(self.address + ","), f"dbus-daemon printed {printed!r}"
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            _stop(process)

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def private_bus(directory: Path) -> Iterator[DBusDaemon]:
    """A running private bus in `directory` (keep its path short: it holds the socket)."""
    daemon = DBusDaemon(directory)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


class PrombusService:
    """`tests.support.prombus_service` as a process: owns `name` on the bus at `address`.

    It re-reads `payload_file` on every call, so `set_payload` changes what the next call gets,
    and notes each call it receives in `calls_file` (see `calls`).
    """

    def __init__(self, address: str, payload_file: Path, *, name: str = PROMBUS_NAME, mode: Mode = "ay") -> None:
        self.address = address
        self.payload_file = payload_file
        self.name = name
        self.mode = mode
        self.log = payload_file.with_name(payload_file.name + ".log")
        self.calls_file = payload_file.with_name(payload_file.name + ".calls")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None, "service is not running"
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def calls(self) -> list[int]:
        """Every call received so far, in order: how many were in flight at the service as it
        arrived, itself included (across restarts: the file is appended to)."""
        try:
            return [int(line) for line in self.calls_file.read_text().split()]
        except FileNotFoundError:
            return []

    def set_payload(self, payload: bytes) -> None:
        # Replaced whole, so a call never reads a half-written file.
        part = self.payload_file.with_name(self.payload_file.name + ".part")
        part.write_bytes(payload)
        part.replace(self.payload_file)

    def start(self) -> None:
        """Start the process and return once it owns its name on the bus."""
        assert self._process is None, "service already started"
        command = [
            sys.executable,
            "-m",
            "tests.support.prombus_service",
            f"--address={self.address}",
            f"--payload={self.payload_file}",
            f"--name={self.name}",
            f"--mode={self.mode}",
            f"--calls={self.calls_file}",
        ]
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log
            )
        try:
            line = _read_line(self._process, f"prombus service {self.name}", self.log)
            assert line == "ready", f"prombus service printed {line!r}"
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the process; on SIGTERM it releases its name before exiting."""
        process, self._process = self._process, None
        if process is not None:
            _stop(process)


class PrombusFactory(Protocol):
    """The `prombus` fixture: start a service serving `payload`; it is stopped after the test."""

    def __call__(self, payload: bytes, *, name: str = PROMBUS_NAME, mode: Mode = "ay") -> PrombusService: ...


@contextlib.contextmanager
def prombus_service(
    address: str, payload_file: Path, *, name: str = PROMBUS_NAME, mode: Mode = "ay"
) -> Iterator[PrombusService]:
    service = PrombusService(address, payload_file, name=name, mode=mode)
    service.start()
    try:
        yield service
    finally:
        service.stop()


def _read_line(process: subprocess.Popen[bytes], what: str, log: Path) -> str:
    """The first line `process` prints, waiting at most START_TIMEOUT for it."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    deadline = time.monotonic() + START_TIMEOUT
    buffer = b""
    while b"\n" not in buffer:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{what} (pid {process.pid}) not ready within {START_TIMEOUT} s{_tail(log)}")
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            try:
                status: object = process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                status = "unknown (still running)"
            raise RuntimeError(
                f"{what} (pid {process.pid}) closed stdout before it was ready, status {status}{_tail(log)}"
            )
        buffer += chunk
    return buffer.partition(b"\n")[0].decode()


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM `process` by its pid, wait, SIGKILL if it lingers; close our end of its stdout."""
    try:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    finally:
        if process.stdout is not None:
            process.stdout.close()


def _tail(log: Path) -> str:
    try:
        text = log.read_text(errors="replace").strip()
    except OSError:
        return ""
    return f"; its log ends:\n{text[-2000:]}" if text else ""


@contextlib.asynccontextmanager
async def bus_client(address: str) -> AsyncIterator[MessageBus]:
    """A plain dbus-next connection for looking at the bus from a test; closed completely after."""
    bus = MessageBus(bus_address=address)
    try:
        await bus.connect()
        yield bus
    finally:
        if bus.connected:
            bus.disconnect()  # type: ignore[no-untyped-call]
            await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
        # dbus-next leaves its socket open after a disconnect.
        bus._stream.close()
        bus._sock.close()


async def _bus_call(bus: MessageBus, member: str, signature: str = "", body: list[object] | None = None) -> Message:
    reply = await bus.call(
        Message(
            destination="org.freedesktop.DBus",
            path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus",
            member=member,
            signature=signature,
            body=body or [],
        )
    )
    assert reply is not None and reply.error_name is None, f"{member}: {reply and reply.body}"
    return reply


async def connections_from(address: str, pid: int) -> int:
    """How many connections process `pid` has open to the bus at `address` (not counting ours)."""
    async with bus_client(address) as bus:
        names = (await _bus_call(bus, "ListNames")).body[0]
        count = 0
        for name in names:
            if not name.startswith(":") or name == bus.unique_name:
                continue
            owner_pid = (await _bus_call(bus, "GetConnectionUnixProcessID", "s", [name])).body[0]
            count += owner_pid == pid
        return count


async def name_owned(address: str, name: str) -> bool:
    async with bus_client(address) as bus:
        return bool((await _bus_call(bus, "NameHasOwner", "s", [name])).body[0])


#: Where a peer standing in for a dying bus daemon hangs up: at once, after the client's AUTH
#: line (the daemon gone before it answered), or halfway through its answer.
HangUp = Literal["at once", "after AUTH", "mid-answer"]
HANG_UPS: tuple[HangUp, ...] = ("at once", "after AUTH", "mid-answer")


@contextlib.asynccontextmanager
async def bus_that_hangs_up(directory: Path, when: HangUp | None) -> AsyncIterator[str]:
    """A Unix socket where a bus daemon would listen, whose peer closes each connection during
    authentication as a dbus-daemon being stopped does (`when`), or never answers (`None`); yields
    its DBus address. A real dbus-daemon cannot be made to die at a chosen byte of the exchange."""

    closing = asyncio.Event()
    peers: list[asyncio.Task[object]] = []

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            if when == "at once":
                return
            await reader.readexactly(1)  # the credentials byte
            await reader.readline()  # AUTH EXTERNAL <uid>
            if when == "mid-answer":
                writer.write(b"OK 0123456789abcdef")
                await writer.drain()
            elif when is None:
                await closing.wait()
        finally:
            writer.close()
            await writer.wait_closed()

    path = directory / "dying-bus"
    server = await asyncio.start_unix_server(peer, path)
    try:
        yield f"unix:path={path}"
    finally:
        closing.set()
        server.close()
        await server.wait_closed()
        await asyncio.gather(*peers, return_exceptions=True)  # each has closed its end
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
