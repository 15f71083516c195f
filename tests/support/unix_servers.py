"""Real Unix-socket servers for tests: Zincati's protocol, and the ways a daemon misbehaves."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class ServerRecord:
    """What the server saw: connections accepted and connections the client closed on us."""

    accepted: int = 0
    client_closed: asyncio.Event = field(default_factory=asyncio.Event)


def write_and_close(payload: bytes) -> Behaviour:
    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(payload)
        await writer.drain()

    return behave


async def close_without_writing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    return None


def drip(chunk: bytes, interval: float, count: int | None = None) -> Behaviour:
    """Write `chunk` every `interval` seconds, `count` times or forever (an endless stream)."""

    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sent = 0
        while count is None or sent < count:
            writer.write(chunk)
            await writer.drain()
            sent += 1
            await asyncio.sleep(interval)

    return behave


async def never_write(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # Accept, then wait for the client to give up (read returns b"" when it closes).
    await reader.read()


@contextlib.asynccontextmanager
async def unix_server(path: Path, behaviour: Behaviour) -> AsyncIterator[ServerRecord]:
    record = ServerRecord()
    tasks: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        record.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await behaviour(reader, writer)
        except (ConnectionError, BrokenPipeError):
            record.client_closed.set()
        finally:
            if reader.at_eof():
                record.client_closed.set()
            writer.close()
            with contextlib.suppress(ConnectionError, BrokenPipeError):
                await writer.wait_closed()
            tasks.discard(task)

    server = await asyncio.start_unix_server(handle, path=str(path))
    try:
        yield record
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()
