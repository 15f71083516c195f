"""Writing a file whole: readers (Prometheus' file discovery, a bridge, the next boot) see the
old content or the new, never half of either, and a crash leaves one of them."""

from __future__ import annotations

import os
from pathlib import Path


def replace_file(path: Path, data: bytes | str) -> None:
    """Write `data` beside `path` and rename it over `path`."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(data, str):
        temporary.write_text(data)
    else:
        temporary.write_bytes(data)
    os.replace(temporary, path)
