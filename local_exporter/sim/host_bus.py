"""A simulated host's own bus: a private dbus-daemon standing in for the host's system bus, so
that rpm-ostree's real name can be owned once per host. Started and stopped by PID."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
from pathlib import Path

START_TIMEOUT = 10.0

#: dbus-daemon's limit on a socket's path (_DBUS_MAX_SUN_PATH_LENGTH in dbus-sysdeps-unix.c),
#: shorter than the kernel's 107 bytes: "Socket name too long" past it, measured with 1.14.
MAX_SOCKET_PATH = 99

#: Runs the command after it with SIGINT ignored (exec keeps an ignored signal ignored; uvloop
#: runs no preexec_fn). Ctrl-C at a terminal reaches the demo's whole process group: a host's bus
#: must outlive that, as a system bus outlives its services, until the fleet has closed the
#: services on it and stops the bus by PID. Killed with it, a bus could vanish in the middle of a
#: service's connect or name release.
IGNORING_CTRL_C = ("/bin/sh", "-c", 'trap "" INT; exec "$0" "$@"')


class HostBus:
    def __init__(self, directory: Path) -> None:
        self.socket = directory / "bus"
        self.address = f"unix:path={self.socket}"
        #: dbus-daemon's own messages (why it did not start, among others).
        self.log = directory / "bus.log"
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        binary = shutil.which("dbus-daemon")
        if binary is None:
            raise RuntimeError(
                "dbus-daemon is not installed (Debian package dbus-daemon; scripts/bootstrap installs it)"
            )
        length = len(os.fsencode(self.socket))
        if length > MAX_SOCKET_PATH:
            raise OSError(
                errno.ENAMETOOLONG,
                f"a host's bus socket {self.socket} is {length} bytes long, and dbus-daemon takes at most "
                f"{MAX_SOCKET_PATH}: use a shorter directory",
            )
        with self.log.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                *IGNORING_CTRL_C,
                binary,
                "--session",
                "--nofork",
                "--print-address=1",
                f"--address={self.address}",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        try:
            assert self._process.stdout is not None
            # Printed once the socket listens: `unix:path=...,guid=...`.
            async with asyncio.timeout(START_TIMEOUT):
                line = await self._process.stdout.readline()
            if not line.decode().startswith(self.address + ","):
                said = self.log.read_text(errors="replace").strip().splitlines()[-1:]
                raise RuntimeError(f"dbus-daemon for {self.socket} did not start: {' '.join(said) or line!r}")
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
            async with asyncio.timeout(10):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
