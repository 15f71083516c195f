"""A simulated host's own bus: a private dbus-daemon standing in for the host's system bus, so
that rpm-ostree's real name can be owned once per host. Started and stopped by PID."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path

START_TIMEOUT = 10.0


class HostBus:
    def __init__(self, directory: Path) -> None:
        self.socket = directory / "bus"
        self.address = f"unix:path={self.socket}"
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        binary = shutil.which("dbus-daemon")
        if binary is None:
            raise RuntimeError(
                "dbus-daemon is not installed (Debian package dbus-daemon; scripts/bootstrap installs it)"
            )
        self._process = await asyncio.create_subprocess_exec(
            binary,
            "--session",
            "--nofork",
            "--print-address=1",
            f"--address={self.address}",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            assert self._process.stdout is not None
            # Printed once the socket listens: `unix:path=...,guid=...`.
            line = await asyncio.wait_for(self._process.stdout.readline(), START_TIMEOUT)
            if not line.decode().startswith(self.address + ","):
                raise RuntimeError(f"dbus-daemon for {self.socket} did not start: {line!r}")
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
