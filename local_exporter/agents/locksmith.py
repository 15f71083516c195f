"""locksmith, Flatcar's reboot coordinator, as its sources define it.

flatcar/locksmith 5b2275e (branch flatcar-master): pkg/coordinatorconf/conf.go (the file),
locksmithctl/daemon.go (strategies and states), pkg/timeutil/periodic.go (the window),
lock/semaphore.go and lock/etcd.go (the etcd lock), systemd/locksmithd.service.

locksmithd waits for update_engine's NEED_REBOOT, then for its reboot window, then (strategy
`etcd-lock`) for a slot of an etcd semaphore, then for logged-in users (5 minutes), and reboots.
It says where it is in one file, rewritten whole (renamed over) at each change.
"""

from __future__ import annotations

COORDINATOR_FILE = "/run/update-engine/coordinator.conf"
# Its three keys; values unquoted, lines in any order (a Go map), no final newline. The
# package comment says STATUS; the code writes STATE.
NAME_KEY = "NAME"
STRATEGY_KEY = "STRATEGY"
STATE_KEY = "STATE"
NAME = "locksmithd"

# REBOOT_STRATEGY (from /usr/share/flatcar/update.conf, then /etc/flatcar/update.conf).
#: The default (also when unset or empty): reboot once NEED_REBOOT and in the window.
REBOOT = "reboot"
#: Take a slot of the etcd semaphore first.
ETCD_LOCK = "etcd-lock"
#: Never reboot: the daemon exits before writing the file (an old file stays until a reboot).
OFF = "off"
STRATEGIES = (REBOOT, ETCD_LOCK, OFF)

# STATE, in order. `disabled` is defined in the code but never written.
STARTING = "starting"
#: Also while NEED_REBOOT waits for the reboot window.
RUNNING = "running"
#: The window is reached: waiting for the etcd lock (etcd-lock) and for logged-in users.
REBOOT_PLANNED = "reboot-planned"
#: Written only after the reboot was asked of logind: it may never be seen.
REBOOTING = "rebooting"
STATES = (STARTING, RUNNING, REBOOT_PLANNED, REBOOTING)

#: The window keys, locksmith's own first (LOCKSMITHD_ prefix), in update.conf or its env.
WINDOW_START_KEYS = ("LOCKSMITHD_REBOOT_WINDOW_START", "REBOOT_WINDOW_START")
WINDOW_LENGTH_KEYS = ("LOCKSMITHD_REBOOT_WINDOW_LENGTH", "REBOOT_WINDOW_LENGTH")
STRATEGY_ENV = "REBOOT_STRATEGY"
#: How long it waits for logged-in users after writing to their terminals.
LOGGED_IN_DELAY = 5 * 60


def render(strategy: str, state: str) -> str:
    """The file as locksmithd writes it (here in a fixed order)."""
    return "\n".join((f"{NAME_KEY}={NAME}", f"{STRATEGY_KEY}={strategy}", f"{STATE_KEY}={state}"))
