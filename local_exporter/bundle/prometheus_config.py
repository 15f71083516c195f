"""An example prometheus.yml for the bundle: the rules, the Alertmanager, and three scrape jobs.

The job names come from BundleConfig's selectors, so the rules' `job="…"` matchers select what
this file scrapes. The agents are scraped through each host's bridge with the multi-target
pattern (`/bridge?selector=zincati`); the bridges' own `/metrics` are a second job on the same
targets, so both carry the same `instance` (what Alertmanager's per-host inhibitions compare).
"""

from __future__ import annotations

from typing import Any

from local_exporter.agents import nebraska
from local_exporter.bundle.config import BundleConfig, job_of
from local_exporter.bundle.yamltext import body, comment, commented_out, document
from local_exporter.common import jobs

CONFIG_PATH = "prometheus/prometheus.yml"
#: The bridge's default port (README, docs/configuration.md).
BRIDGE_PORT = 9598
#: The release feed bridge, next to Prometheus (docs/deploy.md).
RELEASE_FEED_PORT = 9599
#: airlock serves its metrics on its status port (2222 in its example configuration).
AIRLOCK_STATUS_PORT = 2222
NEBRASKA_PORT = nebraska.PORT
ALERTMANAGER = "localhost:9093"
EXAMPLE_HOSTS = ("host-a.example.org", "host-b.example.org")
EXAMPLE_FLATCAR_HOSTS = ("flatcar-a.example.org",)
EXAMPLE_CLUSTER = "example"


def job_name(selector: str) -> str:
    """`job="NAME"` -> NAME: the example needs each selector to be one plain job matcher."""
    try:
        return job_of(selector)
    except ValueError:
        raise ValueError(
            f'the example prometheus.yml needs a selector of the form job="NAME", got {selector!r}'
        ) from None


def _bridges() -> list[str]:
    return [f"{host}:{BRIDGE_PORT}" for host in EXAMPLE_HOSTS]


def _flatcar_bridges() -> list[str]:
    return [f"{host}:{BRIDGE_PORT}" for host in EXAMPLE_FLATCAR_HOSTS]


def scrape_configs(config: BundleConfig) -> list[dict[str, Any]]:
    return [
        {
            "job_name": job_name(config.agent_selector),
            "metrics_path": "/bridge",
            "params": {"selector": [jobs.AGENT_SELECTOR]},
            "static_configs": [{"targets": _bridges()}],
        },
        {
            # Flatcar hosts: their bridge's os_update selector reads update_engine.
            "job_name": job_name(config.flatcar_agent_selector),
            "metrics_path": "/bridge",
            "params": {"selector": [jobs.FLATCAR_AGENT_SELECTOR]},
            "static_configs": [{"targets": _flatcar_bridges()}],
        },
        {
            "job_name": job_name(config.bridge_selector),
            "static_configs": [{"targets": _bridges() + _flatcar_bridges()}],
        },
        # The release feeds: one bridge next to Prometheus reading the update servers.
        {
            **jobs.release_feed_job(
                f"localhost:{RELEASE_FEED_PORT}", (jobs.RELEASE_FEED_SELECTOR, jobs.FLATCAR_RELEASE_FEED_SELECTOR)
            ),
            "job_name": job_name(config.release_feed_selector),
        },
        {
            # Nebraska's own /metrics (its gauges refresh every 15 s).
            "job_name": job_name(config.nebraska_selector),
            "static_configs": [{"targets": [f"nebraska.example.org:{NEBRASKA_PORT}"]}],
        },
        {
            "job_name": job_name(config.airlock_selector),
            "static_configs": [{"targets": [f"airlock.example.org:{AIRLOCK_STATUS_PORT}"]}],
        },
    ]


def config_data(config: BundleConfig) -> dict[str, Any]:
    """The configuration as data (what prometheus.yml parses to)."""
    return {
        "global": {
            "scrape_interval": config.scrape_interval,
            "scrape_timeout": "10s",
            "evaluation_interval": config.scrape_interval,
            "external_labels": {config.cluster_label: EXAMPLE_CLUSTER},
        },
        "rule_files": ["rules/*.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [ALERTMANAGER]}]}]},
        "scrape_configs": scrape_configs(config),
    }


def config_text(config: BundleConfig) -> str:
    data = config_data(config)
    agents, flatcar, bridges, feeds, nebraska, airlock = data["scrape_configs"]
    file_sd = {"file_sd_configs": [{"files": ["targets/bridges/*.json"], "refresh_interval": "5m"}]}
    return document(
        [
            comment(
                "An example Prometheus for the OS-update bundle (checked with `promtool check config`).\n"
                f"Every Prometheus names its cluster in external_labels.{config.cluster_label}: alerts and\n"
                "federated series carry it, and Alertmanager groups and inhibits by it."
            )
            + body({"global": data["global"]}),
            comment("The generated recording and alerting rules (relative to this file).")
            + body({"rule_files": data["rule_files"]}),
            body({"alerting": data["alerting"]}),
            "scrape_configs:\n"
            + comment(
                "The update agents, through each host's bridge (the multi-target pattern: Prometheus asks\n"
                f"/bridge?selector=zincati on port {BRIDGE_PORT})."
            )
            + body([agents])
            + comment(
                "For a real fleet, replace static_configs (here and in the next job) by file service\n"
                "discovery, listing the same host:port targets in JSON or YAML files:",
                indent=2,
            )
            + commented_out(file_sd, indent=2)
            + comment(
                "Flatcar hosts, through their bridge's update_engine selector (kind os_update, agent\n"
                "update_engine): the same families, their own job."
            )
            + body([flatcar])
            + comment("The bridges' own /metrics, on the same targets: the same `instance` labels.")
            + body([bridges])
            + comment(
                "The release feeds: a bridge next to Prometheus reading the update servers (kinds cincinnati\n"
                "and nebraska, docs/deploy.md): each stream's newest version and its rollout plan."
            )
            + body([feeds])
            + comment(
                "Nebraska, Flatcar's update server: its own /metrics (instances per channel and version,\n"
                "failed updates). Its oidc and github auth modes guard /metrics too: give this job credentials."
            )
            + body([nebraska])
            + comment("The FleetLock server (airlock), on its status port.")
            + body([airlock]),
        ]
    )
