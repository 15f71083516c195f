"""`kind = "os_update"`: the host's update state, normalised (agents/os_update.py, docs/metrics.md).

On Fedora CoreOS it combines Zincati's metrics (its socket) with rpm-ostree's deployments and
transaction (DBus, bridge/sources/rpm_ostree.py) and the boot record (boot.py), and judges
one phase (judge.py). With `agent_metrics` (the default) the response also carries the agent's
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

from local_exporter.agents import os_update as names
from local_exporter.bridge.errors import SourceError, SourceFailed
from local_exporter.bridge.sources.base import ParseContext, SharedResources, SourceLimits
from local_exporter.bridge.sources.dbus import parse_bus, shared_connection
from local_exporter.bridge.sources.exposition import Family, render
from local_exporter.bridge.sources.os_update import boot, judge, zincati
from local_exporter.bridge.sources.rpm_ostree import (
    DEFAULT_REFRESH_SECONDS,
    MAX_REFRESH_SECONDS,
    RpmOstreeReader,
    RpmOstreeSettings,
    SysrootState,
)
from local_exporter.bridge.sources.uds import MAX_PATH_BYTES, UdsSource
from local_exporter.common.fields import Table

ZINCATI_SOCKET = "/run/zincati/public/metrics.promsock"
DEFAULT_INTERVAL = 15.0
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

    def describe(self) -> str:
        rpm_ostree = f" + {self.rpm_ostree.describe()}" if self.rpm_ostree else ""
        return f"os_update zincati {self.agent_socket}{rpm_ostree}"

    def open(self, limits: SourceLimits, shared: SharedResources) -> OsUpdateSource:
        reader = None
        if self.rpm_ostree is not None:
            connection = shared_connection(shared, self.rpm_ostree.bus, self.rpm_ostree.address)
            reader = RpmOstreeReader(connection, self.rpm_ostree)
        return OsUpdateSource(self, UdsSource(self.agent_socket, limits.max_bytes), reader)


def parse(table: Table, context: ParseContext) -> OsUpdateSettings | None:
    agent = table.choice("agent", ("zincati",), default="zincati")
    paths = {key: table.string(key, default) for key, default in _PATHS.items()}
    interval = table.number("interval", DEFAULT_INTERVAL, low=0, high=3600)
    agent_interval = table.number("agent_interval", judge.AGENT_INTERVAL, low=0, high=86400)
    rebooted_for = table.number("rebooted_for", DEFAULT_REBOOTED_FOR, low=0, high=7 * 86400)
    use_rpm_ostree = table.boolean("rpm_ostree", True)
    agent_metrics = table.boolean("agent_metrics", True)
    refresh = table.number("refresh", DEFAULT_REFRESH_SECONDS, low=0, high=MAX_REFRESH_SECONDS)
    bus = parse_bus(table, context)
    ok = agent is not None and bus is not None
    for key, value in paths.items():
        if value is None:
            ok = False
        elif not value.startswith("/"):
            table.problem(key, f"must be an absolute path, got {value!r}")
            ok = False
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


class OsUpdateSource:
    def __init__(self, settings: OsUpdateSettings, agent: UdsSource, reader: RpmOstreeReader | None) -> None:
        self.settings = settings
        self.agent = agent
        self.reader = reader
        self.snapshot: Snapshot | None = None
        self._task: asyncio.Task[None] | None = None
        self._first = asyncio.Event()
        self._record: boot.BootRecord | None = None

    def gauges(self) -> dict[str, float]:
        return {}

    async def fetch(self) -> bytes:
        if self._task is None:
            # Started by the first scrape: the source opens before the event loop serves.
            self._task = asyncio.get_running_loop().create_task(self._run())
        if self.snapshot is None:
            waiting = asyncio.ensure_future(self._first.wait())
            await asyncio.wait({waiting, self._task}, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
        if self._task.done() and not self._task.cancelled() and self._task.exception() is not None:
            error = self._task.exception()
            self._task = None
            raise SourceFailed(f"the os_update reader stopped: {error!r}"[:200])
        assert self.snapshot is not None
        own = render(families(self.snapshot))
        return self.snapshot.agent_body + own if self.settings.agent_metrics else own

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        await self.agent.aclose()

    async def _run(self) -> None:
        memory = judge.Memory()
        previous: Snapshot | None = None
        while True:
            previous = await self._poll(memory, previous)
            memory = previous.memory
            self.snapshot = previous
            self._first.set()
            await asyncio.sleep(self.settings.interval)

    async def _poll(self, memory: judge.Memory, previous: Snapshot | None) -> Snapshot:
        timeout = max(1.0, min(self.settings.interval, 10.0))
        now = time.time()
        reading, body = None, b""
        with contextlib.suppress(SourceError, TimeoutError):
            body = await asyncio.wait_for(self.agent.fetch(), timeout)
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
                sysroot, rpm_ostree_up = await asyncio.wait_for(self.reader.state(), timeout), True
            except (SourceError, TimeoutError):
                rpm_ostree_up = False
        boot_time = self._boot(sysroot)
        return step(
            self.settings,
            previous,
            memory,
            Inputs(reading, body, sysroot, rpm_ostree_up, boot_time, self._record),
            now,
        )

    def _boot(self, sysroot: SysrootState | None) -> float | None:
        """The boot time, and this boot's record once the booted deployment is known (again
        after a boot: on a host the bridge starts anew with it; a simulator's keeps running)."""
        try:
            started = boot.boot_time(self.settings.stat_file)
        except (OSError, ValueError):
            return None
        booted = sysroot.booted if sysroot is not None else None
        current = self._boot_id()
        if booted is not None and current is not None and (self._record is None or self._record.boot_id != current):
            path = Path(self.settings.boot_record)
            previous = self._record if self._record is not None else boot.read_record(path)
            self._record = boot.after_boot(previous, current, booted.checksum, started)
            with contextlib.suppress(OSError):
                boot.write_record(path, self._record)
        return started

    def _boot_id(self) -> str | None:
        try:
            return boot.boot_id(self.settings.boot_id_file)
        except OSError:
            return None


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


def families(snapshot: Snapshot) -> list[Family]:
    verdict, memory, sysroot = snapshot.judgement, snapshot.memory, snapshot.sysroot
    reading = memory.last
    booted = sysroot.booted if sysroot is not None else None
    identity = (reading.labels(judge.OS_INFO) or [{}])[0] if reading is not None else {}
    # The booted version and stream label the phase and the boot time too: fleet counts per
    # phase and version, and each version's first boot, then need no join with the info series
    # (a join of every host costs most of a rule's time at 100,000 hosts: docs/benchmarks.md).
    where = {
        "os_version": booted.version if booted is not None else identity.get("os_version", ""),
        "stream": (booted.stream if booted is not None else "") or identity.get("stream", ""),
    }
    info = Family(names.INFO, "gauge", "The host's OS, its stream, its booted version and its update agent.").add(
        1, os=booted.osname if booted is not None else "fedora-coreos", agent="zincati", **where
    )
    target = Family(names.TARGET, "gauge", "The version being downloaded, staged, or rebooted into.")
    waiting = Family(names.WAITING, "gauge", "Why a staged update waits for its reboot.")
    failure = Family(names.FAILURE, "gauge", "What keeps failing, while the phase is failing.")
    if verdict.target:
        target.add(1, version=verdict.target)
    if verdict.waiting:
        waiting.add(1, reason=verdict.waiting, **where)
    if verdict.failure:
        failure.add(1, kind=verdict.failure)
    out = [
        info,
        Family(names.PHASE, "gauge", "The host's update phase: exactly one series, at 1.").add(
            1, phase=verdict.phase, **where
        ),
        # The phase as a label here too: an alert on one phase's age then reads only the hosts in
        # it, not a gauge of every host (docs/benchmarks.md).
        Family(names.PHASE_START, "gauge", "When the current phase began (Unix time).").add(
            snapshot.since, phase=verdict.phase
        ),
        target,
        waiting,
        failure,
    ]
    last_failure = Family(names.LAST_FAILURE, "gauge", "When each update activity last failed (Unix time).")
    for kind, at in sorted(memory.failures.items()):
        last_failure.add(at, kind=kind)
    out.append(last_failure)
    checked = Family(names.LAST_CHECK, "gauge", "When the agent last checked for updates successfully (Unix time).")
    if memory.last_check_success is not None:
        checked.add(memory.last_check_success)
    out.append(checked)
    up = Family(names.SOURCE_UP, "gauge", "Whether each input answered the bridge's last read of it.")
    up.add(1 if snapshot.agent_up else 0, source="agent")
    if snapshot.rpm_ostree_up is not None:
        up.add(1 if snapshot.rpm_ostree_up else 0, source="rpm_ostree")
    out.append(up)
    refresh = Family(names.AGENT_REFRESH, "gauge", "The update agent's last refresh of its state machine (Unix time).")
    if memory.refresh is not None:
        refresh.add(memory.refresh)
    out.append(refresh)
    booted_at = Family(names.BOOT, "gauge", "When the host booted (Unix time).")
    if snapshot.boot_time is not None:
        booted_at.add(snapshot.boot_time, **where)
    out.append(booted_at)
    return out
