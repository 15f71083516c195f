"""local_exporter.sim.host_bus: a simulated host's own dbus-daemon, started and stopped by PID."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from pathlib import Path

import pytest

from local_exporter.common.dbus_bus import Bus
from local_exporter.sim.host_bus import MAX_SOCKET_PATH, HostBus


def _pid(bus: HostBus) -> int:
    process = bus._process
    assert process is not None
    return process.pid


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def _answers(bus: HostBus) -> bool:
    client = Bus(bus_address=bus.address)
    await client.connect()
    try:
        return client.unique_name is not None
    finally:
        client.disconnect()  # type: ignore[no-untyped-call]
        await client.wait_for_disconnect()  # type: ignore[no-untyped-call]


async def test_ctrl_c_to_the_demo_group_leaves_the_bus_to_be_stopped_by_pid(short_dir: Path) -> None:
    """Ctrl-C reaches every process of the demo's group. The bus ignores it, so the services on it
    can leave it before it goes (a bus killed under a connecting service ended the demo's run)."""
    bus = HostBus(short_dir)
    await bus.start()
    pid = _pid(bus)
    try:
        assert Path(f"/proc/{pid}/exe").resolve().name == "dbus-daemon"  # exec'd, not a shell around it
        os.kill(pid, signal.SIGINT)
        assert await _answers(bus)
        assert _running(pid)
    finally:
        await bus.stop()
    assert not _running(pid)
    assert not bus.socket.exists()


async def test_the_bus_stops_on_sigterm_by_pid(short_dir: Path) -> None:
    bus = HostBus(short_dir)
    await bus.start()
    pid = _pid(bus)
    await bus.stop()
    assert not _running(pid) and not bus.socket.exists()
    await bus.stop()  # a second stop does nothing


async def test_a_missing_dbus_daemon_is_named_with_its_package(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(short_dir))
    with pytest.raises(RuntimeError, match=r"dbus-daemon is not installed \(Debian package dbus-daemon"):
        await HostBus(short_dir).start()


def _directory_for(short_dir: Path, socket_bytes: int) -> Path:
    """A directory under `short_dir` whose `bus` socket path is exactly `socket_bytes` long."""
    room = socket_bytes - len(os.fsencode(short_dir)) - len("/") - len("/bus")
    directory = short_dir / ("d" * room)
    directory.mkdir()
    assert len(os.fsencode(directory / "bus")) == socket_bytes
    return directory


async def test_a_socket_path_dbus_daemon_takes_at_its_limit_starts(short_dir: Path) -> None:
    bus = HostBus(_directory_for(short_dir, MAX_SOCKET_PATH))
    await bus.start()
    try:
        assert await _answers(bus)
    finally:
        await bus.stop()


async def test_a_socket_path_past_dbus_daemons_limit_is_refused_before_it_starts(short_dir: Path) -> None:
    directory = _directory_for(short_dir, MAX_SOCKET_PATH + 1)
    with pytest.raises(
        OSError, match=rf"is {MAX_SOCKET_PATH + 1} bytes long, and dbus-daemon takes at most 99"
    ) as raised:
        await HostBus(directory).start()
    assert raised.value.errno == errno.ENAMETOOLONG
    assert list(directory.iterdir()) == []


def test_dbus_daemon_itself_refuses_a_socket_path_past_the_limit(short_dir: Path) -> None:
    """The limit modelled above is dbus-daemon's own (_DBUS_MAX_SUN_PATH_LENGTH, 99, in
    dbus/dbus-sysdeps-unix.c), below the kernel's 107 bytes."""
    socket = _directory_for(short_dir, MAX_SOCKET_PATH + 1) / "bus"
    result = subprocess.run(
        ["dbus-daemon", "--session", "--nofork", "--print-address=1", f"--address=unix:path={socket}"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert result.returncode != 0
    assert "Socket name too long" in result.stderr
