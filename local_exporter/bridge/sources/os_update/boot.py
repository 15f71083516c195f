"""Whether the last boot changed the booted deployment: the one fact no live interface keeps.

The bridge writes down, per boot (the kernel's boot id), which deployment was booted. On the
next boot it compares: a different deployment means the host rebooted into a new version at
that boot time; the same one means an ordinary reboot. An agent restart is not a boot at all.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from local_exporter.common.files import replace_file


@dataclass(frozen=True)
class BootRecord:
    boot_id: str
    checksum: str
    #: The boot time at which the booted deployment changed, if this boot did that.
    rebooted_at: float | None


def after_boot(previous: BootRecord | None, boot_id: str, checksum: str, boot_time: float) -> BootRecord:
    """This boot's record, given the last one written (None: never written, so unknown)."""
    if previous is not None and previous.boot_id == boot_id:
        return previous  # the bridge restarted within this boot: what it found then stands
    changed = previous is not None and previous.checksum != checksum
    return BootRecord(boot_id, checksum, boot_time if changed else None)


def read_record(path: Path) -> BootRecord | None:
    """The record at `path`, or None when there is none or it is not one (a fresh start)."""
    try:
        raw = json.loads(path.read_text())
        return BootRecord(str(raw["boot_id"]), str(raw["checksum"]), raw.get("rebooted_at"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_record(path: Path, record: BootRecord) -> None:
    """Replace the record atomically (a crash leaves the old one or the new one)."""
    replace_file(path, json.dumps(asdict(record)))


def boot_time(stat_file: str) -> float:
    """The kernel's boot time (`btime` of /proc/stat), Unix time; ValueError if not there."""
    with open(stat_file) as handle:
        for line in handle:
            if line.startswith("btime "):
                return float(line.split()[1])
    raise ValueError(f"{stat_file} has no btime line")


def boot_id(path: str) -> str:
    with open(path) as handle:
        return handle.read().strip()
