"""A Unix-socket server speaking Zincati's metrics protocol.

On each new connection: write the whole exposition, close. Read nothing. An empty render
closes without writing, as Zincati does when its encoder fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path


async def start_promsock(path: Path, render: Callable[[], bytes]) -> asyncio.Server:
    """Listen on `path` (replacing a stale socket file); `render()` is called per connection."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            body = render()
            if body:
                writer.write(body)
                await writer.drain()
        except (ConnectionError, OSError):
            pass  # the client left early: nothing to clean up beyond the close below
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return await asyncio.start_unix_server(serve, path=str(path))
