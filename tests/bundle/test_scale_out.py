"""bundle/scale_out.py's builders, which the compose stack, `demo --shards` and the live test share
(tests/deploy/test_scale_out.py checks the stack; tests/bundle/test_victoria_live.py runs it)."""

from __future__ import annotations

from local_exporter.bundle import scale_out
from local_exporter.bundle.config import BundleConfig

JOBS = [
    {"job_name": "zincati", "static_configs": [{"targets": ["a:9598"]}]},
    {"job_name": "airlock", "relabel_configs": [{"target_label": "x", "replacement": "y"}]},
]


def test_a_shard_keeps_each_jobs_own_relabelling_first_and_its_share_last() -> None:
    jobs = scale_out.sharded(JOBS, 1, 3)
    assert [job["job_name"] for job in jobs] == ["zincati", "airlock"]
    assert jobs[1]["relabel_configs"][0] == {"target_label": "x", "replacement": "y"}
    for job in jobs:
        *_, hashmod, keep = job["relabel_configs"]
        assert hashmod["modulus"] == 3 and hashmod["source_labels"] == ["__address__"]
        assert keep == {"source_labels": [scale_out.SHARD_LABEL], "regex": "1", "action": "keep"}
    assert "relabel_configs" not in JOBS[0]  # the caller's jobs are left as they were


def test_a_shard_forwards_and_never_times_out_past_its_interval() -> None:
    data = scale_out.shard_config(
        BundleConfig().scaled(60), JOBS, shard=0, shards=2, cluster="eu", write_url="http://vm/api/v1/write"
    )
    assert data["global"] == {"scrape_interval": "1s", "scrape_timeout": "1s", "external_labels": {"cluster": "eu"}}
    assert data["remote_write"] == [{"url": "http://vm/api/v1/write"}]
    assert scale_out.shard_config(
        BundleConfig(), JOBS, shard=0, shards=2, cluster="eu", write_url="w", send_deadline="1s"
    )["remote_write"] == [{"url": "w", "queue_config": {"batch_send_deadline": "1s"}}]
    assert BundleConfig().scrape_interval == "30s"
    assert (
        scale_out.shard_config(BundleConfig(), JOBS, shard=0, shards=2, cluster="eu", write_url="w")["global"][
            "scrape_timeout"
        ]
        == "10s"
    )


def test_vmalert_names_the_cluster_only_when_it_serves_one() -> None:
    config = BundleConfig(cluster_label="region")

    def flags(cluster: str | None) -> list[str]:
        return scale_out.vmalert_flags(
            config, rules=["r.yml"], store="http://vm", notifier="http://am", listen=":8880", cluster=cluster
        )

    one, many = flags("eu"), flags(None)
    assert "-external.label=region=eu" in one
    assert [flag for flag in one if not flag.startswith("-external.label=")] == many
    assert "-evaluationInterval=30s" in many and "-rule=r.yml" in many
    assert {"-datasource.url=http://vm", "-remoteWrite.url=http://vm", "-remoteRead.url=http://vm"} <= set(many)
