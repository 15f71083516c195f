"""update_engine, Flatcar Container Linux's update agent, as its sources define it.

flatcar/update_engine 7382641 (branch main; the mirror's `HEAD` branch is a 2018 CoreOS one
with /etc/coreos paths): src/update_engine/update_engine.xml and dbus_constants.h (the DBus
API), update_attempter.{h,cc} (statuses and when they are broadcast), update_check_scheduler.cc
(when checks run), omaha_request_params.cc and simple_key_value_store.cc (the config files),
systemd/update-engine.service. It exports no Prometheus metrics: the bridge's `update_engine`
kind reads this API; the simulator serves it.

The daemon broadcasts `StatusUpdate` with GetStatus's five values at (almost) every status
change, so a reader that follows the signal sees short statuses that polling misses:
`REPORTING_ERROR_EVENT` lasts only while an error event is sent, then the agent is `IDLE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BUS_NAME = "com.coreos.update1"
OBJECT_PATH = "/com/coreos/update1"
INTERFACE = "com.coreos.update1.Manager"
#: GetStatus's reply and StatusUpdate's body: last_checked_time (Unix seconds, 0 until the
#: first successful check of this process), progress (0..1), current_operation, new_version,
#: new_size (bytes).
STATUS_SIGNATURE = "xdssx"
GET_STATUS = "GetStatus"
ATTEMPT_UPDATE = "AttemptUpdate"
RESET_STATUS = "ResetStatus"
STATUS_SIGNAL = "StatusUpdate"

# `current_operation` values, in the enum's order (update_attempter.h L35-44).
IDLE = "UPDATE_STATUS_IDLE"
CHECKING = "UPDATE_STATUS_CHECKING_FOR_UPDATE"
UPDATE_AVAILABLE = "UPDATE_STATUS_UPDATE_AVAILABLE"
DOWNLOADING = "UPDATE_STATUS_DOWNLOADING"
#: In the enum and the string table, but never set (update_attempter.cc): the payload is
#: verified inside DOWNLOADING and the partitions inside FINALIZING.
VERIFYING = "UPDATE_STATUS_VERIFYING"
FINALIZING = "UPDATE_STATUS_FINALIZING"
NEED_REBOOT = "UPDATE_STATUS_UPDATED_NEED_REBOOT"
REPORTING_ERROR = "UPDATE_STATUS_REPORTING_ERROR_EVENT"
STATUSES = (IDLE, CHECKING, UPDATE_AVAILABLE, DOWNLOADING, VERIFYING, FINALIZING, NEED_REBOOT, REPORTING_ERROR)
#: The statuses between an update found and the update installed in the other partition.
INSTALLING = (UPDATE_AVAILABLE, DOWNLOADING, VERIFYING, FINALIZING)

#: `new_version` while no update is under way, and after a restart restored NEED_REBOOT.
VERSION_ZERO = "0.0.0"
#: Written when an update is installed; a restarted daemon finds it and says NEED_REBOOT again.
COMPLETED_MARKER = "/var/run/update_engine_autoupdate_completed"
#: With this file, update-engine.service does not start (ConditionPathExists=!/usr/.noupdate).
NO_UPDATE_FILE = "/usr/.noupdate"
#: Touched by the new release's postinstall (in FINALIZING) for kured; gone at the reboot.
REBOOT_REQUIRED_FILE = "/run/reboot-required"

#: Each key is read from the first of these files that contains it (omaha_request_params.cc),
#: at every check: the config needs no restart.
CONFIG_FILES = ("/etc/flatcar/update.conf", "/usr/share/flatcar/update.conf", "/usr/share/flatcar/release")
VERSION_KEY = "FLATCAR_RELEASE_VERSION"
BOARD_KEY = "FLATCAR_RELEASE_BOARD"
GROUP_KEY = "GROUP"
SERVER_KEY = "SERVER"
DEFAULT_GROUP = "stable"
DEFAULT_SERVER = "https://public.update.flatcar-linux.net/v1/update/"
#: Not a flag update_engine knows (a check against it fails like any bad URL), but the value
#: Flatcar's documentation gives to turn updates off: the adapter reads it as that.
DISABLED_SERVER = "disabled"

# When checks run (update_check_scheduler.cc), seconds; a fuzz F spreads a time over ±F/2.
FIRST_CHECK = 7 * 60
CHECK_INTERVAL = 45 * 60
CHECK_FUZZ = 10 * 60
#: Only after an HTTP 500 or 503 does the interval double, up to this.
MAX_BACKOFF = 4 * 60 * 60
BACKOFF_STATUSES = (500, 503)


def parse_config(text: str) -> dict[str, str]:
    """A config file as update_engine reads it (simple_key_value_store.cc): `KEY=value` split at
    the first `=`, nothing trimmed, no comments, one pair of matching quotes stripped, the last
    of a repeated key wins; a line without `=` is skipped. An empty value is a value: it stops
    the lookup in the next file."""
    pairs: dict[str, str] = {}
    for line in text.split("\n"):
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        pairs[key] = value
    return pairs


def lookup(files: list[dict[str, str]], key: str, default: str = "") -> str:
    """`key` from the first of `files` (parsed, in CONFIG_FILES order) that has it."""
    return next((pairs[key] for pairs in files if key in pairs), default)


@dataclass(frozen=True)
class Status:
    """GetStatus's reply, StatusUpdate's body."""

    last_checked_time: int = 0
    progress: float = 0.0
    operation: str = IDLE
    new_version: str = VERSION_ZERO
    new_size: int = 0

    def body(self) -> list[Any]:
        return [self.last_checked_time, self.progress, self.operation, self.new_version, self.new_size]
