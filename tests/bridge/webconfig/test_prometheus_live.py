"""Debian's Prometheus scrapes a real `serve` process over TLS with a client certificate and
basic auth, with the scrape job documented in docs/web-config.md; wrong credentials are refused
with the statuses the docs name."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from tests.support.processes import LOOPBACK, free_port, local_exporter_args, python_env, running, wait_http
from tests.support.prometheus import running_prometheus
from tests.support.web import PASSWORD, TLS_CLIENT_CERTS, Pki, users_yaml

ROOT = Path(__file__).resolve().parents[3]
DOC = (ROOT / "docs" / "web-config.md").read_text()


def documented_job() -> dict[str, Any]:
    block = re.search(r"## The Prometheus side.*?```yaml\n(.*?)```", DOC, re.S)
    assert block is not None, "docs/web-config.md has no scrape job"
    job: dict[str, Any] = yaml.safe_load(block.group(1))["scrape_configs"][0]
    return job


def test_prometheus_scrapes_through_tls_client_certificates_and_basic_auth(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    client = pki.ca.issue_cert("prometheus.example")
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "prometheus.crt"))
    client.private_key_pem.write_to_path(str(tmp_path / "prometheus.key"))
    intruder = pki.ca.issue_cert("intruder.example")
    intruder.cert_chain_pems[0].write_to_path(str(tmp_path / "intruder.crt"))
    intruder.private_key_pem.write_to_path(str(tmp_path / "intruder.key"))
    (tmp_path / "password").write_text(PASSWORD)
    (tmp_path / "wrong-password").write_text("wrong")
    (tmp_path / "zincati.prom").write_text("zincati_update_agent_updates_enabled 1\n")
    port = free_port()
    (tmp_path / "config.toml").write_text(
        f'[service]\naddress = "{LOOPBACK}"\nport = {port}\n[bridge.selectors]\n'
        f'zincati = {{ kind = "file", path = "{tmp_path}/zincati.prom" }}\n'
    )
    (tmp_path / "web.yml").write_text(TLS_CLIENT_CERTS + users_yaml())

    job = documented_job()
    job["tls_config"] = {
        "ca_file": str(tmp_path / "ca.pem"),
        "cert_file": str(tmp_path / "prometheus.crt"),
        "key_file": str(tmp_path / "prometheus.key"),
    }
    job["basic_auth"]["password_file"] = str(tmp_path / "password")
    job["static_configs"] = [{"targets": [f"{LOOPBACK}:{port}"]}]
    job["scrape_interval"] = job["scrape_timeout"] = "1s"
    wrong_password = copy.deepcopy(job) | {"job_name": "wrong_password"}
    wrong_password["basic_auth"]["password_file"] = str(tmp_path / "wrong-password")
    wrong_san = copy.deepcopy(job) | {"job_name": "wrong_san"}
    wrong_san["tls_config"] |= {"cert_file": str(tmp_path / "intruder.crt"), "key_file": str(tmp_path / "intruder.key")}

    args = local_exporter_args(
        "serve", "-c", str(tmp_path / "config.toml"), "--web.config.file", str(tmp_path / "web.yml")
    )
    with running("serve", args, tmp_path, python_env()) as bridge:
        wait_http(
            f"https://{LOOPBACK}:{port}/-/healthy",
            20,
            watch=[bridge],
            status=403,
            context=pki.client(certificate=False),
        )
        with running_prometheus(tmp_path / "prometheus", [job, wrong_password, wrong_san]) as prometheus:
            prometheus.wait_for('zincati_update_agent_updates_enabled{job="zincati"} == 1')
            prometheus.wait_for('up{job="zincati"} == 1')
            prometheus.wait_for('up{job=~"wrong_.*"} == 0', lambda result: len(result) == 2)
            errors = {t["labels"]["job"]: t["lastError"] for t in prometheus.targets()}
            assert errors["zincati"] == ""
            assert "401 Unauthorized" in errors["wrong_password"]
            assert "403 Forbidden" in errors["wrong_san"]
    assert "Traceback" not in bridge.stderr()
