"""A pure model of one Zincati update agent and its byte-exact metrics exposition.

Nothing here reads a clock or touches I/O: scenario code owns time and passes the current unix
time `now` to every call, and describes what the outside world answers (Cincinnati, rpm-ostree,
the FleetLock server, logged-in users) in an `Environment` per tick. That keeps fleet scenarios
deterministic and lets tests rebuild one host's exact output.

Driving it::

    agent = ZincatiAgent(identity, config)
    agent.start(now)                              # a new process
    delay = agent.tick(now, Environment(...))     # one refresh of the state machine
    ...                                           # call tick again `delay` (+ jitter) later
    agent.reboot(now)                             # after UpdateFinalized: a new process
    payload = agent.render()                      # what the promsock would serve

Like Zincati, one `tick` advances at most one state; after a state change it asks to be ticked
again at once (delay 0), otherwise after the refresh period.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from local_exporter.agents.zincati import FAMILIES

Strategy = Literal["immediate", "fleet_lock", "periodic"]

#: Base refresh period; Zincati adds 0–10 % jitter, which the caller adds to keep this pure.
REFRESH_PERIOD = 300.0
#: Refresh period while finalization is postponed for logged-in users.
POSTPONE_PERIOD = 60.0
#: Refresh period once the agent has nothing left to do (updates disabled, or waiting for reboot).
IDLE_PERIOD = 3 * 3600.0
#: Failed deploys of one release in a row before Zincati gives it up and checks again; the next
#: check offers it again if it is still offered, for another cycle (mod.rs, record_failed_deploy).
MAX_DEPLOY_ATTEMPTS = 12
#: Driver registration is retried inside one tick, waiting 1, 2, 4 ... s between attempts, at
#: most this long (src/rpm_ostree/cli_deploy.rs, deploy_register_driver).
MAX_REGISTER_BACKOFF = 256.0
#: Postponements for active user sessions before finalizing anyway.
MAX_FINALIZE_POSTPONEMENTS = 10


class State(enum.Enum):
    START = "StartState"
    INITIALIZED = "Initialized"
    REPORTED_STEADY = "ReportedSteady"
    NO_NEW_UPDATE = "NoNewUpdate"
    UPDATE_AVAILABLE = "UpdateAvailable"
    UPDATE_STAGED = "UpdateStaged"
    UPDATE_FINALIZED = "UpdateFinalized"
    END = "EndState"


@dataclass(frozen=True)
class ZincatiIdentity:
    """The booted OS, as `zincati_identity_os_info` labels it."""

    os_version: str
    basearch: str = "x86_64"
    stream: str = "stable"
    platform: str = "metal"


@dataclass(frozen=True)
class ZincatiConfig:
    """The agent's configuration: fixed for the life of the host, unlike its identity."""

    strategy: Strategy = "immediate"
    rollout_wariness: float | None = None
    updates_enabled: bool = True
    allow_downgrade: bool = False
    #: Total length of the periodic strategy's maintenance windows; only with `periodic`.
    periodic_schedule_minutes: int | None = None

    def __post_init__(self) -> None:
        if (self.strategy == "periodic") != (self.periodic_schedule_minutes is not None):
            raise ValueError("periodic_schedule_minutes is required with, and only with, the periodic strategy")
        if self.rollout_wariness is not None and not 0.0 <= self.rollout_wariness <= 1.0:
            raise ValueError("rollout_wariness must be within 0..1")


@dataclass(frozen=True)
class Environment:
    """What the world answers during one tick. The defaults are a healthy world with no update."""

    #: The release Cincinnati offers (None: no update for this host).
    offer: str | None = None
    #: The check fails with this error kind (e.g. `generic_http_503`) instead of answering.
    check_error: str | None = None
    graph_nodes: int = 18
    graph_edges: int = 20
    booted_deadend: bool = False
    #: Whether the booted release is a node of the graph Cincinnati serves (not: no update).
    booted_in_graph: bool = True
    deploy_ok: bool = True
    #: How long `rpm-ostree deploy` takes (the download): the tick blocks that long.
    deploy_seconds: float = 0.0
    finalize_ok: bool = True
    status_ok: bool = True
    register_driver_ok: bool = True
    #: FleetLock `steady-state` / `pre-reboot` fail with this error kind; None means success.
    #: A full reboot semaphore is an error (airlock: `failed_lock`), never a denial.
    steady_state_error: str | None = None
    pre_reboot_error: str | None = None
    #: Whether the periodic strategy's maintenance window is open now.
    window_open: bool = True
    active_users: int = 0


Labels = tuple[tuple[str, str], ...]


def _labels(**labels: str) -> Labels:
    return tuple(sorted(labels.items()))


def format_value(value: float) -> str:
    """Rust's `{}` for numbers: integers bare, others in shortest form and never with an exponent."""
    if float(value).is_integer():
        return str(int(value))
    return format(Decimal(repr(float(value))), "f")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@dataclass
class _Process:
    """Everything that lives and dies with one agent process."""

    state: State = State.START
    release: str | None = None
    deploy_failures_for_release: int = 0
    postponements_left: int = MAX_FINALIZE_POSTPONEMENTS
    #: The wait before the next driver registration attempt (0: not registering).
    register_backoff: float = 0.0
    #: A deploy is downloading: the tick that started it completes it at its next call.
    deploying: bool = False
    metrics: dict[str, dict[Labels, float]] = field(default_factory=dict)
    #: Render caches: family names in exposition order, and each family's text.
    order: list[str] | None = None
    family_text: dict[str, str] = field(default_factory=dict)


class ZincatiAgent:
    """One host's Zincati: the state machine and every metric value it exports."""

    def __init__(self, identity: ZincatiIdentity, config: ZincatiConfig | None = None) -> None:
        self.identity = identity
        self.config = config or ZincatiConfig()
        self._process: _Process | None = None
        # The last render, until a value changes: a fleet is scraped far more often than it ticks.
        self._rendered: bytes | None = None
        #: Whether the last tick's delay is exact (no jitter to add): see `tick`.
        self.exact_delay = False

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Start a new agent process: every counter is gone, only configuration gauges exist."""
        self._process = _Process()
        self._rendered = None
        self._set("process_start_time_seconds", now)
        self._set(
            "zincati_identity_os_info",
            1,
            _labels(
                os_version=self.identity.os_version,
                basearch=self.identity.basearch,
                stream=self.identity.stream,
                platform=self.identity.platform,
            ),
        )
        if self.config.rollout_wariness is not None:
            self._set("zincati_identity_rollout_wariness", self.config.rollout_wariness)
        self._set("zincati_update_agent_updates_enabled", int(self.config.updates_enabled))
        self._set("zincati_update_agent_updates_allow_downgrade", int(self.config.allow_downgrade))
        self._set("zincati_updates_strategy_mode", 1, _labels(strategy=self.config.strategy))
        if self.config.periodic_schedule_minutes is not None:
            self._set(
                "zincati_updates_strategy_periodic_schedule_length_minutes", self.config.periodic_schedule_minutes
            )
        self._set("zincati_update_agent_latest_state_change_timestamp", now)
        # The identity is read with `rpm-ostree status --booted` before the socket exists
        # (src/identity/mod.rs); a failure there stops the process, so it always succeeded.
        self._inc("zincati_rpm_ostree_status_attempts_total")

    def reboot(self, now: float, new_version: str | None = None) -> None:
        """The host reboots and a new process starts at `now`.

        Without `new_version` the host boots the finalized release if there is one (the normal end
        of an update), else the same version (an unrelated reboot).
        """
        process = self._proc
        if new_version is None and process.state in (State.UPDATE_FINALIZED, State.END):
            new_version = process.release
        if new_version is not None:
            self.identity = dataclasses.replace(self.identity, os_version=new_version)
        self.start(now)

    @property
    def state(self) -> State:
        return self._proc.state

    @property
    def release(self) -> str | None:
        """The release being staged or finalized, if any."""
        return self._proc.release

    # --- the refresh tick --------------------------------------------------------------------

    def tick(self, now: float, env: Environment | None = None) -> float:
        """Run one refresh of the state machine at `now`; return the base delay to the next tick.

        The delay is 0 after a state change (Zincati re-ticks at once; not after ReportedSteady
        -> NoNewUpdate, actor.rs), otherwise the refresh period without jitter, which the caller
        adds unless `exact_delay` says the delay is not a refresh period: a tick still running
        (a driver registration backing off, a deploy downloading) continues at its next call,
        and a postponed finalization waits 60 s flat.
        """
        env = env or Environment()
        process = self._proc
        if not (process.register_backoff > 0 or process.deploying):
            # Stamped when a tick starts; a tick that blocks keeps its stamp (actor.rs).
            self._set("zincati_update_agent_last_refresh_timestamp", now)
        self.exact_delay = False
        before = process.state
        match before:
            case State.START:
                self._initialize(env)
            case State.INITIALIZED:
                self._report_steady(env)
            case State.REPORTED_STEADY | State.NO_NEW_UPDATE:
                self._check_updates(env)
            case State.UPDATE_AVAILABLE:
                self._stage(env)
            case State.UPDATE_STAGED:
                self._finalize(env)
            case State.UPDATE_FINALIZED:
                process.state = State.END
            case State.END:
                pass
        if process.register_backoff > 0 or process.deploying:
            self.exact_delay = True
            return process.register_backoff if process.register_backoff > 0 else env.deploy_seconds
        if process.state is not before:
            self._set("zincati_update_agent_latest_state_change_timestamp", now)
            if (before, process.state) != (State.REPORTED_STEADY, State.NO_NEW_UPDATE):
                return 0.0
        if process.state is State.END:
            return IDLE_PERIOD
        if process.state is State.UPDATE_STAGED and process.postponements_left < MAX_FINALIZE_POSTPONEMENTS:
            self.exact_delay = True
            return POSTPONE_PERIOD
        return REFRESH_PERIOD

    def _initialize(self, env: Environment) -> None:
        process = self._proc
        if self.config.updates_enabled:
            if not env.register_driver_ok:
                self._inc("zincati_rpm_ostree_register_driver_failures_total")
                # Retried in this same tick, backing off (cli_deploy.rs): the state stays.
                process.register_backoff = min(max(process.register_backoff * 2, 1.0), MAX_REGISTER_BACKOFF)
                return
            process.register_backoff = 0.0
        # The local deployments, through the status cache, which is empty in a new process:
        # a request and a miss, once per process. A failure is only logged (actor.rs).
        self._inc("zincati_rpm_ostree_status_cache_requests_total")
        self._inc("zincati_rpm_ostree_status_cache_misses_total")
        self._status(env)
        process.state = State.INITIALIZED if self.config.updates_enabled else State.END

    def _report_steady(self, env: Environment) -> None:
        if self.config.strategy == "fleet_lock" and not self._fleet_lock("steady-state", env.steady_state_error):
            return
        self._proc.state = State.REPORTED_STEADY

    def _check_updates(self, env: Environment) -> None:
        # An update check does not call rpm-ostree (src/cincinnati/mod.rs).
        process = self._proc
        self._inc("zincati_cincinnati_update_checks_total")
        if env.check_error is not None:
            self._inc("zincati_cincinnati_update_checks_errors_total", _labels(kind=env.check_error))
            process.state = State.NO_NEW_UPDATE
            return
        self._set("zincati_cincinnati_graph_nodes_count", env.graph_nodes)
        self._set("zincati_cincinnati_graph_edges_count", env.graph_edges)
        if not env.booted_in_graph:
            # Not found in the graph: no update, no error, the dead-end flag untouched.
            process.state = State.NO_NEW_UPDATE
            return
        self._set("zincati_cincinnati_booted_release_is_deadend", int(env.booted_deadend))
        # Only denylisted targets (the booted and rollback deployments) are ignored: never a
        # newer release, however often it failed to deploy.
        self._set("zincati_cincinnati_ignored_update_targets", 0)
        if env.offer is None or env.offer == self.identity.os_version:
            process.state = State.NO_NEW_UPDATE
            return
        process.release = env.offer
        process.deploy_failures_for_release = 0
        process.state = State.UPDATE_AVAILABLE

    def _stage(self, env: Environment) -> None:
        process = self._proc
        assert process.release is not None
        if not process.deploying:
            self._inc("zincati_rpm_ostree_deploy_attempts_total")  # counted as the download starts
            if env.deploy_seconds > 0:
                process.deploying = True
                return
        process.deploying = False
        if not env.deploy_ok:
            self._inc("zincati_rpm_ostree_deploy_failures_total")
            self._failed_deploy()
            return
        # The staged deployment's stream is checked with `rpm-ostree status` (bypassing the
        # cache); a failure there counts as a failed attempt too.
        if not self._status(env):
            self._failed_deploy()
            return
        process.state = State.UPDATE_STAGED

    def _failed_deploy(self) -> None:
        process = self._proc
        process.deploy_failures_for_release += 1
        if process.deploy_failures_for_release >= MAX_DEPLOY_ATTEMPTS:
            # Given up for now, not for good: nothing is denylisted (mod.rs update_abandoned).
            process.release = None
            process.state = State.NO_NEW_UPDATE

    def _finalize(self, env: Environment) -> None:
        """One finalization attempt (actor.rs tick_finalize_update)."""
        process = self._proc
        self._inc("zincati_update_agent_finalization_attempts")
        if not self._strategy_can_finalize(env):
            # A refusal restarts the users' grace period: they get it in full once the lock is ours.
            process.postponements_left = MAX_FINALIZE_POSTPONEMENTS
            return
        # Counted on every tick the strategy allows, the last grace tick included (mod.rs).
        self._set("zincati_update_agent_finalization_detected_active_users", env.active_users)
        if process.postponements_left > 0 and env.active_users > 0:
            process.postponements_left -= 1
            self._inc("zincati_update_agent_postponed_finalizations_total")
            self._inc("zincati_update_agent_finalization_blocked_count", _labels(reason="active_usersessions"))
            return
        self._inc("zincati_rpm_ostree_finalize_attempts_total")
        if not env.finalize_ok:
            self._inc("zincati_rpm_ostree_finalize_failures_total")
            return
        self._inc("zincati_update_agent_finalization_successes")
        process.state = State.UPDATE_FINALIZED

    def _strategy_can_finalize(self, env: Environment) -> bool:
        match self.config.strategy:
            case "fleet_lock":
                ok = self._fleet_lock("pre-reboot", env.pre_reboot_error)
                response = "allow" if ok else "error"
            case "periodic":
                ok = env.window_open
                response = "allow" if ok else "deny"
            case _:
                ok, response = True, "allow"
        self._inc("zincati_updates_strategy_can_finalize_responses", _labels(response=response))
        return ok

    def _fleet_lock(self, api: str, error: str | None) -> bool:
        self._inc("zincati_strategy_fleet_lock_requests_total", _labels(api=api))
        if error is not None:
            self._inc("zincati_strategy_fleet_lock_errors_total", _labels(api=api, kind=error))
            return False
        return True

    def _status(self, env: Environment) -> bool:
        """`rpm-ostree status --json`, bypassing the cache; False when it failed."""
        self._inc("zincati_rpm_ostree_status_attempts_total")
        if not env.status_ok:
            self._inc("zincati_rpm_ostree_status_failures_total")
            return False
        return True

    # --- metrics -----------------------------------------------------------------------------

    @property
    def _proc(self) -> _Process:
        if self._process is None:
            raise RuntimeError("the agent has not been started")
        return self._process

    def _set(self, name: str, value: float, labels: Labels = ()) -> None:
        # Zincati keeps timestamps and counts as integers; only wariness is a float.
        stored = value if name == "zincati_identity_rollout_wariness" else int(value)
        current = self._proc.metrics.get(name)
        if current is not None and labels in current and current[labels] == stored:
            return  # unchanged (graph size, dead-end, ...): keep the cached text
        self._children(name)[labels] = stored

    def _inc(self, name: str, labels: Labels = ()) -> None:
        children = self._children(name)
        children[labels] = children.get(labels, 0) + 1

    def _children(self, name: str) -> dict[Labels, float]:
        """The family's series, about to change: its cached text and the whole render are dropped."""
        process = self._proc
        self._rendered = None
        process.family_text.pop(name, None)
        children = process.metrics.get(name)
        if children is None:
            children = process.metrics[name] = {}
            process.order = None
        return children

    def value(self, name: str, **labels: str) -> float | None:
        """One series' current value, None while it does not exist (families appear lazily)."""
        if self._process is None:
            return None
        return self._process.metrics.get(name, {}).get(_labels(**labels))

    def render(self) -> bytes:
        """The text exposition (0.0.4) exactly as Zincati writes it; empty before `start`."""
        if self._process is None:
            return b""
        if self._rendered is None:
            self._rendered = self._render()
        return self._rendered

    def _render(self) -> bytes:
        # A tick changes a few families: the others' text is reused (a fleet's backfill renders
        # every host at every scrape, so this is most of its cost).
        process = self._proc
        if process.order is None:
            process.order = sorted(process.metrics)
        texts = process.family_text
        parts = []
        for name in process.order:
            text = texts.get(name)
            if text is None:
                text = texts[name] = _family_text(name, process.metrics[name])
            parts.append(text)
        return "".join(parts).encode()


def _family_text(name: str, children: dict[Labels, float]) -> str:
    """One family's lines, each ending in a newline; empty for a family without series."""
    if not children:
        return ""
    family = FAMILIES[name]
    lines = [f"# HELP {name} {family.help}", f"# TYPE {name} {family.type}"]
    for labels in sorted(children, key=lambda key: tuple(value for _, value in key)):
        if tuple(key for key, _ in labels) != family.labels:
            # The model may only say what the real agent says (agents/zincati.py).
            raise ValueError(f"{name} has labels {family.labels}, not {tuple(key for key, _ in labels)}")
        rendered = ",".join(f'{key}="{_escape(value)}"' for key, value in labels)
        series = f"{name}{{{rendered}}}" if labels else name
        lines.append(f"{series} {format_value(children[labels])}")
    return "\n".join(lines) + "\n"
