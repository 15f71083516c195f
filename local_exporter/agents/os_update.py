"""The normalised update state of a host, the same for every OS the product supports: the
vocabulary the `os_update` adapter serves (docs/metrics.md) and the bundle reads.

No name here says Zincati: a Flatcar host (update_engine) lands in the same phases.
"""

from __future__ import annotations

import re

#: The `os` label's values: every host family and every release family carries one of them.
FEDORA_COREOS = "fedora-coreos"
FLATCAR = "flatcar"

#: A host's update phase, exactly one at a time, in the order the adapter decides them (the
#: first that holds wins).
PHASES = (
    # The agent does not answer, or has stopped its cycle (judged by its own interval).
    "agent_down",
    # Automatic updates are turned off on the host.
    "updates_disabled",
    # An update activity fails again and again: `FAILURE_KINDS` says which.
    "failing",
    # The booted release is a dead end: no update will be offered from it.
    "dead_end",
    # Rebooting into the staged update now (finalizing).
    "rebooting",
    # An update is staged and waits for its reboot: `WAITING_REASONS` says why, if known.
    "staged",
    # An update is being downloaded and staged.
    "downloading",
    # The host rebooted into a new version recently (a real reboot, not an agent restart).
    "rebooted",
    # Nothing to do: no update is offered.
    "idle",
)

#: Why a staged update waits for its reboot.
WAITING_REASONS = (
    # Every reboot slot of the host's group is taken (FleetLock, locksmith's etcd lock).
    "reboot_lock",
    # Outside the update strategy's maintenance window.
    "maintenance_window",
    # Users are logged in; the agent postpones the reboot for them.
    "logged_in_users",
)

#: What keeps failing, when a host is `failing`.
FAILURE_KINDS = (
    # Checking the update server for updates (Cincinnati, Omaha).
    "update_check",
    # Downloading and staging the update (rpm-ostree deploy; update_engine's download,
    # verification and postinstall).
    "deploy",
    # Finalizing the staged update before the reboot.
    "finalize",
    # Taking a reboot slot before rebooting (FleetLock pre-reboot), for a reason other than
    # the slots being taken (that is `staged`, waiting for `reboot_lock`).
    "reboot_lock_acquire",
    # Releasing the reboot slot after the reboot (FleetLock steady-state): the host holds a
    # slot it no longer needs, and the agent checks for no update meanwhile.
    "reboot_lock_release",
    # Registering as the OS' update driver (rpm-ostree), which the agent retries forever.
    "driver_registration",
)

# The families the adapter serves (docs/metrics.md).
INFO = "os_update_info"
PHASE = "os_update_phase"
PHASE_START = "os_update_phase_start_timestamp_seconds"
TARGET = "os_update_target_info"
PROGRESS = "os_update_download_progress_ratio"
WAITING = "os_update_waiting_info"
FAILURE = "os_update_failure_info"
LAST_FAILURE = "os_update_last_failure_timestamp_seconds"
LAST_CHECK = "os_update_last_successful_check_timestamp_seconds"
SOURCE_UP = "os_update_source_up"
AGENT_REFRESH = "os_update_agent_refresh_timestamp_seconds"
BOOT = "os_update_boot_timestamp_seconds"
VERSION_RANK = "os_update_booted_version_rank"

#: Digits a rank keeps: integers up to 2**53 (9.007e15) are exact in a float64, and a rank's
#: first digit is a digit count of at most 8, which keeps it below 9.0e15.
_RANK_DIGITS = 16
_PART_DIGITS = 8


def version_rank(version: str) -> int:
    """A number that orders versions by their numeric parts, for PromQL, which cannot compare
    strings: each part written as its digit count then its digits, concatenated, cut or padded
    to 16 digits. `40.20240519.3.0` -> 2408202405191310; `4230.2.1` -> 4423012110000000.

    A longer part is a larger number, so comparing the digits compares the parts in order, and a
    version with a part more ranks above one without it. Versions that differ only past the 16th
    digit (a fourth part of 10 or more after an 8-digit date), or whose parts longer than 8 digits
    differ only past their 8th, tie; a version with no digits is 0.
    """
    parts = (str(int(part))[:_PART_DIGITS] for part in re.findall(r"\d+", version))
    digits = "".join(f"{len(part)}{part}" for part in parts)
    return int(digits[:_RANK_DIGITS].ljust(_RANK_DIGITS, "0")) if digits else 0
