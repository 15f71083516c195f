"""A scenario in motion: every host's Zincati agent, the world it sees, and an airlock.

`Fleet` is pure and deterministic: it owns scenario time (seconds from the start) and moves
every host by discrete events (refresh ticks with Zincati's 0-10 % jitter, reboots, faults
starting and ending), drawing randomness only from the scenario's seed. Callers choose what a
scenario second is in Unix time (`clock`): live runs compress it (`speed`), backfills lay it on
a fixed start. Nothing here does I/O; `live.py` serves hosts, `history.py` writes backfills.

What each host sees on a tick:
  * its update check: the graph the simulated Cincinnati (`cincinnati.py`) serves it, for its
    wariness (configured, or derived from its node id as the policy engine does), and the
    release Zincati picks from it (agents/cincinnati.py find_update); a Flatcar host, what
    Nebraska answers it (`flatcar_offer`);
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

from local_exporter.agents import cincinnati as cincinnati_api
from local_exporter.agents import nebraska as nebraska_api
from local_exporter.agents import update_engine as api
from local_exporter.sim.airlock import LockError, Semaphores
from local_exporter.sim.cincinnati import Cincinnati, GraphQuery, QueryError, node_uuid, read_query, zincati_query
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
    #: Its node id: the app-specific machine id Zincati sends Cincinnati (`node_uuid`) and
    #: FleetLock (its client id).
    client_id: str
    #: The rollout wariness Cincinnati's policy engine throttles it with: the configured one (as
    #: Zincati sends it, six decimals), else the one it derives from the node id.
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


#: What a host's update check makes of Cincinnati's answer: the offer, the graph's nodes and
#: edges, whether the booted release is in it and a dead-end (`Environment`'s fields).
_Answer = tuple[str | None, int, int, bool, bool]
#: Outside a check nothing reads them: the Environment's defaults.
_NO_CHECK: _Answer = (None, Environment.graph_nodes, Environment.graph_edges, True, False)

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
        self._healthy: dict[_Answer, Environment] = {}
        #: Fedora CoreOS' update server: every Zincati host's check is answered by it.
        self.cincinnati = Cincinnati(scenario, clock)
        self._queries: dict[int, tuple[ZincatiIdentity, GraphQuery, str]] = {}
        self._checks: dict[tuple[int, str, bool], tuple[cincinnati_api.Graph, cincinnati_api.UpdateCheck]] = {}
        self._releases: dict[str, list[ReleaseSpec]] = {}
        for release in sorted(scenario.releases, key=lambda r: r.at):
            stream = release.stream if release.os != FLATCAR else f"{FLATCAR}:{release.stream}"
            self._releases.setdefault(stream, []).append(release)
        disabled = {i for f in scenario.faults if f.kind == "updates_disabled" and f.os != FLATCAR for i in f.hosts}
        self.hosts: list[Host] = []
        for index in range(spec.hosts):
            name = spec.host_name(index)
            # Drawn though unused (the policy engine derives it from the node id), so the Flatcar
            # hosts drawing after them keep their values.
            wariness.random()
            config = ZincatiConfig(
                strategy=spec.strategy,
                rollout_wariness=spec.wariness,
                updates_enabled=index not in disabled,
            )
            identity = ZincatiIdentity(spec.version, spec.basearch, spec.stream, spec.platform)
            uuid = node_uuid(spec.seed, name)
            sent = zincati_query(identity, uuid, spec.wariness).get("rollout_wariness")
            self.hosts.append(
                Host(
                    index,
                    name,
                    spec.group_of(index),
                    uuid,
                    cincinnati_api.compute_wariness(sent, uuid),
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

    def flatcar_channel(self, group: str, t: float) -> ReleaseSpec | None:
        """The release Nebraska's channel for `group` points to at `t`: the newest Flatcar release
        out on it, else the version the hosts booted (on their group; None on another)."""
        current = None
        spec = self.scenario.flatcar
        if spec is not None and spec.group == group:
            current = ReleaseSpec(spec.version, 0.0, 0.0, group, FLATCAR)
        for release in self._releases.get(f"{FLATCAR}:{group}", ()):
            if release.at <= t:
                current = release
        return current

    def flatcar_offer(self, host: FlatcarHost, t: float) -> str | None:
        """What Nebraska answers the host's update_engine at `t` (updates.go GetUpdatePackage):
        its group's channel's package, when the host runs an older version (semver), once the
        group's rollout policy lets it through.

        Nebraska lets `policy_max_updates_per_period` hosts through per period, first come first
        served; the group's policy (sim/nebraska.py) states the rollout's rate, hosts over the
        release's `rollout` window. Here each host comes through at `at + w * rollout`, its
        hidden wariness w its place in the line: the same rate, whatever order the hosts
        happen to check in, and deterministic without counting grants."""
        release = self.flatcar_channel(host.agent.config.group, t)
        if release is None or not nebraska_api.update_available(host.agent.version, release.version):
            return None
        if release.at + host.wariness * release.rollout > t:
            return None
        return release.version

    # --- the world a host sees -------------------------------------------------------------

    def update_check(self, host: Host, t: float) -> cincinnati_api.UpdateCheck:
        """The host's update check at `t`: the query Zincati sends, answered by the simulated
        Cincinnati exactly as its `/v1/graph` would, and Zincati's pick from that graph.
        Raises QueryError when the server refuses the query, GraphError on a node Zincati
        cannot read."""
        agent = host.agent
        # The query changes only with the booted release: read once per identity.
        cached = self._queries.get(host.index)
        if cached is None or cached[0] is not agent.identity:
            sent = zincati_query(agent.identity, host.client_id, agent.config.rollout_wariness)
            cached = self._queries[host.index] = (agent.identity, read_query(sent.items()), sent["os_checksum"])
        _, query, booted = cached
        graph = self.cincinnati.serve(query, t)
        # The served graphs are few and kept (cincinnati.py): Zincati's pick is made once for
        # each graph and booted release (the entry keeps the graph, so its id stays its own).
        key = (id(graph), booted, agent.config.allow_downgrade)
        known = self._checks.get(key)
        if known is None:
            check = cincinnati_api.find_update(graph, booted, allow_downgrade=agent.config.allow_downgrade)
            known = self._checks[key] = (graph, check)
        return known[1]

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
        # Only a check reads Cincinnati's answer: the offer, the graph's size, the booted node.
        answer = _NO_CHECK
        server_error = None
        if agent.state in (State.REPORTED_STEADY, State.NO_NEW_UPDATE):
            try:
                check = self.update_check(host, t)
            except QueryError as refused:
                server_error = f"generic_http_{refused.status}"
            except cincinnati_api.GraphError:
                server_error = "client_failed_node_parsing"
            else:
                answer = (
                    check.target.version if check.target is not None else None,
                    check.nodes,
                    check.edges,
                    check.booted is not None,
                    check.booted_deadend,
                )
        offer, nodes, edges, in_graph, deadend = answer
        if not host.faults and server_error is None and steady_state_error is None and pre_reboot_error is None:
            # Most hosts, most ticks: a healthy world that differs only by Cincinnati's answer.
            healthy = self._healthy.get(answer)
            if healthy is None:
                healthy = self._healthy[answer] = Environment(
                    offer=offer,
                    graph_nodes=nodes,
                    graph_edges=edges,
                    booted_in_graph=in_graph,
                    booted_deadend=deadend,
                    deploy_seconds=self.scenario.download,
                )
            return healthy
        check_fault = host.active("check_errors", t)
        blocked = host.active("finalize_blocked", t)
        return Environment(
            offer=offer,
            check_error=check_fault.error if check_fault else server_error,
            graph_nodes=nodes,
            graph_edges=edges,
            booted_in_graph=in_graph,
            booted_deadend=deadend,
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
