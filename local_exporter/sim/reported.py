"""What a simulated host's `os_update` selector serves, judged in-process for a backfilled history.

A live simulated host serves rpm-ostree on a bus and the bridge reads it (sim/host_rpm_ostree.py).
A history of 100,000 hosts cannot run that many buses, so each host's reporter does in one call
what the bridge does at each of its reads: parse Zincati's exposition as the bridge parses it,
turn the simulated rpm-ostree state into the bridge's `SysrootState` through the same converter
the bridge applies to rpm-ostree's DBus properties, keep the same boot record, and take the same
judging step (bridge/sources/os_update). Only the transport is skipped.
"""

from __future__ import annotations

from local_exporter.bridge.errors import BadPayload
from local_exporter.bridge.sources.exposition import render
from local_exporter.bridge.sources.os_update import (
    DEFAULT_REBOOTED_FOR,
    Inputs,
    OsUpdateSettings,
    Snapshot,
    boot,
    families,
    judge,
    step,
    zincati,
)
from local_exporter.bridge.sources.rpm_ostree import SysrootState, sysroot_state
from local_exporter.sim.fleet import Host
from local_exporter.sim.host_rpm_ostree import SimulatedSysroot
from local_exporter.sim.rpm_ostree import HostState


def settings(read_interval: float, agent_interval: float = judge.AGENT_INTERVAL) -> OsUpdateSettings:
    """An os_update selector reading every `read_interval` (what `step` uses of its settings)."""
    return OsUpdateSettings(
        agent_socket="",
        agent_metrics=False,
        interval=read_interval,
        agent_interval=agent_interval,
        rebooted_for=DEFAULT_REBOOTED_FOR,
        rpm_ostree=None,
        boot_record="",
        boot_id_file="",
        stat_file="",
    )


class Reporter:
    """One host's os_update selector, read once per call of `render`."""

    def __init__(self, host: Host, stream: str, selector: OsUpdateSettings) -> None:
        self.selector = selector
        self.sysroot = SimulatedSysroot(stream)
        self.memory = judge.Memory()
        self.previous: Snapshot | None = None
        self.record: boot.BootRecord | None = None
        self._boot_time = 0.0
        self._was_rebooting = False
        self._state: HostState | None = None
        self._sysroot: SysrootState | None = None
        self._boot(host)

    def render(self, host: Host, body: bytes | None, now: float) -> bytes:
        """The selector's own families after reading `body` (None: the agent's socket is gone)."""
        if self._was_rebooting and not host.rebooting:
            self._boot(host)
        self._was_rebooting = host.rebooting
        state = self.sysroot.state(host)
        if state != self._state:
            # Converted only when it changed: a host's deployments change a few times a day.
            self._state, self._sysroot = state, sysroot_state(state.sysroot(), running=True)
        sysroot = self._sysroot
        reading = None
        if body is not None:
            try:
                reading = zincati.parse(body, now)
            except BadPayload:
                body = None
        booted = sysroot.booted if sysroot is not None else None
        if booted is not None:
            boot_id = f"{host.name}-boot-{self.sysroot.boots}"
            self.record = boot.after_boot(self.record, boot_id, booted.checksum, self._boot_time)
        inputs = Inputs(reading, body or b"", sysroot, True, self._boot_time, self.record)
        self.previous = step(self.selector, self.previous, self.memory, inputs, now)
        self.memory = self.previous.memory
        return render(families(self.previous))

    def _boot(self, host: Host) -> None:
        self.sysroot.boot(host)
        self._boot_time = host.agent.value("process_start_time_seconds") or 0.0
