"""The backfill writer: a valid OpenMetrics file whose backfilled series equal a live scrape's."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from local_exporter.sim.backfill import HistoryWriter, om_family, resolve_labels
from local_exporter.sim.zincati import Environment, State, ZincatiAgent, ZincatiConfig, ZincatiIdentity
from tests.support.processes import http_get
from tests.support.prometheus import PROMTOOL, Prometheus, create_blocks, running_prometheus

BOOTED = "41.20250105.3.0"
NEXT = "41.20250119.3.0"
INTERVAL = 60
JOB = "zincati"

SeriesKey = tuple[tuple[str, str], ...]


def target(host: int) -> dict[str, str]:
    return {"instance": f"host-{host:04d}:9598", "job": JOB}


def write(
    path: Path, scrapes: list[tuple[float, dict[str, str], bytes]], *, buckets: int = 64, buffer_chars: int = 1 << 25
) -> str:
    with HistoryWriter(path, buckets=buckets, buffer_chars=buffer_chars) as writer:
        for timestamp, labels, text in scrapes:
            writer.add(timestamp, labels, text)
    return path.read_text()


def sample_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def series_of(line: str) -> str:
    return line.rsplit(" ", 2)[0]


def family_of_sample(line: str) -> str:
    return re.split(r"[{ ]", line, maxsplit=1)[0]


def promtool_series(tmp_path: Path, om: Path) -> dict[SeriesKey, list[tuple[int, float]]]:
    """Backfill `om` with promtool and dump what the TSDB stores: series -> [(ms, value)]."""
    data = tmp_path / "dump-data"
    create_blocks(om, data)
    (data / "wal").mkdir(exist_ok=True)  # `tsdb dump` insists on a WAL directory
    dumped = subprocess.run([PROMTOOL, "tsdb", "dump", str(data)], capture_output=True, text=True, timeout=60)
    assert dumped.returncode == 0, dumped.stderr
    stored: dict[SeriesKey, list[tuple[int, float]]] = {}
    for line in dumped.stdout.splitlines():
        labels_text, value, ms = line.rsplit(" ", 2)
        labels = tuple(sorted(re.findall(r'([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"', labels_text)))
        stored.setdefault(labels, []).append((int(ms), float(value)))
    return stored


# --- naming and label rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "type_line", "expected"),
    [
        ("zincati_cincinnati_update_checks_total", "counter", ("zincati_cincinnati_update_checks", "counter")),
        (
            "zincati_update_agent_finalization_attempts",
            "counter",
            ("zincati_update_agent_finalization_attempts", "unknown"),
        ),
        ("zincati_identity_os_info", "gauge", ("zincati_identity_os_info", "gauge")),
        ("zincati_cincinnati_graph_nodes_count", "gauge", ("zincati_cincinnati_graph_nodes_count", "gauge")),
        ("legacy", "untyped", ("legacy", "unknown")),
        ("rpc_seconds_sum", "summary", ("rpc_seconds_sum", "unknown")),
    ],
)
def test_om_family_keeps_the_sample_name(sample, type_line, expected):
    name = sample if type_line in ("counter", "gauge", "untyped") else sample.rsplit("_", 1)[0]
    assert om_family(sample, name, type_line) == expected


def test_om_family_without_a_type_line_is_unknown():
    assert om_family("foo_total", None, None) == ("foo_total", "unknown")


def test_colliding_scraped_labels_become_exported():
    scraped = [("instance", "inner"), ("job", "x"), ("exported_job", "y"), ("kind", "a"), ("empty", "")]
    resolved = resolve_labels(scraped, {"instance": "h:1", "job": JOB})
    assert sorted(resolved) == [
        ("exported_exported_job", "x"),
        ("exported_instance", "inner"),
        ("exported_job", "y"),
        ("kind", "a"),
    ]


def test_file_shape_families_contiguous_series_grouped_and_eof(tmp_path):
    exposition = (
        b"# HELP a_total Things.\n# TYPE a_total counter\na_total 1\n"
        b"# HELP b Plain \\\\ help.\n# TYPE b gauge\n"
        b'b{k="v 1"} 2\nb{k="with \\"quote\\""} 3\n'
        b"# TYPE c counter\nc 4\n"
    )
    scrapes = [(1000.0 + 60 * step, target(host), exposition) for step in range(5) for host in range(20)]
    # A tiny buffer and few buckets force many spills and several hosts per bucket.
    text = write(tmp_path / "out.om", scrapes, buckets=3, buffer_chars=1)
    assert text.endswith("\n# EOF\n")
    assert text.count("# EOF") == 1
    assert "# TYPE a counter\n" in text and "# HELP a Things.\n" in text
    assert "# TYPE b gauge\n" in text and "# HELP b Plain \\\\ help.\n" in text
    assert "# TYPE c unknown\n" in text
    lines = sample_lines(text)
    assert len(lines) == 5 * 20 * 4
    families = [family_of_sample(line) for line in lines]
    runs = [name for i, name in enumerate(families) if i == 0 or families[i - 1] != name]
    assert runs == ["a_total", "b", "c"]
    series = [series_of(line) for line in lines]
    series_runs = [s for i, s in enumerate(series) if i == 0 or series[i - 1] != s]
    assert len(series_runs) == len(set(series_runs)) == 20 * 4
    for name in set(series):
        times = [float(line.rsplit(" ", 1)[1]) for line in lines if series_of(line) == name]
        assert times == [1000.0 + 60 * step for step in range(5)]


def test_points_out_of_order_are_sorted_and_duplicates_rejected(tmp_path):
    scrapes = [(t, target(1), b"# TYPE g gauge\ng 1\n") for t in (300.0, 100.0, 200.0)]
    lines = sample_lines(write(tmp_path / "sorted.om", scrapes))
    assert [line.rsplit(" ", 1)[1] for line in lines] == ["100", "200", "300"]
    with pytest.raises(ValueError, match="two samples"):
        write(tmp_path / "dup.om", [(100.0, target(1), b"g 1\n"), (100.0, target(1), b"g 2\n")])


def test_timestamps_are_exact_milliseconds(tmp_path):
    lines = sample_lines(write(tmp_path / "ms.om", [(1735900000.123, target(1), b"g 1\n")]))
    assert lines == ['g{instance="host-0001:9598",job="zincati"} 1 1735900000.123']


def test_promtool_stores_exact_names_and_target_labels(tmp_path):
    start = (int(time.time()) // 60) * 60 - 3600
    exposition = (
        b"# TYPE zincati_cincinnati_update_checks_total counter\nzincati_cincinnati_update_checks_total 5\n"
        b"# TYPE zincati_update_agent_finalization_attempts counter\nzincati_update_agent_finalization_attempts 3\n"
        b"# TYPE zincati_cincinnati_graph_nodes_count gauge\nzincati_cincinnati_graph_nodes_count 18\n"
        b'# TYPE m gauge\nm{instance="inner",kind="a"} 1\n'
    )
    om = tmp_path / "names.om"
    write(om, [(start + 60 * i, target(1), exposition) for i in range(3)])
    stored = promtool_series(tmp_path, om)
    where = (("instance", "host-0001:9598"), ("job", JOB))
    assert stored == {
        (("__name__", "m"), ("exported_instance", "inner"), *where, ("kind", "a")): [
            ((start + 60 * i) * 1000, 1.0) for i in range(3)
        ],
        (("__name__", "zincati_cincinnati_graph_nodes_count"), *where): [
            ((start + 60 * i) * 1000, 18.0) for i in range(3)
        ],
        (("__name__", "zincati_cincinnati_update_checks_total"), *where): [
            ((start + 60 * i) * 1000, 5.0) for i in range(3)
        ],
        (("__name__", "zincati_update_agent_finalization_attempts"), *where): [
            ((start + 60 * i) * 1000, 3.0) for i in range(3)
        ],
    }


# --- a small fleet, backfilled into a real Prometheus ----------------------------------------------


class History:
    """Three hosts over 30 minutes: host 1 updates and reboots into NEXT, host 2 waits for a busy
    reboot lock (finalization attempts keep rising), host 3 has nothing to do."""

    def __init__(self, end: int) -> None:
        self.start = end - 30 * 60
        self.end = end
        self.offer_from = self.start + 5 * 60
        self.reboot_at: int | None = None
        self.scrapes: list[tuple[float, dict[str, str], bytes]] = []
        #: scrape time -> host -> series the live scrape would store ({name, labels...} -> value)
        self.expected: dict[int, dict[SeriesKey, float]] = {}
        identity = ZincatiIdentity(BOOTED)
        self.agents = {
            1: ZincatiAgent(identity),
            2: ZincatiAgent(identity, ZincatiConfig(strategy="fleet_lock")),
            3: ZincatiAgent(identity),
        }
        booted_at = self.start - 600
        self.next_tick = {host: float(booted_at) for host in self.agents}
        for agent in self.agents.values():
            agent.start(booted_at)
        self._run()

    def env(self, host: int, now: float) -> Environment:
        offer = NEXT if host in (1, 2) and now >= self.offer_from else None
        return Environment(offer=offer, pre_reboot_error="failed_lock" if host == 2 else None)

    def _advance(self, now: int) -> None:
        for host, agent in self.agents.items():
            if host == 1 and self.reboot_at is None and agent.state is State.END:
                self.reboot_at = now
                agent.reboot(now)
                self.next_tick[host] = now
            while self.next_tick[host] <= now:
                at = self.next_tick[host]
                delay = agent.tick(at, self.env(host, at))
                self.next_tick[host] = at + delay

    def _run(self) -> None:
        for now in range(self.start, self.end + 1, INTERVAL):
            self._advance(now)
            self.expected[now] = {}
            for host, agent in self.agents.items():
                payload = agent.render()
                self.scrapes.append((now, target(host), payload))
                for line in sample_lines(payload.decode()):
                    series, value = line.rsplit(" ", 1)
                    name, _, labels_text = series.partition("{")
                    labels = re.findall(r'(\w+)="([^"]*)"', labels_text)
                    key = tuple(sorted([("__name__", name), *labels, *target(host).items()]))
                    self.expected[now][key] = float(value)


def query_at(prometheus: Prometheus, promql: str, at: int) -> dict[SeriesKey, float]:
    answer = http_get(f"{prometheus.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql, "time": at}))
    data = json.loads(answer.body)
    assert answer.status == 200 and data["status"] == "success", answer.text
    return {tuple(sorted(sample["metric"].items())): float(sample["value"][1]) for sample in data["data"]["result"]}


def test_backfilled_fleet_matches_what_a_live_scrape_stores(tmp_path):
    history = History(end=(int(time.time()) // 60) * 60 - 120)
    assert history.reboot_at is not None
    assert history.start < history.reboot_at < history.end - 6 * 60, "the reboot must be mid-way"
    assert history.agents[1].identity.os_version == NEXT
    assert history.agents[2].state is State.UPDATE_STAGED
    om = tmp_path / "history.om"
    write(om, history.scrapes, buckets=2)

    directory = tmp_path / "prometheus"
    create_blocks(om, directory / "data")

    before, after = history.reboot_at - INTERVAL, history.end
    with running_prometheus(directory, []) as prometheus:
        # Every series of the history, by name and labels, exactly as the live scrapes would store.
        answer = http_get(
            f"{prometheus.url}/api/v1/series?"
            + urllib.parse.urlencode({"match[]": '{job="zincati"}', "start": history.start, "end": history.end})
        )
        stored = {tuple(sorted(series.items())) for series in json.loads(answer.body)["data"]}
        assert stored == {key for at in history.expected.values() for key in at}
        # At the last scrape (the old os_info series is past the 5-minute lookback): every value.
        assert query_at(prometheus, '{job="zincati"}', after) == history.expected[after]

        host1 = f'instance="{target(1)["instance"]}"'
        os_info = query_at(prometheus, f"zincati_identity_os_info{{{host1}}}", before)
        assert [dict(key)["os_version"] for key in os_info] == [BOOTED]
        assert set(dict(next(iter(os_info)))) >= {"instance", "job", "basearch", "stream", "platform"}
        os_info = query_at(prometheus, f"zincati_identity_os_info{{{host1}}}", after)
        assert [dict(key)["os_version"] for key in os_info] == [NEXT]

        attempts_before = query_at(prometheus, "zincati_update_agent_finalization_attempts", before)
        assert {dict(key)["instance"]: value for key, value in attempts_before.items()} == {
            target(1)["instance"]: 1.0,
            target(2)["instance"]: history.expected[before][
                (("__name__", "zincati_update_agent_finalization_attempts"), *sorted(target(2).items()))
            ],
        }
        attempts_after = query_at(prometheus, "zincati_update_agent_finalization_attempts", after)
        # The rebooted agent's counters are gone (families appear lazily); host 2 keeps trying.
        assert {dict(key)["instance"] for key in attempts_after} == {target(2)["instance"]}
        assert max(attempts_after.values()) > max(attempts_before.values())

        checks = query_at(prometheus, "zincati_cincinnati_update_checks_total", after)
        assert {dict(key)["instance"] for key in checks} == {target(host)["instance"] for host in (1, 2, 3)}
        assert all(dict(key)["job"] == JOB for key in checks)


def test_explicit_timestamps_odd_spacing_and_no_target_labels(tmp_path):
    exposition = b'# TYPE g gauge\ng{a="x } y"}  2   1700000000500\ng 1\nh{a="b"}\t3\n'
    lines = sample_lines(write(tmp_path / "odd.om", [(1700000060.0, {"instance": "", "job": "j"}, exposition)]))
    assert sorted(lines) == [
        'g{a="x } y",job="j"} 2 1700000000.500',
        'g{job="j"} 1 1700000060',
        'h{a="b",job="j"} 3 1700000060',
    ]
    lines = sample_lines(write(tmp_path / "bare.om", [(1700000060.0, {}, b'g 1\nh{a="b"} 2\n')]))
    assert lines == ["g 1 1700000060", 'h{a="b"} 2 1700000060']
