"""local_exporter: bridges host-local metrics sources (files, Unix sockets, DBus) to Prometheus."""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"


def revision() -> str:
    """The git commit this code runs from (a checkout or an editable install), read from the
    repository's files without running git; "unknown" for an installed copy."""
    git = Path(__file__).resolve().parent.parent / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head[:12]
        ref = head.removeprefix("ref: ")
        loose = git / ref
        if loose.is_file():
            return loose.read_text().strip()[:12]
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(f" {ref}"):
                return line.split()[0][:12]
    except OSError:
        pass
    return "unknown"
