"""Shared fixtures: the repository root, the bundled example exposition, a private DBus bus."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_exporter.demo.example import example_payload
from tests.support.dbus import PROMBUS_NAME, DBusDaemon, Mode, PrombusFactory, PrombusService, private_bus

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def zincati_payload() -> bytes:
    """One host's Zincati exposition (text format 0.0.4)."""
    return example_payload()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: Unix socket paths are limited to 107 bytes."""
    directory = Path(tempfile.mkdtemp(prefix="le-", dir="/tmp"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def dbus_bus(short_dir: Path) -> Iterator[DBusDaemon]:
    """A private dbus-daemon of our own, its socket in `short_dir`."""
    with private_bus(short_dir) as bus:
        yield bus


@pytest.fixture
def prombus(dbus_bus: DBusDaemon, short_dir: Path) -> Iterator[PrombusFactory]:
    """Start prombus-like services on `dbus_bus`, each serving `payload` (see `set_payload`)."""
    services: list[PrombusService] = []

    def start(payload: bytes, *, name: str = PROMBUS_NAME, mode: Mode = "ay") -> PrombusService:
        service = PrombusService(dbus_bus.address, short_dir / f"payload-{len(services)}", name=name, mode=mode)
        service.set_payload(payload)
        services.append(service)
        service.start()
        return service

    try:
        yield start
    finally:
        for service in reversed(services):
            service.stop()
