"""A scenario in motion: every host's Zincati agent, the world it sees, and an airlock.

`Fleet` is pure and deterministic: it owns scenario time (seconds from the start) and moves
every host by discrete events (refresh ticks with Zincati's 0-10 % jitter, reboots, faults
starting and ending), drawing randomness only from the scenario's seed. Callers choose what a
scenario second is in Unix time (`clock`): live runs compress it (`speed`), backfills lay it on
a fixed start. Nothing here does I/O; `live.py` serves hosts, `history.py` writes backfills.

What each host sees on a tick:
  * the offer: the newest release on its stream that has reached it, a release reaching a host
    of wariness w at `at + w * rollout` (Cincinnati's phased rollout);
  * fleet_lock: the shared airlock `Semaphores` — `steady-state` releases a host's slot after
    boot, `pre-reboot` takes one before finalizing, and a full group is a `failed_lock` error;
  * the active faults on it (`scenario.FaultSpec`), which set the `Environment` fields.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from local_exporter.agents import update_engine as api
from local_exporter.sim.airlock import LockError, Semaphores
from local_exporter.sim.flatcar import FlatcarAgent, FlatcarConfig, FlatcarWorld
from local_exporter.sim.scenario import FLATCAR, STEADY_STATE_ERROR, FaultSpec, FlatcarFleetSpec, ReleaseSpec, Scenario
from local_exporter.sim.zincati import Environment, State, ZincatiAgent, ZincatiConfig, ZincatiIdentity

#: Zincati adds up to 10 % to each refresh period.
JITTER = 0.10

Clock = Callable[[float], float]


@dataclass
class _Machine:
    """What every simulated host has: its faults, and whether its agent runs."""

    faults: list[FaultSpec] = field(default_factory=list, kw_only=True)
    rebooting: bool = field(default=False, kw_only=True)
    killed: bool = field(default=False, kw_only=True)

    @property
    def up(self) -> bool:
        """Whether the agent process runs (serves its metrics socket, is on the bus)."""
        return not (self.rebooting or self.killed)

    def active(self, kind: str, t: float) -> FaultSpec | None:
        return next((f for f in self.faults if f.kind == kind and f.active(t)), None)


@dataclass
class Host(_Machine):
    index: int
    name: str
    group: str
    #: The FleetLock client id (Zincati derives an app-specific id from the machine id).
    client_id: str
    #: Its rollout wariness, configured or Cincinnati's hidden per-node value.
    wariness: float
    agent: ZincatiAgent
    #: Bumped whenever a new tick is scheduled, so superseded tick events are skipped.
    tick_generation: int = 0


@dataclass
class FlatcarHost(_Machine):
    """A Flatcar host of a mixed fleet: update_engine and locksmith (sim/flatcar.py)."""

    index: int
    name: str
    #: locksmith's etcd lock group, and the holder id it uses (/etc/machine-id).
    lock_group: str
    machine_id: str
    wariness: float
    agent: FlatcarAgent
    step_generation: int = 0
    #: Bumped at each boot: the host's boot id changes.
    boots: int = 0


# Event kinds, in the order events at one instant are handled.
_FAULT_END, _FAULT_START, _REBOOTED, _TICK, _FLATCAR_REBOOTED, _FLATCAR_STEP = range(6)
#: The HTTP status update_engine gets for each check error kind of a fault (0: no response).
_CHECK_STATUS = {"generic_http_503": 503, "client_failed_request": 0}


class Fleet:
    def __init__(self, scenario: Scenario, clock: Clock) -> None:
        self.scenario = scenario
        self.clock = clock
        spec = scenario.fleet
        self.semaphores = Semaphores(dict(spec.groups))
        self.now = 0.0
        self._events: list[tuple[float, int, int, int, int]] = []
        self._sequence = 0
        self._random = random.Random(f"{spec.seed}:jitter")
        # The Flatcar hosts draw from their own: adding them leaves the others' times unchanged.
        self._flatcar_random = random.Random(f"{spec.seed}:flatcar")
        wariness = random.Random(f"{spec.seed}:wariness")
        self._healthy: dict[str | None, Environment] = {}
        self._releases: dict[str, list[ReleaseSpec]] = {}
        for release in sorted(scenario.releases, key=lambda r: r.at):
            stream = release.stream if release.os != FLATCAR else f"{FLATCAR}:{release.stream}"
            self._releases.setdefault(stream, []).append(release)
        disabled = {i for f in scenario.faults if f.kind == "updates_disabled" and f.os != FLATCAR for i in f.hosts}
        self.hosts: list[Host] = []
        for index in range(spec.hosts):
            name = spec.host_name(index)
            hidden = wariness.random()
            config = ZincatiConfig(
                strategy=spec.strategy,
                rollout_wariness=spec.wariness,
                updates_enabled=index not in disabled,
            )
            identity = ZincatiIdentity(spec.version, spec.basearch, spec.stream, spec.platform)
            client_id = hashlib.sha256(f"{spec.seed}:{name}".encode()).hexdigest()[:32]
            self.hosts.append(
                Host(
                    index,
                    name,
                    spec.group_of(index),
                    client_id,
                    spec.wariness if spec.wariness is not None else hidden,
                    ZincatiAgent(identity, config),
                )
            )
        for number, fault in enumerate(scenario.faults):
            if fault.os != FLATCAR:
                for index in fault.hosts:
                    self.hosts[index].faults.append(fault)
            if fault.kind == "agent_down":
                self._push(fault.start, _FAULT_START, number, -1)
                if fault.end is not None:
                    self._push(fault.end, _FAULT_END, number, -1)
        for host in self.hosts:
            host.agent.start(self.clock(0.0))
            # Hosts booted at different moments: spread their first ticks over one period.
            self._schedule_tick(host, self._random.uniform(0, 1) * 300.0)
        self.flatcar: list[FlatcarHost] = []
        self.locks = Semaphores({})
        if scenario.flatcar is not None:
            self._add_flatcar(scenario.flatcar, wariness)

    # --- time ------------------------------------------------------------------------------

    def advance(self, until: float) -> None:
        """Handle every event up to and including scenario time `until` (which may pass the
        scenario's duration: hosts go on refreshing in their final state)."""
        while self._events and self._events[0][0] <= until:
            t, kind, _, a, b = heapq.heappop(self._events)
            self.now = t
            if kind == _TICK:
                host = self.hosts[a]
                if b == host.tick_generation:
                    self._tick(host)
            elif kind == _REBOOTED:
                self._rebooted(self.hosts[a])
            elif kind == _FLATCAR_STEP:
                flatcar = self.flatcar[a]
                if b == flatcar.step_generation:
                    self._flatcar_step(flatcar)
            elif kind == _FLATCAR_REBOOTED:
                self._flatcar_rebooted(self.flatcar[a])
            elif kind == _FAULT_START:
                self._fault_start(self.scenario.faults[a])
            else:
                self._fault_end(self.scenario.faults[a])
        self.now = max(self.now, until)

    def render(self, index: int) -> bytes | None:
        """What host `index` serves now, or None while its agent is down (no socket)."""
        host = self.hosts[index]
        return host.agent.render() if host.up else None

    # --- events ----------------------------------------------------------------------------

    def _push(self, t: float, kind: int, a: int, b: int) -> None:
        self._sequence += 1
        heapq.heappush(self._events, (t, kind, self._sequence, a, b))

    def _schedule_tick(self, host: Host, delay: float) -> None:
        host.tick_generation += 1
        self._push(self.now + delay, _TICK, host.index, host.tick_generation)

    def _tick(self, host: Host) -> None:
        t = self.now
        if not host.up:
            return  # a new process schedules its own first tick
        stale = host.active("stale", t)
        if stale is not None:
            # The refresh loop is stuck: the socket still serves the last values.
            if stale.end is not None:
                self._schedule_tick(host, stale.end - t)
            return
        agent = host.agent
        delay = agent.tick(self.clock(t), self._environment(host, t))
        if agent.state is State.UPDATE_FINALIZED:
            # rpm-ostree reboots the host at once: the agent and its socket are gone until boot.
            host.rebooting = True
            self._push(t + self.scenario.reboot, _REBOOTED, host.index, -1)
            return
        if delay > 0 and not agent.exact_delay:
            delay *= 1 + self._random.uniform(0, JITTER)
        self._schedule_tick(host, delay)

    def _rebooted(self, host: Host) -> None:
        host.rebooting = False
        host.agent.reboot(self.clock(self.now))
        if host.up:
            self._schedule_tick(host, 0.0)

    def _fault_start(self, fault: FaultSpec) -> None:
        for index in fault.hosts:
            if fault.os == FLATCAR:
                self.flatcar[index].killed = True
            else:
                self.hosts[index].killed = True

    def _fault_end(self, fault: FaultSpec) -> None:
        if fault.os == FLATCAR:
            for index in fault.hosts:
                flatcar = self.flatcar[index]
                flatcar.killed = False
                if not flatcar.rebooting:
                    # systemd restarts update_engine (Restart=always).
                    self._schedule_step(flatcar, flatcar.agent.restart(self.clock(self.now), self._flatcar_random))
            return
        for index in fault.hosts:
            host = self.hosts[index]
            host.killed = False
            if not host.rebooting:
                # systemd restarts the agent: a new process, every counter from zero.
                host.agent.start(self.clock(self.now))
                self._schedule_tick(host, 0.0)

    # --- Flatcar hosts --------------------------------------------------------------------------

    def _add_flatcar(self, spec: FlatcarFleetSpec, wariness: random.Random) -> None:
        self.locks = Semaphores(dict(spec.locks))
        flatcar_faults = [f for f in self.scenario.faults if f.os == FLATCAR]
        disabled = {i for f in flatcar_faults if f.kind == "updates_disabled" for i in f.hosts}
        for index in range(spec.hosts):
            name = spec.host_name(index)
            hidden = wariness.random()
            server = api.DISABLED_SERVER if index in disabled else api.DEFAULT_SERVER
            agent = FlatcarAgent(spec.version, FlatcarConfig(spec.group, spec.strategy, server))
            machine_id = hashlib.sha256(f"{spec.seed}:{name}".encode()).hexdigest()[:32]
            wary = spec.wariness if spec.wariness is not None else hidden
            self.flatcar.append(FlatcarHost(index, name, spec.lock_group_of(index), machine_id, wary, agent))
        for fault in flatcar_faults:
            for index in fault.hosts:
                self.flatcar[index].faults.append(fault)
        for host in self.flatcar:
            # Booted at different moments: the first check comes 2-12 minutes after each start.
            first = host.agent.start(self.clock(0.0), self._flatcar_random)
            self._schedule_step(host, first * self._flatcar_random.uniform(0, 1))

    def _schedule_step(self, host: FlatcarHost, delay: float) -> None:
        host.step_generation += 1
        self._push(self.now + delay, _FLATCAR_STEP, host.index, host.step_generation)

    def _flatcar_step(self, host: FlatcarHost) -> None:
        if not host.up:
            return  # a restarted or rebooted update_engine schedules its own first step
        t = self.now
        agent = host.agent
        install_ok = host.active("deploy_failures", t) is None
        lock_granted = True
        if agent.wants_lock(install_ok):
            lock_granted = self._lock(self.locks.pre_reboot, host.lock_group, host.machine_id) is None
        check = host.active("check_errors", t)
        blocked = host.active("finalize_blocked", t)
        world = FlatcarWorld(
            offer=self.flatcar_offer(host, t),
            check_error=_CHECK_STATUS.get(check.error, 0) if check is not None else None,
            install_ok=install_ok,
            download_seconds=self.scenario.download,
            lock_granted=lock_granted,
            users=blocked.users if blocked is not None else 0,
        )
        delay = agent.step(self.clock(t), world, self._flatcar_random)
        if agent.reboot_requested and host.active("keeps_slot", t) is not None:
            # The reboot never happens (logind refuses it): locksmith keeps its etcd slot, and
            # once every slot of its group is held the others wait for good.
            return
        if agent.reboot_requested:
            host.rebooting = True
            self._push(t + self.scenario.reboot, _FLATCAR_REBOOTED, host.index, -1)
            return
        self._schedule_step(host, delay)

    def _flatcar_rebooted(self, host: FlatcarHost) -> None:
        host.rebooting = False
        host.boots += 1
        agent = host.agent
        delay = agent.boot(self.clock(self.now), self._flatcar_random)
        if agent.holds_lock:
            # locksmith, started again, takes itself off the semaphore's holders.
            self._lock(self.locks.steady_state, host.lock_group, host.machine_id)
            agent.holds_lock = False
        if not host.killed:
            self._schedule_step(host, delay)

    def flatcar_offer(self, host: FlatcarHost, t: float) -> str | None:
        """The newest Flatcar release on the host's group that has reached it by `t`."""
        reached = None
        for release in self._releases.get(f"{FLATCAR}:{host.agent.config.group}", ()):
            if release.at + host.wariness * release.rollout <= t:
                reached = release.version
        return reached

    # --- the world a host sees -------------------------------------------------------------

    def offer(self, host: Host, t: float) -> str | None:
        """The newest release on the host's stream that has reached it by `t`."""
        reached = None
        for release in self._releases.get(host.agent.identity.stream, ()):
            if release.at + host.wariness * release.rollout <= t:
                reached = release.version
        return reached

    def _environment(self, host: Host, t: float) -> Environment:
        agent = host.agent
        steady_state_error = pre_reboot_error = None
        if agent.config.strategy == "fleet_lock":
            # Only the call the agent makes on this tick touches the semaphore.
            if agent.state is State.INITIALIZED:
                self.semaphores.steady_state_requests += 1
                if host.active("steady_state_errors", t) is not None:
                    steady_state_error = STEADY_STATE_ERROR  # refused: the slot stays taken
                else:
                    steady_state_error = self._lock(self.semaphores.steady_state, host.group, host.client_id)
            elif agent.state is State.UPDATE_STAGED:
                self.semaphores.pre_reboot_requests += 1
                pre_reboot_error = self._lock(self.semaphores.pre_reboot, host.group, host.client_id)
        offer = self.offer(host, t)
        if not host.faults and steady_state_error is None and pre_reboot_error is None:
            # Most hosts, most ticks: a healthy world that differs only by the offer.
            healthy = self._healthy.get(offer)
            if healthy is None:
                healthy = self._healthy[offer] = Environment(offer=offer, deploy_seconds=self.scenario.download)
            return healthy
        check = host.active("check_errors", t)
        blocked = host.active("finalize_blocked", t)
        deadend = host.active("deadend", t)
        return Environment(
            offer=offer,
            check_error=check.error if check else None,
            booted_deadend=deadend is not None
            and agent.identity.os_version == (deadend.version or self.scenario.fleet.version),
            deploy_ok=host.active("deploy_failures", t) is None,
            register_driver_ok=host.active("driver_registration", t) is None,
            deploy_seconds=self.scenario.download,
            # A host that keeps its slot: finalization fails after the lock was taken, so the
            # slot is never given back and, once every slot is held, the rollout stalls.
            finalize_ok=host.active("keeps_slot", t) is None,
            steady_state_error=steady_state_error,
            pre_reboot_error=pre_reboot_error,
            active_users=blocked.users if blocked else 0,
        )

    @staticmethod
    def _lock(operation: Callable[[str, str], bool], group: str, holder: str) -> str | None:
        try:
            operation(group, holder)
        except LockError as exc:
            return exc.kind
        return None
