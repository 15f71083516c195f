"""Shared fixtures: the repository root and the bundled example exposition."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_exporter.example import example_payload

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
