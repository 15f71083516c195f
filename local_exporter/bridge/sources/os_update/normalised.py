"""The normalised families `os_update` serves, the same for every OS (agents/os_update.py,
docs/metrics.md), from `Facts`: what each OS's reading of its agent comes down to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from local_exporter.agents import os_update as names
from local_exporter.bridge.sources.exposition import Family
from local_exporter.bridge.sources.os_update.judge import Judgement


@dataclass(frozen=True)
class Facts:
    judgement: Judgement
    #: When the current phase began.
    since: float
    os: str
    agent: str
    os_version: str
    stream: str
    #: Activity -> when it last failed (Unix time).
    failures: Mapping[str, float]
    last_check_success: float | None
    #: Each input ("agent", "rpm_ostree") and whether it answered the last read.
    sources_up: tuple[tuple[str, bool], ...]
    #: The agent's last refresh of its state machine, where it has one.
    agent_refresh: float | None
    boot_time: float | None
    #: Download progress, 0 to 1, while downloading, where the agent tells it.
    progress: float | None = None


def families(facts: Facts) -> list[Family]:
    verdict = facts.judgement
    # The booted version and stream (and the OS: both have a "stable") label the phase, the boot
    # time and the version rank too: fleet counts per phase and version, and each stream's
    # highest version, then need no join with the info series (a join of every host costs most
    # of a rule's time at 100,000 hosts: docs/benchmarks.md).
    where = {"os": facts.os, "os_version": facts.os_version, "stream": facts.stream}
    info = Family(names.INFO, "gauge", "The host's OS, its stream, its booted version and its update agent.").add(
        1, agent=facts.agent, **where
    )
    target = Family(names.TARGET, "gauge", "The version being downloaded, staged, or rebooted into.")
    waiting = Family(names.WAITING, "gauge", "Why a staged update waits for its reboot.")
    failure = Family(names.FAILURE, "gauge", "What keeps failing, while the phase is failing.")
    if verdict.target:
        target.add(1, version=verdict.target, os=facts.os)
    if verdict.waiting:
        waiting.add(1, reason=verdict.waiting, **where)
    if verdict.failure:
        failure.add(1, kind=verdict.failure, os=facts.os)
    progress = Family(names.PROGRESS, "gauge", "Download progress of the update, 0 to 1, where the agent tells it.")
    if facts.progress is not None and verdict.phase == "downloading":
        progress.add(facts.progress)
    last_failure = Family(names.LAST_FAILURE, "gauge", "When each update activity last failed (Unix time).")
    for kind, at in sorted(facts.failures.items()):
        last_failure.add(at, kind=kind)
    checked = Family(names.LAST_CHECK, "gauge", "When the agent last checked for updates successfully (Unix time).")
    if facts.last_check_success is not None:
        checked.add(facts.last_check_success)
    up = Family(names.SOURCE_UP, "gauge", "Whether each input answered the bridge's last read of it.")
    for source, answered in facts.sources_up:
        up.add(1 if answered else 0, source=source)
    refresh = Family(names.AGENT_REFRESH, "gauge", "The update agent's last refresh of its state machine (Unix time).")
    if facts.agent_refresh is not None:
        refresh.add(facts.agent_refresh)
    rank = Family(
        names.VERSION_RANK, "gauge", "Orders the booted version among the OS' versions, by their numeric parts."
    ).add(names.version_rank(facts.os_version), **where)
    booted_at = Family(names.BOOT, "gauge", "When the host booted (Unix time).")
    if facts.boot_time is not None:
        booted_at.add(facts.boot_time, **where)
    return [
        info,
        Family(names.PHASE, "gauge", "The host's update phase: exactly one series, at 1.").add(
            1, phase=verdict.phase, **where
        ),
        # The phase as a label here too: an alert on one phase's age then reads only the hosts in
        # it, not a gauge of every host (docs/benchmarks.md).
        Family(names.PHASE_START, "gauge", "When the current phase began (Unix time).").add(
            facts.since, phase=verdict.phase
        ),
        target,
        progress,
        waiting,
        failure,
        last_failure,
        checked,
        up,
        refresh,
        booted_at,
        rank,
    ]
