"""A Unix-socket server speaking Zincati's metrics protocol.

On each new connection: write the whole exposition, close. Read nothing. An empty render
closes without writing, as Zincati does when its encoder fails.

It is a plain protocol, not a streams callback: the answer is written and the close begun in
`connection_made` itself, so no task per connection exists that a stopping event loop could
drop before it closed its transport (an accepted connection would then be left open).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import cast


class _Exposition(asyncio.Protocol):
    def __init__(self, render: Callable[[], bytes]) -> None:
        self.render = render

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not an asyncio.WriteTransport subclass, but writes).
        stream = cast(asyncio.WriteTransport, transport)
        try:
            body = self.render()
            if body:
                stream.write(body)  # close() below sends what is buffered first
        finally:
            stream.close()


async def start_promsock(path: Path, render: Callable[[], bytes]) -> asyncio.Server:
    """Listen on `path` (replacing a stale socket file); `render()` is called per connection."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    loop = asyncio.get_running_loop()
    return await loop.create_unix_server(lambda: _Exposition(render), path=str(path))
