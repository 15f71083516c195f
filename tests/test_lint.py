"""ruff and mypy are part of the suite: a style or type regression fails CI like a bug."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "ruff", "check", "."],
        [sys.executable, "-m", "ruff", "format", "--check", "."],
        [sys.executable, "-m", "mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_clean(command: list[str]) -> None:
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


async def _cancel_as_it_completes(wait: Callable[[asyncio.Future[None]], Awaitable[None]]) -> str:
    """Cancel a task waiting through `wait` in the same turn of the loop as its awaitable
    completes, as a close cancelling a poller can meet the poller's read finishing."""
    inner: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def waiting() -> str:
        await wait(inner)
        return "carried on"

    task = asyncio.create_task(waiting())
    await asyncio.sleep(0)  # the task now waits
    inner.set_result(None)
    task.cancel()
    try:
        return await task
    except asyncio.CancelledError:
        return "cancelled"


async def _through_timeout(inner: asyncio.Future[None]) -> None:
    async with asyncio.timeout(10):
        await inner


async def test_asyncio_wait_for_is_banned_for_the_cancel_it_loses() -> None:
    """Why the lint bans asyncio.wait_for in the package (pyproject.toml): on Python 3.11 it
    returns the result of an awaitable that completed as its task was cancelled, so the task runs
    on (CPython gh-86296, fixed in 3.12). An os_update poller that did so outlived the cancel that
    closed it, and the demo's exit waited on it for ever. asyncio.timeout() keeps the cancel (the
    3.12 rewrite of wait_for on it, gh-96764, fixed wait_for)."""
    assert await _cancel_as_it_completes(_through_timeout) == "cancelled"
    lost = await _cancel_as_it_completes(lambda inner: asyncio.wait_for(inner, 10))
    assert lost == ("carried on" if sys.version_info < (3, 12) else "cancelled")
