"""Past one Prometheus: the fleet's targets split between Prometheus shards by `hashmod` of their
address, each shard (in agent mode: it scrapes and forwards, stores and evaluates nothing)
remote-writing into one VictoriaMetrics, where vmalert evaluates the bundle's recording rules and
alerts and notifies Alertmanager; Grafana reads VictoriaMetrics through a Prometheus data source.

The pieces are built here once, for three users: the compose stack of this topology
(compose/scale-out.yaml, beside the single-Prometheus compose.yaml and sharing its services),
`local-exporter demo --shards N`, and the live test that compares it with one Prometheus
(tests/bundle/test_victoria_live.py). Shards split by address, so a host's agent job and its
bridge job (one address) land on the same shard, and the shards' targets never overlap: the
store needs no deduplication.

One vmalert per store of one cluster: `-external.label=cluster=NAME` names the cluster on what it
sends, as a Prometheus' external label does, including the alerts that read no series (the
heartbeat). vmalert's external labels overwrite a series' own (VictoriaMetrics issue 2903), so
where several clusters write into one store, leave the flag off: every rule keeps the cluster
label of its series (BundleConfig.fleet_labels). docs/deploy.md describes the topology.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from local_exporter.bundle import compose, provisioning
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.yamltext import body, comment, document, dump
from local_exporter.common.durations import parse_duration

COMPOSE_PATH = "compose/scale-out.yaml"
DATASOURCE_PATH = "compose/grafana/scale-out/datasources/victoriametrics.yml"
#: The images of the store and its ruler: the version tested here (Debian's victoria-metrics).
VICTORIA_METRICS_IMAGE = "docker.io/victoriametrics/victoria-metrics:v1.79.5"
VMALERT_IMAGE = "docker.io/victoriametrics/vmalert:v1.79.5"
#: More shards than this is a typo, not a fleet (BundleConfig.scale_out_shards, `demo --shards`).
MAX_SHARDS = 64
VICTORIA_METRICS_PORT = 8428
VMALERT_PORT = 8880
#: The label a shard's hashmod writes (dropped with the other __tmp labels after relabelling).
SHARD_LABEL = "__tmp_shard"
#: Where the rule files are in the vmalert container: recording.yml from prometheus/rules and the
#: alerts vmalert 1.79 takes from prometheus/vmalert (bundle/generate.py).
VMALERT_RULES = ("/etc/vmalert/recording.yml", "/etc/vmalert/alerts.yml")


def shard_path(shard: int) -> str:
    return f"compose/prometheus/shard-{shard}.yml"


def shard_relabeling(shard: int, shards: int) -> list[dict[str, Any]]:
    """Keep the targets whose address hashes to `shard` of `shards`: each target on one shard."""
    return [
        {"source_labels": ["__address__"], "modulus": shards, "target_label": SHARD_LABEL, "action": "hashmod"},
        {"source_labels": [SHARD_LABEL], "regex": str(shard), "action": "keep"},
    ]


def sharded(jobs: Sequence[Mapping[str, Any]], shard: int, shards: int) -> list[dict[str, Any]]:
    """`jobs` as shard `shard` of `shards` scrapes them (after each job's own relabelling)."""
    keep = shard_relabeling(shard, shards)
    return [{**job, "relabel_configs": [*job.get("relabel_configs", []), *keep]} for job in jobs]


def shard_config(
    config: BundleConfig,
    jobs: Sequence[Mapping[str, Any]],
    *,
    shard: int,
    shards: int,
    cluster: str,
    write_url: str,
    send_deadline: str | None = None,
) -> dict[str, Any]:
    """A shard's prometheus.yml (agent mode: no rules, no alerting): its share of `jobs`, named
    by `cluster`, remote-written to `write_url` (within `send_deadline`; Prometheus' default 5 s)."""
    remote_write: dict[str, Any] = {"url": write_url}
    if send_deadline is not None:
        remote_write["queue_config"] = {"batch_send_deadline": send_deadline}
    return {
        "global": {
            "scrape_interval": config.scrape_interval,
            "scrape_timeout": min(config.scrape_interval, "10s", key=parse_duration),
            "external_labels": {config.cluster_label: cluster},
        },
        "scrape_configs": sharded(jobs, shard, shards),
        "remote_write": [remote_write],
    }


#: Prometheus in agent mode: it scrapes, keeps a write-ahead log until the store has the
#: samples, and forwards them.
AGENT_FLAGS = ("--enable-feature=agent",)


def victoria_metrics_flags(*, listen: str, data: str, retention: str = "30d") -> list[str]:
    return [f"-httpListenAddr={listen}", f"-storageDataPath={data}", f"-retentionPeriod={retention}"]


def vmalert_flags(
    config: BundleConfig,
    *,
    rules: Sequence[str],
    store: str,
    notifier: str,
    listen: str,
    cluster: str | None,
    evaluation_interval: str | None = None,
) -> list[str]:
    """vmalert evaluating `rules` against the store at `store`, writing recorded series and alert
    state back there and restoring that state on restart (`-remoteRead`, as Prometheus restores
    `for` from its TSDB), notifying the Alertmanager at `notifier`. Groups without an interval
    run every `evaluation_interval` (default: the scrape interval, as the example Prometheus)."""
    return [
        *(f"-rule={path}" for path in rules),
        f"-datasource.url={store}",
        f"-remoteWrite.url={store}",
        f"-remoteRead.url={store}",
        f"-notifier.url={notifier}",
        f"-evaluationInterval={evaluation_interval or config.scrape_interval}",
        f"-httpListenAddr={listen}",
        *([f"-external.label={config.cluster_label}={cluster}"] if cluster else []),
    ]


def _shard_name(shard: int) -> str:
    return f"prometheus-shard-{shard}"


def compose_data(config: BundleConfig) -> dict[str, Any]:
    """The single-Prometheus stack's services with Prometheus replaced by the shards, the store
    and vmalert, and Grafana reading the store."""
    single = compose.compose_data(config)
    services = {name: service for name, service in single["services"].items() if name != "prometheus"}
    store = f"http://victoriametrics:{VICTORIA_METRICS_PORT}"
    shards = config.scale_out_shards
    for shard in range(shards):
        services[_shard_name(shard)] = {
            "image": compose.PROMETHEUS_IMAGE,
            "restart": "unless-stopped",
            "depends_on": compose.healthy("bridge", "victoriametrics"),
            "command": [
                "--config.file=/etc/prometheus/prometheus.yml",
                "--storage.agent.path=/prometheus",
                *AGENT_FLAGS,
            ],
            "volumes": [
                f"./prometheus/shard-{shard}.yml:/etc/prometheus/prometheus.yml:ro",
                f"sim:{compose.SIM_DIRECTORY}:ro",
                f"{_shard_name(shard)}-data:/prometheus",
            ],
            "healthcheck": compose.http_check("http://127.0.0.1:9090/-/ready"),
        }
    services["victoriametrics"] = {
        "image": VICTORIA_METRICS_IMAGE,
        "restart": "unless-stopped",
        "command": victoria_metrics_flags(listen=f":{VICTORIA_METRICS_PORT}", data="/storage"),
        "ports": [f"{VICTORIA_METRICS_PORT}:{VICTORIA_METRICS_PORT}"],
        "volumes": ["victoriametrics-data:/storage"],
        "healthcheck": compose.http_check(f"http://127.0.0.1:{VICTORIA_METRICS_PORT}/health"),
    }
    services["vmalert"] = {
        "image": VMALERT_IMAGE,
        "restart": "unless-stopped",
        "depends_on": compose.healthy("victoriametrics", "alertmanager"),
        "command": vmalert_flags(
            config,
            rules=VMALERT_RULES,
            store=store,
            notifier="http://alertmanager:9093",
            listen=f":{VMALERT_PORT}",
            cluster=compose.CLUSTER,
        ),
        "ports": [f"{VMALERT_PORT}:{VMALERT_PORT}"],
        "volumes": [
            f"../prometheus/rules/recording.yml:{VMALERT_RULES[0]}:ro",
            f"../prometheus/vmalert/alerts.yml:{VMALERT_RULES[1]}:ro",
        ],
        "healthcheck": compose.http_check(f"http://127.0.0.1:{VMALERT_PORT}/health"),
    }
    grafana = dict(services.pop("grafana"))
    grafana["depends_on"] = compose.healthy("victoriametrics")
    grafana["volumes"] = [
        "./grafana/scale-out/datasources:/etc/grafana/provisioning/datasources:ro",
        "./grafana/provisioning/dashboards:/etc/grafana/provisioning/dashboards:ro",
        *(volume for volume in grafana["volumes"] if not volume.startswith("./grafana/provisioning:")),
    ]
    services["grafana"] = grafana
    volumes: dict[str, Any] = {name: {} for name in single["volumes"] if name != "prometheus-data"}
    volumes |= {f"{_shard_name(shard)}-data": {} for shard in range(shards)} | {"victoriametrics-data": {}}
    return {"services": services, "volumes": volumes}


def shard_text(config: BundleConfig, shard: int) -> str:
    data = shard_config(
        config,
        compose.prometheus_data(config)["scrape_configs"],
        shard=shard,
        shards=config.scale_out_shards,
        cluster=compose.CLUSTER,
        write_url=f"http://victoriametrics:{VICTORIA_METRICS_PORT}/api/v1/write",
    )
    return document(
        [
            comment(
                f"Prometheus shard {shard} of {config.scale_out_shards} (agent mode) in the scale-out stack:\n"
                f"the targets whose address hashes to {shard}, remote-written to VictoriaMetrics (bundle/scale_out.py)."
            ),
            body(data),
        ]
    )


def datasource_text(config: BundleConfig) -> str:
    source = provisioning.datasource(
        config, name="VictoriaMetrics", url=f"http://victoriametrics:{VICTORIA_METRICS_PORT}"
    )
    return dump({"apiVersion": 1, "datasources": [source]})


def compose_text(config: BundleConfig) -> str:
    return document(
        [
            comment(
                f"The bundle past one Prometheus: `docker compose -f scale-out.yaml up` (`--profile demo`: with a\n"
                f"simulated fleet). {config.scale_out_shards} Prometheus shards in agent mode split the targets and "
                "remote-write into\nVictoriaMetrics; vmalert evaluates the bundle's rules there and notifies "
                "Alertmanager; Grafana reads\nVictoriaMetrics. The other services are compose.yaml's "
                "(docs/deploy.md, Past one Prometheus)."
            ),
            body(compose_data(config)),
        ]
    )


def render(config: BundleConfig) -> dict[str, str]:
    return {
        COMPOSE_PATH: compose_text(config),
        DATASOURCE_PATH: datasource_text(config),
        **{shard_path(shard): shard_text(config, shard) for shard in range(config.scale_out_shards)},
    }
