"""What several dashboards share: label matchers, variables, and how each phase looks."""

from __future__ import annotations

from local_exporter.bundle import rules
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.dashboards.style import BAD, GOOD, IDLE, WARN, Query, Variable

#: Phase -> (what a stat calls it, colour, what it means). Every phase of rules.PHASES.
PHASE_STYLE: dict[str, tuple[str, str, str]] = {
    "up_to_date": ("Up to date", GOOD, "On the newest version of its stream."),
    "checking": ("Behind, checking", "blue", "Behind the newest version and idle: checking for updates."),
    "staging": ("Staging", "light-blue", "Downloading and deploying an update."),
    "staged": ("Staged, waiting to reboot", "purple", "Update staged; waiting for users, its strategy or a reboot."),
    "waiting_lock": ("Waiting for reboot lock", WARN, "Staged, refused a reboot slot: every slot is taken."),
    "rebooted": ("Rebooted into newest", "dark-green", "Started on the newest version within the phase window."),
    "error": ("Error", BAD, "An update check, deploy, finalization, status query or FleetLock call failed."),
    "disabled": ("Updates disabled", IDLE, "Automatic updates are turned off on the host."),
    "stale": ("Stale", "dark-orange", "The agent stopped refreshing: its update loop is stuck."),
    "down": ("Down", "dark-red", "The bridge answers, but not with the agent's metrics."),
}
assert set(PHASE_STYLE) == set(rules.PHASES), "every recorded phase needs a look"


#: The title suffix of panels that only hosts reporting their own state (an os_update selector)
#: fill: they stay empty for hosts whose phase is inferred from Zincati's counters.
REPORTED_ONLY = " (reported)"
#: The title suffix of panels that read Nebraska's own metrics: empty where it is not scraped.
NEBRASKA = " (Nebraska)"


def phase_code(phase: str) -> int:
    """A phase as a number (its priority, 1 first), for panels that draw one series of states."""
    return rules.PHASES.index(phase) + 1


def fleet(config: BundleConfig, extra: str = "") -> str:
    """Matchers of the fleet variables, the OS included: for the rules that count hosts (they
    carry `os`) and the hosts' own os_update families."""
    return agents(config, ", ".join(m for m in ('os=~"$os"', extra) if m))


def agents(config: BundleConfig, extra: str = "") -> str:
    """Matchers of the fleet variables but the OS, for series that have no `os` label: an
    agent's own families (Zincati's are Fedora CoreOS'), the bridges', the airlock's, and the
    rates recorded from them. The OS variable's "All" (`.*`) matches them too."""
    matchers = [f'{config.cluster_label}=~"${config.cluster_label}"', 'job=~"$job"']
    if config.group_label:
        matchers.append(f'{config.group_label}=~"${config.group_label}"')
    if extra:
        matchers.append(extra)
    return "{" + ", ".join(matchers) + "}"


def host(config: BundleConfig, extra: str = "") -> str:
    """Matchers of the fleet variables (but the OS: a host's own series) and the chosen host(s)."""
    return agents(config, ", ".join(m for m in ('instance=~"$instance"', extra) if m))


def by(config: BundleConfig, *labels: str) -> str:
    """A grouping clause for a breakdown: with `show_multi_cluster`, each cluster apart."""
    kept = ((config.cluster_label,) if config.show_multi_cluster else ()) + labels
    return f" by ({', '.join(kept)})" if kept else ""


def legend_for(config: BundleConfig, text: str) -> str:
    """A legend for a breakdown made with `by`: the cluster first when several are shown."""
    return f"{{{{{config.cluster_label}}}}} {text}" if config.show_multi_cluster else text


def breakdown(config: BundleConfig, series: str, *labels: str, legend: str) -> Query:
    """`sum by (labels) (series)` with its legend: the cluster kept apart in both, or in neither."""
    return Query(f"sum{by(config, *labels)} ({series})", legend=legend_for(config, legend))


def fleet_variables(config: BundleConfig, source: str = rules.HOSTS_BY_STREAM, *, os: bool = True) -> list[Variable]:
    """cluster (hidden unless multi-cluster), job, the group label and (with `os`) the OS, each
    listed from `source` (a metric or recording rule that carries them) within the choices made
    before it. The OS's "All" is `.*`, which also matches series without an `os` label."""
    chosen: list[str] = []
    variables = []
    labels = [(config.cluster_label, "Cluster", ".*", not config.show_multi_cluster), ("job", "Job", ".+", False)]
    if config.group_label:
        labels.append((config.group_label, config.group_label.capitalize(), ".+", False))
    if os:
        labels.append(("os", "OS", ".*", False))
    for label, title, all_value, hidden in labels:
        selector = "{" + ", ".join(chosen) + "}" if chosen else ""
        variables.append(
            Variable(label, title, f"label_values({source}{selector}, {label})", all_value=all_value, hidden=hidden)
        )
        chosen.append(f'{label}=~"${label}"')
    return variables


def instance_variable(config: BundleConfig, metric: str, *, multi: bool, os: bool = True) -> Variable:
    """The hosts of the chosen fleet that expose `metric`: one to drill into, or several.

    Several start on the first host, not "All", and "All" is `.*`: a `.+` matcher makes
    Prometheus union the postings of every host even before it finds a series, 50 ms a selector
    at 100,000 hosts, while `.*` (which also matches no label) is skipped (docs/benchmarks.md).
    """
    return Variable(
        "instance",
        "Host",
        f"label_values({metric}{fleet(config) if os else agents(config)}, instance)",
        multi=multi,
        all_value=".*" if multi else None,
        starts_on_all=False,
    )
