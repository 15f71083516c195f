"""`kind = "os_update"`: the host's update state, normalised (agents/os_update.py, docs/metrics.md).

On Fedora CoreOS (`agent = "zincati"`) it combines Zincati's metrics (its socket) with
rpm-ostree's deployments and transaction (DBus, bridge/sources/rpm_ostree.py) and the boot
record (boot.py), and judges one phase (judge.py). On Flatcar (`agent = "update_engine"`) it
follows update_engine's status and reads its files and locksmith's
(bridge/sources/update_engine.py), and judges the phase with flatcar.py. Both serve the same
families (normalised.py). With `agent_metrics` (the default) the response also carries the agent's
own metrics as last read, so that a host's one job holds both its agent's families and the
normalised ones. The agent is read on this selector's own `interval`, not per scrape:
counter movements are judged between reads the bridge made, so every Prometheus server that
scrapes it sees the same state. A scrape serves the latest judgement; it waits only for the
first read after the bridge starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from local_exporter.agents import os_update as names
from local_exporter.bridge.errors import SourceError, SourceFailed
from local_exporter.bridge.sources import update_engine
from local_exporter.bridge.sources.base import ParseContext, SharedResources, SourceLimits
from local_exporter.bridge.sources.dbus import parse_bus, shared_connection
from local_exporter.bridge.sources.exposition import Family, render
from local_exporter.bridge.sources.os_update import boot, flatcar, judge, normalised, zincati
from local_exporter.bridge.sources.os_update.normalised import Facts
from local_exporter.bridge.sources.rpm_ostree import (
    DEFAULT_REFRESH_SECONDS,
    MAX_REFRESH_SECONDS,
    RpmOstreeReader,
    RpmOstreeSettings,
    SysrootState,
)
from local_exporter.bridge.sources.uds import MAX_PATH_BYTES, UdsSource
from local_exporter.bridge.sources.update_engine import FILE_KEYS, UpdateEngineReader, UpdateEngineSettings
from local_exporter.common.fields import Table

ZINCATI_SOCKET = "/run/zincati/public/metrics.promsock"
DEFAULT_INTERVAL = 15.0
#: The update agents, one per OS.
AGENTS = ("zincati", "update_engine")
#: As the bundle's `phase_window`: the rollout views count a host that rebooted into a new
#: version within it as just updated, and the rolling-update budget as still updating.
DEFAULT_REBOOTED_FOR = 900.0
BOOT_RECORD = "/var/lib/local_exporter/boot.json"
_PATHS = {
    "agent_socket": ZINCATI_SOCKET,
    "boot_record": BOOT_RECORD,
    "boot_id_file": "/proc/sys/kernel/random/boot_id",
    "stat_file": "/proc/stat",
    "update_driver_file": "/run/rpm-ostree/update-driver.gv",
}


@dataclass(frozen=True)
class OsUpdateSettings:
    agent_socket: str
    agent_metrics: bool
    interval: float
    agent_interval: float
    rebooted_for: float
    rpm_ostree: RpmOstreeSettings | None
    boot_record: str
    boot_id_file: str
    stat_file: str
    #: Set for `agent = "update_engine"` (Flatcar); then `agent_socket` and `rpm_ostree` are unused.
    update_engine: UpdateEngineSettings | None = None

    def describe(self) -> str:
        if self.update_engine is not None:
            return f"os_update {self.update_engine.describe()}"
        rpm_ostree = f" + {self.rpm_ostree.describe()}" if self.rpm_ostree else ""
        return f"os_update zincati {self.agent_socket}{rpm_ostree}"

    def open(self, limits: SourceLimits, shared: SharedResources) -> OsUpdateSource | FlatcarSource:
        if self.update_engine is not None:
            ue = self.update_engine
            return FlatcarSource(self, UpdateEngineReader(shared_connection(shared, ue.bus, ue.address), ue))
        reader = None
        if self.rpm_ostree is not None:
            connection = shared_connection(shared, self.rpm_ostree.bus, self.rpm_ostree.address)
            reader = RpmOstreeReader(connection, self.rpm_ostree)
        return OsUpdateSource(self, UdsSource(self.agent_socket, limits.max_bytes), reader)


#: Keys that apply to one agent only.
_ZINCATI_ONLY = ("agent_socket", "update_driver_file", "rpm_ostree", "agent_interval")


def parse(table: Table, context: ParseContext) -> OsUpdateSettings | None:
    agent = table.choice("agent", AGENTS, default="zincati")
    if agent == "update_engine":
        return _parse_update_engine(table, context)
    paths = {key: table.string(key, default) for key, default in _PATHS.items()}
    interval = table.number("interval", DEFAULT_INTERVAL, low=0, high=3600)
    agent_interval = table.number("agent_interval", judge.AGENT_INTERVAL, low=0, high=86400)
    rebooted_for = table.number("rebooted_for", DEFAULT_REBOOTED_FOR, low=0, high=7 * 86400)
    use_rpm_ostree = table.boolean("rpm_ostree", True)
    agent_metrics = table.boolean("agent_metrics", True)
    refresh = table.number("refresh", DEFAULT_REFRESH_SECONDS, low=0, high=MAX_REFRESH_SECONDS)
    bus = parse_bus(table, context)
    table.refuse(tuple(FILE_KEYS), 'applies to agent = "update_engine" only')
    ok = agent is not None and bus is not None and _absolute(table, paths)
    socket = paths["agent_socket"] or ""
    if len(socket.encode()) > MAX_PATH_BYTES:
        table.problem("agent_socket", f"is longer than the {MAX_PATH_BYTES} bytes a Unix socket path may have")
        ok = False
    if not ok or bus is None:
        return None
    rpm_ostree = (
        RpmOstreeSettings(bus[0], bus[1], refresh, paths["update_driver_file"] or "") if use_rpm_ostree else None
    )
    return OsUpdateSettings(
        agent_socket=socket,
        agent_metrics=agent_metrics,
        interval=interval,
        agent_interval=agent_interval,
        rebooted_for=rebooted_for,
        rpm_ostree=rpm_ostree,
        boot_record=paths["boot_record"] or "",
        boot_id_file=paths["boot_id_file"] or "",
        stat_file=paths["stat_file"] or "",
    )


def _parse_update_engine(table: Table, context: ParseContext) -> OsUpdateSettings | None:
    boot_paths = {key: table.string(key, _PATHS[key]) for key in ("boot_record", "boot_id_file", "stat_file")}
    interval = table.number("interval", DEFAULT_INTERVAL, low=0, high=3600)
    rebooted_for = table.number("rebooted_for", DEFAULT_REBOOTED_FOR, low=0, high=7 * 86400)
    agent_metrics = table.boolean("agent_metrics", True)
    refresh = table.number("refresh", update_engine.DEFAULT_REFRESH_SECONDS, low=0, high=MAX_REFRESH_SECONDS)
    bus = parse_bus(table, context)
    files = update_engine.parse_files(table)
    table.refuse(_ZINCATI_ONLY, 'applies to agent = "zincati" only')
    if not _absolute(table, boot_paths) or bus is None or files is None:
        return None
    return OsUpdateSettings(
        agent_socket="",
        agent_metrics=agent_metrics,
        interval=interval,
        agent_interval=0.0,
        rebooted_for=rebooted_for,
        rpm_ostree=None,
        boot_record=boot_paths["boot_record"] or "",
        boot_id_file=boot_paths["boot_id_file"] or "",
        stat_file=boot_paths["stat_file"] or "",
        update_engine=UpdateEngineSettings(bus[0], bus[1], refresh, MappingProxyType(files)),
    )


def _absolute(table: Table, paths: dict[str, str | None]) -> bool:
    ok = True
    for key, value in paths.items():
        if value is None:
            ok = False
        elif not value.startswith("/"):
            table.problem(key, f"must be an absolute path, got {value!r}")
            ok = False
    return ok


@dataclass(frozen=True)
class Snapshot:
    """The latest judgement and what it was made from."""

    judgement: judge.Judgement
    since: float
    memory: judge.Memory
    sysroot: SysrootState | None
    agent_up: bool
    rpm_ostree_up: bool | None
    boot_time: float | None
    record: boot.BootRecord | None
    #: The agent's exposition as last read ("" when it did not answer).
    agent_body: bytes = b""


class _Polling:
    """A source that reads its inputs on its own interval, not per scrape: a scrape serves the
    latest snapshot, and waits only for the first read after the bridge starts."""

    settings: OsUpdateSettings

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._first = asyncio.Event()
        self._record: boot.BootRecord | None = None

    def gauges(self) -> dict[str, float]:
        return {}

    async def fetch(self) -> bytes:
        if self._task is None:
            # Started by the first scrape: the source opens before the event loop serves.
            self._task = asyncio.get_running_loop().create_task(self._run())
        if not self._first.is_set():
            waiting = asyncio.ensure_future(self._first.wait())
            await asyncio.wait({waiting, self._task}, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
        if self._task.done() and not self._task.cancelled() and self._task.exception() is not None:
            error = self._task.exception()
            self._task = None
            raise SourceFailed(f"the os_update reader stopped: {error!r}"[:200])
        return self._render()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # asyncio.wait, not await: the task's own CancelledError is not ours, and a cancel of
            # this close still reaches whoever closes.
            await asyncio.wait({task})
            if not task.cancelled():
                task.exception()  # a reader that had failed was reported by the scrape after it

    async def _run(self) -> None:
        while True:
            await self._poll()
            self._first.set()
            await asyncio.sleep(self.settings.interval)

    async def _poll(self) -> None:
        raise NotImplementedError

    def _render(self) -> bytes:
        raise NotImplementedError

    def _timeout(self) -> float:
        return max(1.0, min(self.settings.interval, 10.0))

    def _boot(self, booted: str | None) -> float | None:
        """The boot time, and this boot's record once what was booted is known (again after a
        boot: on a host the bridge starts anew with it; a simulator's keeps running)."""
        try:
            started = boot.boot_time(self.settings.stat_file)
        except (OSError, ValueError):
            return None
        current = self._boot_id()
        if booted and current is not None and (self._record is None or self._record.boot_id != current):
            path = Path(self.settings.boot_record)
            previous = self._record if self._record is not None else boot.read_record(path)
            self._record = boot.after_boot(previous, current, booted, started)
            with contextlib.suppress(OSError):
                boot.write_record(path, self._record)
        return started

    def _boot_id(self) -> str | None:
        try:
            return boot.boot_id(self.settings.boot_id_file)
        except OSError:
            return None


class OsUpdateSource(_Polling):
    """Fedora CoreOS: Zincati's socket, rpm-ostree and the boot record."""

    def __init__(self, settings: OsUpdateSettings, agent: UdsSource, reader: RpmOstreeReader | None) -> None:
        super().__init__()
        self.settings = settings
        self.agent = agent
        self.reader = reader
        self.snapshot: Snapshot | None = None

    def _render(self) -> bytes:
        assert self.snapshot is not None
        own = render(families(self.snapshot))
        return self.snapshot.agent_body + own if self.settings.agent_metrics else own

    async def aclose(self) -> None:
        await super().aclose()
        await self.agent.aclose()

    async def _poll(self) -> None:
        previous = self.snapshot
        memory = previous.memory if previous is not None else judge.Memory()
        timeout = self._timeout()
        now = time.time()
        reading, body = None, b""
        with contextlib.suppress(SourceError, TimeoutError):
            async with asyncio.timeout(timeout):
                body = await self.agent.fetch()
            reading = zincati.parse(body, now)
        if reading is None:
            body = b""  # never pass on what did not parse
        elif body and not body.endswith(b"\n"):
            body += b"\n"
        sysroot, rpm_ostree_up = None, None
        if self.reader is not None:
            if self._record is not None and self._boot_id() not in (None, self._record.boot_id):
                # A boot since the record was made: read rpm-ostree anew before judging it.
                self.reader.invalidate()
            try:
                async with asyncio.timeout(timeout):
                    sysroot, rpm_ostree_up = await self.reader.state(), True
            except (SourceError, TimeoutError):
                rpm_ostree_up = False
        booted = sysroot.booted if sysroot is not None else None
        boot_time = self._boot(booted.checksum if booted is not None else None)
        inputs = Inputs(reading, body, sysroot, rpm_ostree_up, boot_time, self._record)
        self.snapshot = step(self.settings, previous, memory, inputs, now)


class FlatcarSource(_Polling):
    """Flatcar: update_engine's status (followed by its signals), its files and locksmith's,
    and the boot record."""

    def __init__(self, settings: OsUpdateSettings, reader: UpdateEngineReader) -> None:
        super().__init__()
        self.settings = settings
        self.reader = reader
        self.facts: Facts | None = None
        self._up = False
        self._last_answer: float | None = None
        #: update_engine's own families as of the last read, as the agent's body is for Zincati.
        self._agent_body = b""

    def _render(self) -> bytes:
        assert self.facts is not None
        own = render(normalised.families(self.facts))
        return self._agent_body + own if self.settings.agent_metrics else own

    async def _poll(self) -> None:
        assert self.settings.update_engine is not None
        now = time.time()
        files = update_engine.read_files(self.settings.update_engine.files)
        try:
            async with asyncio.timeout(self._timeout()):
                await self.reader.state()
            self._up, self._last_answer = True, now
        except (SourceError, TimeoutError):
            self._up = False
        boot_time = self._boot(files.version)
        record = self._record
        host = flatcar.FlatcarHost(
            files,
            record.rebooted_at if record is not None else None,
            self.settings.rebooted_for,
            self._up,
            self._last_answer,
            down_after=2 * self.settings.interval + flatcar.RESTART_SECONDS,
        )
        followed = self.reader.followed
        verdict = flatcar.judge(followed, host, now)
        previous = self.facts
        if previous is not None:
            since = previous.since if previous.judgement == verdict else now
        elif verdict.phase == "rebooted":
            since = host.rebooted_at or now
        elif followed is not None and verdict.phase != "agent_down":
            since = followed.since  # the bridge's first read: the operation's start as seen
        else:
            since = now
        if self.settings.agent_metrics and followed is not None:
            self._agent_body = render(update_engine.families(followed, files))
        self.facts = Facts(
            verdict,
            since,
            os=names.FLATCAR,
            agent="update_engine",
            os_version=files.version,
            stream=files.group,
            failures=followed.failures if followed is not None else {},
            last_check_success=followed.last_check_success if followed is not None else None,
            sources_up=(("agent", self._up),),
            agent_refresh=None,
            boot_time=boot_time,
            progress=followed.status.progress if followed is not None else None,
        )


@dataclass(frozen=True)
class Inputs:
    """One read of everything the phase is judged from."""

    reading: zincati.Reading | None
    body: bytes
    sysroot: SysrootState | None
    rpm_ostree_up: bool | None
    boot_time: float | None
    record: boot.BootRecord | None


def step(
    settings: OsUpdateSettings, previous: Snapshot | None, memory: judge.Memory, inputs: Inputs, now: float
) -> Snapshot:
    """The snapshot after one read: pure, so a backfilled history judges as the bridge does."""
    memory = judge.observe(memory, inputs.reading, now)
    record = inputs.record
    host = judge.Host(
        inputs.sysroot,
        record.rebooted_at if record is not None else None,
        settings.rebooted_for,
        down_after=max(settings.agent_interval / 5, 2 * settings.interval),
        agent_interval=settings.agent_interval,
    )
    verdict = judge.judge(memory, host, now)
    since = now
    if previous is not None and previous.judgement == verdict:
        since = previous.since
    elif previous is None:
        since = _first_since(verdict, memory, host, now)
    return Snapshot(
        verdict,
        since,
        memory,
        inputs.sysroot,
        inputs.reading is not None,
        inputs.rpm_ostree_up,
        inputs.boot_time,
        record,
        inputs.body,
    )


def _first_since(verdict: judge.Judgement, memory: judge.Memory, host: judge.Host, now: float) -> float:
    """When a phase seen at the bridge's first read began, where the inputs tell."""
    if verdict.phase == "rebooted" and host.rebooted_at is not None:
        return host.rebooted_at
    reading = memory.last
    changed = reading.get(judge.STATE_CHANGE) if reading is not None else None
    if verdict.phase in ("staged", "updates_disabled", "idle") and changed:
        # The agent's last state change: entering UpdateStaged, EndState or the polling states.
        return changed
    return now


def facts(snapshot: Snapshot) -> Facts:
    """What a Fedora CoreOS host's snapshot comes down to."""
    reading = snapshot.memory.last
    booted = snapshot.sysroot.booted if snapshot.sysroot is not None else None
    identity = (reading.labels(judge.OS_INFO) or [{}])[0] if reading is not None else {}
    sources = [("agent", snapshot.agent_up)]
    if snapshot.rpm_ostree_up is not None:
        sources.append(("rpm_ostree", snapshot.rpm_ostree_up))
    return Facts(
        snapshot.judgement,
        snapshot.since,
        os=booted.osname if booted is not None else names.FEDORA_COREOS,
        agent="zincati",
        os_version=booted.version if booted is not None else identity.get("os_version", ""),
        stream=(booted.stream if booted is not None else "") or identity.get("stream", ""),
        failures=snapshot.memory.failures,
        last_check_success=snapshot.memory.last_check_success,
        sources_up=tuple(sources),
        agent_refresh=snapshot.memory.refresh,
        boot_time=snapshot.boot_time,
    )


def families(snapshot: Snapshot) -> list[Family]:
    return normalised.families(facts(snapshot))
