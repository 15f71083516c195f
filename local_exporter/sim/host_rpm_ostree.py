"""A live simulated host's rpm-ostree: its own bus, the service (sim/rpm_ostree.py) following the
simulated agent, and the host files the bridge's os_update selector reads (boot id, boot time,
update driver).

What rpm-ostree shows follows from Zincati's state: the booted deployment is the version the
host runs, the previous one its rollback; a staged deployment exists once Zincati staged an
update and until the reboot; `Deploy` runs while Zincati's deploy downloads, and
`FinalizeDeployment` while the host goes down for its reboot. Only a real reboot (not an agent
restart) makes a new boot id.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from local_exporter.agents import rpm_ostree as api
from local_exporter.sim.fleet import Host
from local_exporter.sim.host_bus import HostBus
from local_exporter.sim.rpm_ostree import Deployment, HostState, RpmOstreeService, serve_rpm_ostree, update_driver_file
from local_exporter.sim.zincati import State

_CALLER = ":1.41"  # zincati.service's connection, as rpm-ostree records the caller


def _checksum(version: str) -> str:
    return hashlib.sha256(version.encode()).hexdigest()


class SimulatedSysroot:
    """What rpm-ostree shows of one simulated host, following its agent: no I/O (the live host
    serves it on a bus; a backfilled history judges it in-process)."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.boots = 0
        self._booted: str | None = None
        self._rollback: str | None = None

    def boot(self, host: Host) -> None:
        """A new boot: what the previous boot ran becomes the rollback."""
        self.boots += 1
        version = host.agent.identity.os_version
        if self._booted is not None and version != self._booted:
            self._rollback = self._booted
        self._booted = version

    def state(self, host: Host) -> HostState:
        agent = host.agent
        booted = agent.identity.os_version
        deployments = []
        release = agent.release
        staged = (
            release is not None
            and release != booted
            and agent.state
            in (
                State.UPDATE_STAGED,
                State.UPDATE_FINALIZED,
                State.END,
            )
        )
        if staged and release is not None:
            deployments.append(self._deployment(release, staged=True))
        deployments.append(self._deployment(booted, booted=True))
        if self._rollback is not None and self._rollback != booted:
            deployments.append(self._deployment(self._rollback))
        transaction = api.IDLE_TRANSACTION
        path = api.os_object_path("fedora-coreos")
        if host.rebooting:
            transaction = ("FinalizeDeployment", _CALLER, path)
        elif agent.state is State.UPDATE_AVAILABLE and agent.exact_delay and agent.release is not None:
            transaction = ("Deploy", _CALLER, path)  # Zincati's deploy is downloading
        return HostState(deployments=tuple(deployments), transaction=transaction)

    def _deployment(self, version: str, *, booted: bool = False, staged: bool = False) -> Deployment:
        checksum = _checksum(version)
        return Deployment(
            version,
            checksum,
            self.stream,
            timestamp=int(hashlib.sha256(checksum.encode()).hexdigest()[:6], 16) + 1_700_000_000,
            booted=booted,
            staged=staged,
            digest=f"sha256:{_checksum(checksum)}",
        )


class HostRpmOstree:
    def __init__(self, directory: Path, stream: str) -> None:
        self.directory = directory
        self.sysroot = SimulatedSysroot(stream)
        self.bus = HostBus(directory)
        self.service: RpmOstreeService | None = None
        self.boot_id_file = directory / "boot_id"
        self.stat_file = directory / "stat"
        self.driver_file = directory / "update-driver.gv"
        self.boot_record = directory / "boot.json"
        self._was_rebooting = False

    async def start(self, host: Host) -> None:
        self.driver_file.write_bytes(update_driver_file())
        self._boot(host)
        await self.bus.start()
        self.service = await serve_rpm_ostree(self.bus.address, self._state(host))

    async def sync(self, host: Host) -> None:
        if self._was_rebooting and not host.rebooting:
            self._boot(host)
        self._was_rebooting = host.rebooting
        state = self._state(host)
        if self.service is not None and state != self.service.state:
            self.service.update(deployments=state.deployments, transaction=state.transaction)

    async def close(self) -> None:
        if self.service is not None:
            service, self.service = self.service, None
            await service.close()
        await self.bus.stop()

    def _boot(self, host: Host) -> None:
        """A new boot: its id and its time in the files the bridge reads."""
        self.sysroot.boot(host)
        started = host.agent.value("process_start_time_seconds") or 0
        boots = self.sysroot.boots
        self.boot_id_file.write_text(f"{host.name}-boot-{boots}\n")
        self.stat_file.write_text(f"cpu  1 0 1 1\nbtime {int(started)}\nprocesses {boots}\n")

    def _state(self, host: Host) -> HostState:
        return self.sysroot.state(host)
