"""A live simulated Flatcar host: its own bus with update_engine on it (sim/update_engine.py)
broadcasting each status change the agent made (sim/flatcar.py), and the files a bridge's
`update_engine` and `os_update` selectors read: the release, the update config, locksmith's
coordinator file, the boot id and boot time.

update_engine leaves the bus while the host reboots or while it is stopped, and comes back
with the status its agent restarted with. Only a real reboot makes a new boot id.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from local_exporter.agents import locksmith
from local_exporter.agents import update_engine as api
from local_exporter.common.files import replace_file
from local_exporter.sim.fleet import FlatcarHost
from local_exporter.sim.host_bus import HostBus
from local_exporter.sim.update_engine import UpdateEngineService, serve_update_engine


class HostFlatcar:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.bus = HostBus(directory)
        self.service: UpdateEngineService | None = None
        self.release_file = directory / "release"
        self.update_conf = directory / "update.conf"
        self.coordinator_file = directory / "coordinator.conf"
        self.no_update_file = directory / "noupdate"
        self.boot_id_file = directory / "boot_id"
        self.stat_file = directory / "stat"
        self.boot_record = directory / "boot.json"
        self._boots = -1
        self._coordinator = ""

    def selector_files(self) -> dict[str, str]:
        """The file keys of an `update_engine` or `os_update` selector for this host."""
        return {
            "update_conf": str(self.update_conf),
            "default_update_conf": str(self.directory / "default-update.conf"),
            "release_file": str(self.release_file),
            "coordinator_file": str(self.coordinator_file),
            "no_update_file": str(self.no_update_file),
        }

    async def start(self, host: FlatcarHost, booted_at: float) -> None:
        config = host.agent.config
        replace_file(self.update_conf, f"{api.GROUP_KEY}={config.group}\n{api.SERVER_KEY}={config.server}\n")
        self._boot(host, booted_at)
        await self.bus.start()
        await self.sync(host, booted_at)

    async def sync(self, host: FlatcarHost, now: float) -> None:
        if host.boots != self._boots:
            self._boot(host, now)
        agent = host.agent
        changes = agent.take_changes()
        if not host.up:
            if self.service is not None:
                service, self.service = self.service, None
                await service.close()
            return
        if self.service is None:
            # A new update_engine: it broadcasts its status once as it starts.
            self.service = await serve_update_engine(self.bus.address, agent.status)
            changes = []
        for status in changes:
            self.service.update(**dataclasses.asdict(status))
        if agent.config.strategy != locksmith.OFF:
            coordinator = locksmith.render(agent.config.strategy, agent.coordinator)
            if coordinator != self._coordinator:
                replace_file(self.coordinator_file, coordinator)
                self._coordinator = coordinator

    async def close(self) -> None:
        if self.service is not None:
            service, self.service = self.service, None
            await service.close()
        await self.bus.stop()

    def _boot(self, host: FlatcarHost, booted_at: float) -> None:
        """A new boot: the booted release, its id and its time in the files the bridge reads."""
        self._boots = host.boots
        replace_file(self.release_file, f"{api.VERSION_KEY}={host.agent.version}\n{api.BOARD_KEY}=amd64-usr\n")
        replace_file(self.boot_id_file, f"{host.name}-boot-{host.boots}\n")
        replace_file(self.stat_file, f"cpu  1 0 1 1\nbtime {int(booted_at)}\nprocesses {host.boots + 1}\n")
