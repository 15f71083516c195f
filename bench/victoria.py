#!/usr/bin/env python3
"""Past one Prometheus: rule evaluation and ingestion on VictoriaMetrics (with vmalert) next to one
Prometheus, for a simulated fleet of 100,000 hosts, compared in one run.

    python3 bench/victoria.py [--hosts 100000] [--minutes 15] [--interval 1m] [--inferred]
                              [--rounds 3] [--evaluations 5] [--scrape-interval 30s]
                              [--ingest-minutes 5] [--targets 100] [--skip-rules] [--skip-ingest]

Needs Debian's `prometheus` (prometheus, promtool) and `victoria-metrics` (victoria-metrics,
vmalert) packages. Every server listens on 127.0.0.1 on a free port, is started and stopped by
PID, and keeps its data in a temporary directory removed at the end.

**1. Rule evaluation on identical data.** The fleet_lock rollout of bench/rules.py (mid-way, every
phase has hosts), every host reporting its own phase by default (`os_update` selectors, the
bundle generated with `infer_phases = false`, as docs/benchmarks.md recommends at this scale;
`--inferred` for Zincati's socket alone), is written once as `--minutes` of OpenMetrics history,
one scrape per `--interval`. The same file goes to both stores:
- Prometheus: `promtool tsdb create-blocks-from openmetrics`, as bench/rules.py. Prometheus
  evaluates recording.yml and alerts.yml every 15 s; it is started once the history's end has
  passed (its head then starts after the blocks), with the last samples seconds old.
- VictoriaMetrics: streamed to /api/v1/import/prometheus. VictoriaMetrics 1.79's parser skips
  `#` lines (`# HELP`, `# TYPE`, `# EOF`) and reads a timestamp below 2^31 as OpenMetrics seconds
  (lib/protoparser/prometheus/parser.go), multiplying a float: 1700000000.123 can land a
  millisecond early. So every timestamp is rewritten as integer milliseconds, and the whole
  history shifted later (imported after Prometheus' turn, it would have aged by it), so that
  vmalert starts with the newest samples as old as Prometheus had them. Both then read the same
  data at the same ages (the backfill ages from its end on, as in bench/rules.py: the 5-minute
  rate rules see fewer samples at each reading), one after the other, not at once: 2 cores.
  vmalert evaluates recording.yml and prometheus/vmalert/alerts.yml (vmalert 1.79 refuses
  `keep_firing_for`) with `-evaluationInterval=15s` against VictoriaMetrics, writing what it
  records back there. VictoriaMetrics runs as tests/support/victoria.py runs it
  (`-search.latencyOffset=0s -search.disableCache`: queries see the newest samples, and no
  result cache stands in for an evaluation, as Prometheus has none). vmalert needs a notifier
  for alerting rules: a sink in this process answers its posts; Prometheus has no Alertmanager.

Readings, as bench/rules.py: after `--evaluations` rounds (and two rounds of the minute groups),
`--rounds` readings of /api/v1/rules a minute apart, the median and the worst per group and
rule; the series each recording rule leaves (`count()` on each store) and each alert's alerts by
state, side by side: a check that vmalert evaluated on the same data, and where the two
dialects (PromQL, MetricsQL) or the two rulers answer differently. Where they differ, the
rule's expression is run once more on VictoriaMetrics with vmalert's `step` (5m, its
`-datasource.queryStep`) and with the evaluation interval (what a Prometheus subquery
defaults to).

vmalert 1.79 times its rules differently from Prometheus: an alerting rule's `evaluationTime`
is its own query, but a recording rule's is `time.Since(ts)` with ts its group's evaluation
timestamp (app/vmalert/recording.go), which the group's ticker passes about one first
evaluation later than the timestamp: a cumulative figure plus an offset. So a group's time in a
reading is its mean iteration since the previous reading from vmalert's own
`vmalert_iteration_duration_seconds` sum and count (one iteration for the minute groups); a
recording rule's own time is its figure less the recording rule's before it (rules of a group
run one at a time), and the group's first recording rule gets what the group's time leaves.
Prometheus' figures are its last evaluation of each group and rule. The summary's own median
and worst over its 5-minute window are printed as a check.
Memory: the resident set of Prometheus, and of VictoriaMetrics and vmalert, at the last reading;
CPU: what each process used between the first and last readings.

**2. Ingestion, live.** The same fleet from the history's end on, rendered ahead for
`--ingest-minutes` of scrapes every `--scrape-interval` (30 s, the bundle's `scrape_interval`) by
bench/scrape_bodies.py: each host's lines with its own `instance` label and its `up`, packed into
`--targets` gzipped bodies scraped with `honor_labels: true`, served by a separate process (one
listener per target), so the simulator's CPU is not in the measurement. Then, one after the
other on the same rounds:
- (a) one Prometheus scraping every target and storing (no rules);
- (b) two Prometheus shards in agent mode (`--enable-feature=agent`), splitting the targets by
  `hashmod` of `__address__` (the bundle's own relabelling, bundle/scale_out.py),
  remote-writing (default queue settings) into VictoriaMetrics' /api/v1/write.
Scrape timeout 10 s, as the bundle's shards.
Reported: samples/s ingested in the steady part (after the first interval, where every series is
new; Prometheus `prometheus_tsdb_head_samples_appended_total`, an agent
`prometheus_agent_samples_appended_total`, VictoriaMetrics `vm_rows_inserted_total`) against the
rate offered, CPU seconds per million samples of each process (/proc/PID/stat) in the first
interval and in the steady part, peak (VmHWM) and end RSS, active series (Prometheus' head,
the agents', VictoriaMetrics' series of the current hour), the remote-write queues' health, and
disk: VictoriaMetrics' data and index after /internal/force_flush; Prometheus holds the
minutes in its head (memory and WAL), so its comparable figure is the block a TSDB snapshot
(admin API, head included) writes of them: both are compressed, indexed, on disk.

Every figure is the servers' own or read from /proc, not timed by this script; the machine may be
shared, so read the figures of one run next to each other, not against another run.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import http.client
import http.server
import json
import math
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procs import ROOT, Server, child_env, cpu_seconds, free_port, rss_mb, start_server, stop

sys.path.insert(0, str(ROOT))

from backfilled import add_reading_options, backfill, openmetrics_path, preamble, scenario, start_prometheus
from scrape_bodies import render_rounds

from local_exporter.bundle import scale_out
from local_exporter.bundle.config import BundleConfig
from local_exporter.bundle.generate import VMALERT_ALERTS_PATH, write
from local_exporter.common.durations import parse_duration

EVALUATION_INTERVAL = 15
BINARIES = {
    "prometheus": "Debian's prometheus package",
    "promtool": "Debian's prometheus package",
    "victoria-metrics": "Debian's victoria-metrics package",
    "vmalert": "Debian's victoria-metrics package",
}
#: The ingestion job's name; the bodies carry `job="zincati"` themselves (honor_labels).
BODIES_JOB = "fleet-bodies"
#: VictoriaMetrics' series seen this hour: its measure of active series.
HOUR_METRIC_IDS = 'type="storage/hour_metric_ids"'


# --- processes ------------------------------------------------------------------------------


#: Queries read what was just written, not a cache: as in the tests (tests/support/victoria.py).
FRESH = ("-search.latencyOffset=0s", "-search.disableCache")


def start_victoria_metrics(directory: Path, flags: tuple[str, ...] = FRESH) -> Server:
    """VictoriaMetrics with the bundle's flags (bundle/scale_out.py) and `flags`."""
    port = free_port()
    listen, data = f"127.0.0.1:{port}", str(directory / "data")
    args = [
        "victoria-metrics",
        *scale_out.victoria_metrics_flags(listen=listen, data=data, retention="1d"),
        *flags,
        "-loggerLevel=WARN",
    ]
    return start_server("victoria-metrics", args, directory, f"http://{listen}", "/health")


def start_vmalert(directory: Path, store: str, rule_files: list[Path], notifier: str) -> Server:
    """vmalert with the bundle's flags, every EVALUATION_INTERVAL, naming no cluster."""
    port = free_port()
    args = [
        "vmalert",
        *scale_out.vmalert_flags(
            BundleConfig(),
            rules=[str(path) for path in rule_files],
            store=store,
            notifier=notifier,
            listen=f"127.0.0.1:{port}",
            cluster=None,
            evaluation_interval=f"{EVALUATION_INTERVAL}s",
        ),
        "-loggerLevel=WARN",
    ]
    return start_server("vmalert", args, directory, f"http://127.0.0.1:{port}", "/health")


def start_prometheus_server(directory: Path, config: dict[str, Any], flags: tuple[str, ...] = ()) -> Server:
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = start_prometheus(directory, port, config, flags=flags)
    return Server("prometheus", process, f"http://127.0.0.1:{port}", directory / "prometheus.log")


def start_agent(directory: Path, name: str, config: dict[str, Any]) -> Server:
    """Prometheus in agent mode (no local TSDB, no queries: a WAL and remote write)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "prometheus.yml"
    path.write_text(json.dumps(config))
    port = free_port()
    args = [
        "prometheus",
        *scale_out.AGENT_FLAGS,
        f"--config.file={path}",
        f"--storage.agent.path={directory / 'agent'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    return start_server(name, args, directory, f"http://127.0.0.1:{port}", "/-/ready")


@contextmanager
def notifier_sink() -> Iterator[str]:
    """An HTTP endpoint answering every POST with 200: where vmalert sends its alerts."""

    class Sink(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --- readings -------------------------------------------------------------------------------


def get_json(url: str, timeout: float = 60) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def post(url: str, timeout: float = 600) -> Any:
    request = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
    return json.loads(body) if body else None


def rules_api(url: str) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = get_json(f"{url}/api/v1/rules")["data"]["groups"]
    return groups


def series_count(url: str, name: str) -> int:
    query = urllib.parse.urlencode({"query": f"count({name})"})
    result = get_json(f"{url}/api/v1/query?{query}", timeout=120)["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


@dataclass
class Metrics:
    """A /metrics page: (name, labels text, value) per series."""

    rows: list[tuple[str, str, float]] = field(default_factory=list)

    def total(self, name: str, *having: str) -> float:
        """The sum of `name` over its series whose labels contain every text in `having`."""
        return sum(v for n, labels, v in self.rows if n == name and all(h in labels for h in having))

    def has(self, name: str) -> bool:
        return any(n == name for n, _, _ in self.rows)


def scrape(url: str) -> Metrics:
    with urllib.request.urlopen(f"{url}/metrics", timeout=60) as response:
        text = response.read().decode()
    rows = []
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        series, _, value = line.rpartition(" ")
        brace = series.find("{")
        name, labels = (series, "") if brace < 0 else (series[:brace], series[brace:])
        with suppress(ValueError):
            rows.append((name, labels, float(value)))
    return Metrics(rows)


def hwm_mb(pid: int) -> float:
    """Peak resident set so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def du(path: Path) -> int:
    """Bytes of the files under `path`."""
    if not path.exists():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def mb(size: float) -> str:
    return f"{size / 1e6:,.1f}"


# --- 1. rule evaluation ---------------------------------------------------------------------


def import_history(store: str, om: Path, shift_ms: int) -> tuple[int, float]:
    """Stream the OpenMetrics history into VictoriaMetrics with every timestamp as integer
    milliseconds, `shift_ms` later; the samples sent and the seconds it took."""
    began = time.perf_counter()
    address = urllib.parse.urlsplit(store)
    stamps: dict[bytes, bytes] = {}
    sent = 0

    def send(batch: bytes) -> None:
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=600)
        try:
            connection.request("POST", "/api/v1/import/prometheus", body=batch)
            response = connection.getresponse()
            text = response.read()
            if response.status // 100 != 2:
                raise RuntimeError(f"import answered {response.status}: {text[:500]!r}")
        finally:
            connection.close()

    with om.open("rb") as lines, concurrent.futures.ThreadPoolExecutor(1) as poster:
        pending: concurrent.futures.Future[None] | None = None
        while True:
            chunk = lines.readlines(32 << 20)
            if not chunk:
                break
            out = []
            for line in chunk:
                if line[0] == 35:  # "#": HELP, TYPE, EOF
                    continue
                head, _, stamp = line.rpartition(b" ")
                ms = stamps.get(stamp)
                if ms is None:
                    whole, _, fraction = stamp.strip().partition(b".")
                    value = int(whole) * 1000 + (int((fraction + b"000")[:3]) if fraction else 0)
                    ms = stamps[stamp] = b" %d\n" % (value + shift_ms)
                out.append(head + ms)
            sent += len(out)
            if pending is not None:
                pending.result()
            pending = poster.submit(send, b"".join(out))
        if pending is not None:
            pending.result()
    return sent, time.perf_counter() - began


@dataclass
class Side:
    """One store's rule readings: per group, per rule, times (s) and what each left."""

    name: str
    group_times: dict[str, list[float]]
    rule_times: dict[tuple[str, int], list[float]]
    rule_names: dict[str, list[str]]
    out: dict[tuple[str, int], int]
    health: dict[tuple[str, int], str]
    rss: dict[str, float]
    cpu: dict[str, float]
    window_s: float
    exprs: dict[tuple[str, int], str] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)


def rule_label(rule: dict[str, Any]) -> str:
    name = str(rule["name"])
    if rule["type"] == "recording" and rule.get("labels"):
        name += "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(rule["labels"].items())) + "}"
    return name


def iteration_totals(url: str) -> dict[str, tuple[float, float]]:
    """vmalert's `vmalert_iteration_duration_seconds` sum and count per group."""
    totals: dict[str, list[float]] = {}
    for name, labels, value in scrape(url).rows:
        group = re.search(r'group="([^"]*)"', labels)
        if group and name in ("vmalert_iteration_duration_seconds_sum", "vmalert_iteration_duration_seconds_count"):
            totals.setdefault(group.group(1), [0.0, 0.0])[name.endswith("_count")] += value
    return {group: (pair[0], pair[1]) for group, pair in totals.items()}


def vmalert_rule_times(rules: list[dict[str, Any]], group_time: float) -> list[float]:
    """Each rule's own time in one reading of a vmalert 1.79 group. An alerting rule's
    `evaluationTime` is its own; a recording rule's runs from the group's evaluation timestamp,
    which the ticker passed earlier by about the group's first evaluation: its own is the
    difference from the recording rule before it (same `lastEvaluation`); the group's first
    recording rule gets what the group's time leaves (`group_time`, from vmalert's iteration
    summary); NaN where the reading fell within an evaluation."""
    own: list[float | None] = []
    for i, rule in enumerate(rules):
        if rule["type"] != "recording":
            own.append(rule["evaluationTime"])
        elif i and rules[i - 1]["type"] == "recording" and rules[i - 1]["lastEvaluation"] == rule["lastEvaluation"]:
            own.append(rule["evaluationTime"] - rules[i - 1]["evaluationTime"])
        else:
            own.append(None)
    unknown = [i for i, t in enumerate(own) if t is None]
    if len(unknown) == 1 and not math.isnan(group_time):
        own[unknown[0]] = max(0.0, group_time - sum(t for t in own if t is not None))
    return [math.nan if t is None else t for t in own]


def alerts_out(rule: dict[str, Any]) -> str:
    alerts = rule.get("alerts") or []
    states: dict[str, int] = {}
    for alert in alerts:
        states[alert.get("state", "?")] = states.get(alert.get("state", "?"), 0) + 1
    return f"{len(alerts)}" + (f" ({', '.join(f'{n} {s}' for s, n in sorted(states.items()))})" if alerts else "")


def read_side(
    name: str, api: str, store: str, processes: list[Server], rounds: int, wait: float, vmalert: bool
) -> Side:
    """Wait `wait` s, then `rounds` readings of `api`'s /api/v1/rules a minute apart; the series
    each recording rule left counted on `store`. For vmalert, a group's time in a reading is its
    mean iteration since the reading before (vmalert_iteration_duration_seconds; a minute group
    runs once a minute), rules' times as `vmalert_rule_times` makes them."""
    time.sleep(wait - 61 if vmalert else wait)
    previous = iteration_totals(api) if vmalert else {}
    if vmalert:
        time.sleep(61)
    cpu0 = {p.name: cpu_seconds(p.pid) for p in processes}
    began = time.monotonic()
    readings = []
    for number in range(rounds):
        if number:
            time.sleep(61)
        readings.append((rules_api(api), iteration_totals(api) if vmalert else {}))
    window = time.monotonic() - began
    cpu = {p.name: cpu_seconds(p.pid) - cpu0[p.name] for p in processes}
    rss = {p.name: rss_mb(p.pid) for p in processes}
    group_times: dict[str, list[float]] = {}
    rule_times: dict[tuple[str, int], list[float]] = {}
    for reading, totals in readings:
        for group in reading:
            rules = group["rules"]
            if vmalert:
                (s1, c1), (s0, c0) = totals.get(group["name"], (0, 0)), previous.get(group["name"], (0, 0))
                total = (s1 - s0) / (c1 - c0) if c1 > c0 else math.nan
                times = vmalert_rule_times(rules, total)
            else:
                total = group["evaluationTime"]
                times = [rule["evaluationTime"] for rule in rules]
            for i, t in enumerate(times):
                rule_times.setdefault((group["name"], i), []).append(t)
            group_times.setdefault(group["name"], []).append(total)
        previous = totals
    last = readings[-1][0]
    out = {}
    health = {}
    names = {}
    exprs = {}
    for group in last:
        names[group["name"]] = [rule_label(r) for r in group["rules"]]
        for i, rule in enumerate(group["rules"]):
            key = (group["name"], i)
            exprs[key] = rule["query"]
            if rule["type"] == "recording":
                out[key] = str(series_count(store, rule_label(rule)))
            else:
                out[key] = alerts_out(rule)
            if rule.get("health") != "ok":
                health[key] = f"{rule.get('health')}: {rule.get('lastError', '')}"[:200]
    return Side(name, group_times, rule_times, names, out, health, rss, cpu, window, exprs=exprs)


def vmalert_iterations(url: str) -> list[str]:
    """Each group's median and worst iteration over the last 5 minutes, as vmalert reports them."""
    quantiles: dict[str, dict[str, float]] = {}
    for name, labels, value in scrape(url).rows:
        group = re.search(r'group="([^"]*)"', labels)
        quantile = re.search(r'quantile="([^"]*)"', labels)
        if name == "vmalert_iteration_duration_seconds" and group and quantile:
            quantiles.setdefault(group.group(1), {})[quantile.group(1)] = value
    return [
        f"{group} {q.get('0.5', math.nan) * 1000:.1f} / {q.get('1', math.nan) * 1000:.1f} ms"
        for group, q in sorted(quantiles.items())
    ]


def instant_count(url: str, expr: str, step: str) -> int:
    query = urllib.parse.urlencode({"query": expr, "step": step})
    return len(get_json(f"{url}/api/v1/query?{query}", timeout=120)["data"]["result"])


def step_checks(store: str, prom: Side, vm: Side) -> list[str]:
    """Where the two sides' outputs differ: the rule's expression on VictoriaMetrics now, with
    `step` as vmalert 1.79 sends it (`-datasource.queryStep`, 5m) and as the evaluation
    interval (Prometheus' default subquery resolution): series returned."""
    lines = []
    for key, expected in prom.out.items():
        if key not in vm.out or vm.out[key] == expected:
            continue
        expr = vm.exprs[key]
        counts = {step: instant_count(store, expr, step) for step in ("5m", f"{EVALUATION_INTERVAL}s")}
        name = vm.rule_names[key[0]][key[1]]
        lines.append(
            f"{key[0]} / {name}: its expression on VictoriaMetrics now returns {counts['5m']} series with step=5m "
            f"(what vmalert sends), {counts[f'{EVALUATION_INTERVAL}s']} with step={EVALUATION_INTERVAL}s."
        )
    return lines


def spread(times: list[float]) -> tuple[float, float]:
    known = [t for t in times if not math.isnan(t)]
    if not known:
        return math.nan, math.nan
    return statistics.median(known) * 1000, max(known) * 1000


def ms(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.1f}"


def rules_case(args: argparse.Namespace, directory: Path) -> list[str]:
    hosts, minutes, interval, reported = args.hosts, args.minutes, args.interval_s, not args.inferred
    # As bench/rules.py: generation and promtool at ~50 k samples/s, slower with the judging step.
    lead = 30 + hosts * (minutes * 60 / interval + 1) * 16 / 50_000
    if reported:
        lead *= 1.5
    data = directory / "prometheus" / "data"
    data.parent.mkdir(parents=True)
    filled = backfill(hosts, minutes, interval, time.time() + lead, data, reported=reported, keep_openmetrics=True)
    om = openmetrics_path(data)
    history = filled.history
    late = time.time() - history.end
    if late > 120:
        return [f"{hosts} hosts: loading ended {late:.0f} s after the history did: lower the rate estimate"]
    time.sleep(max(0.0, history.end - time.time()) + 2)
    write(directory / "bundle", BundleConfig(infer_phases=not reported))
    rules = directory / "bundle" / "prometheus" / "rules"
    recording, alerts = rules / "recording.yml", rules / "alerts.yml"
    vmalert_alerts = directory / "bundle" / VMALERT_ALERTS_PATH
    wait = max(EVALUATION_INTERVAL * args.evaluations, 2 * 60 + 5)

    config = {"global": {"evaluation_interval": f"{EVALUATION_INTERVAL}s"}, "rule_files": [str(recording), str(alerts)]}
    prometheus = start_prometheus_server(data.parent, config)
    prometheus_started = time.time()
    age_at_start = prometheus_started - history.end
    try:
        if series_count(prometheus.url, "zincati_identity_os_info") == 0:
            return [f"the backfilled fleet is not visible at now: {prometheus.log.read_text()[-800:]}"]
        prom = read_side("Prometheus", prometheus.url, prometheus.url, [prometheus], args.rounds, wait, vmalert=False)
    finally:
        stop(prometheus.process)
    shutil.rmtree(data, ignore_errors=True)

    victoria = start_victoria_metrics(directory / "victoria")
    try:
        # Import at ~150 k samples/s or faster (measured ~300 k/s here): the history's end is
        # laid where it will be once the import is done; then wait for it as for Prometheus.
        estimate = 15 + history.stats.samples / 150_000
        shift = time.time() + estimate + age_at_start - history.end
        before = scrape(victoria.url)
        sent, import_s = import_history(victoria.url, om, round(shift * 1000))
        om.unlink()
        urllib.request.urlopen(f"{victoria.url}/internal/force_flush", timeout=600).read()
        after = scrape(victoria.url)
        inserted = after.total("vm_rows_inserted_total", 'type="prometheus"') - before.total(
            "vm_rows_inserted_total", 'type="prometheus"'
        )
        invalid = after.total("vm_rows_invalid_total")
        shifted_end = history.end + shift
        late_vm = time.time() - (shifted_end - age_at_start)
        time.sleep(max(0.0, shifted_end + age_at_start - time.time()))
        with notifier_sink() as sink:
            vmalert = start_vmalert(directory / "vmalert", victoria.url, [recording, vmalert_alerts], sink)
            try:
                vm = read_side(
                    "vmalert", vmalert.url, victoria.url, [victoria, vmalert], args.rounds, wait, vmalert=True
                )
                vm.extra = vmalert_iterations(vmalert.url)
                steps = step_checks(victoria.url, prom, vm)
            finally:
                stop(vmalert.process)
    finally:
        stop(victoria.process)
    shutil.rmtree(directory / "victoria", ignore_errors=True)

    lines = [
        f"### Rule evaluation: {hosts:,} hosts{', every host reporting' if reported else ', phases inferred'}, "
        f"{minutes:g} minutes of history at {args.interval}",
        "",
        f"History: {filled.summary()}. VictoriaMetrics import: {sent:,} samples in {import_s:.0f} s "
        f"({sent / import_s:,.0f}/s), {inserted:,.0f} rows inserted, {invalid:,.0f} invalid"
        + (f"; {late_vm:.0f} s later than Prometheus relative to the history's end" if late_vm > 1 else "")
        + ".",
        f"Both started {age_at_start:.0f} s after the history's end; readings from "
        f"{wait:.0f} s after the start, {args.rounds} a minute apart; evaluation every {EVALUATION_INTERVAL} s "
        "(the groups' own intervals where they set one).",
        "",
        "| group / rule | Prometheus median ms | worst ms | vmalert median ms | worst ms | "
        "vmalert / Prometheus | series out, Prometheus | series out, VictoriaMetrics |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    differing = []
    groups = list(prom.rule_names)
    groups += [g for g in vm.rule_names if g not in prom.rule_names]
    totals = [0.0, 0.0]
    for group in groups:
        p_med, p_worst = spread(prom.group_times.get(group, []))
        v_med, v_worst = spread(vm.group_times.get(group, []))
        totals[0] += 0 if math.isnan(p_med) else p_med
        totals[1] += 0 if math.isnan(v_med) else v_med
        ratio = f"{v_med / p_med:.2f}" if p_med and not math.isnan(p_med + v_med) else ""
        lines.append(
            f"| **{group}** | **{ms(p_med)}** | **{ms(p_worst)}** | **{ms(v_med)}** | **{ms(v_worst)}** | {ratio} | | |"
        )
        names = prom.rule_names.get(group) or vm.rule_names.get(group, [])
        for i, name in enumerate(names):
            key = (group, i)
            p = spread(prom.rule_times.get(key, []))
            v = spread(vm.rule_times.get(key, []))
            p_out, v_out = prom.out.get(key, "–"), vm.out.get(key, "–")
            mark = "" if p_out == v_out else " **≠**"
            if mark:
                differing.append(f"{group} / {name}: Prometheus {p_out}, VictoriaMetrics {v_out}")
            health = "".join(f" ({side.name} {side.health[key]})" for side in (prom, vm) if key in side.health)
            lines.append(
                f"| {name}{health} | {ms(p[0])} | {ms(p[1])} | {ms(v[0])} | {ms(v[1])} | | {p_out} | {v_out}{mark} |"
            )
    lines += [
        "",
        f"Sum of the groups' medians: Prometheus {totals[0]:.0f} ms, vmalert {totals[1]:.0f} ms "
        f"({totals[1] / totals[0]:.2f}x)."
        if totals[0]
        else "",
        f"Memory at the last reading: Prometheus {prom.rss['prometheus']:.0f} MB; VictoriaMetrics "
        f"{vm.rss['victoria-metrics']:.0f} MB + vmalert {vm.rss['vmalert']:.0f} MB = "
        f"{vm.rss['victoria-metrics'] + vm.rss['vmalert']:.0f} MB.",
        f"CPU between the first and last readings: Prometheus {prom.cpu['prometheus']:.1f} s in "
        f"{prom.window_s:.0f} s ({prom.cpu['prometheus'] / prom.window_s:.2f} cores); VictoriaMetrics "
        f"{vm.cpu['victoria-metrics']:.1f} s + vmalert {vm.cpu['vmalert']:.1f} s in {vm.window_s:.0f} s "
        f"({(vm.cpu['victoria-metrics'] + vm.cpu['vmalert']) / vm.window_s:.2f} cores).",
        "vmalert's own iteration durations, median / worst (vmalert_iteration_duration_seconds, last 5 minutes): "
        + "; ".join(vm.extra)
        + ".",
        "Series out that differ: " + ("; ".join(differing) if differing else "none") + ".",
        *steps,
    ]
    return lines


# --- 2. ingestion ---------------------------------------------------------------------------


def hashmod(value: str, modulus: int) -> int:
    """Prometheus' `hashmod` relabelling: the low 8 bytes of the MD5, big-endian, mod `modulus`."""
    return int.from_bytes(hashlib.md5(value.encode()).digest()[8:], "big") % modulus


@dataclass
class Run:
    """What one ingestion run measured, per process."""

    columns: list[str]
    rows: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def row(self, label: str, values: list[str]) -> None:
        self.rows[label] = values

    def table(self) -> list[str]:
        lines = ["| | " + " | ".join(self.columns) + " |", "|---|" + "---:|" * len(self.columns)]
        lines += [f"| {label} | " + " | ".join(values) + " |" for label, values in self.rows.items()]
        return lines


@contextmanager
def serving(bodies: Path, directory: Path) -> Iterator[list[int]]:
    """The file server in its own process; the ports of its targets."""
    ports_file = directory / "ports.json"
    ports_file.unlink(missing_ok=True)
    log = (directory / "bodies.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "scrape_bodies.py"), "serve", str(bodies), str(ports_file)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=child_env(),
    )
    try:
        deadline = time.monotonic() + 60
        while not ports_file.exists() or not ports_file.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the body server did not start: {(directory / 'bodies.log').read_text()[-800:]}")
            time.sleep(0.2)
        yield json.loads(ports_file.read_text())
    finally:
        stop(process)
        log.close()


def scrape_job(ports: list[int], interval: float) -> dict[str, Any]:
    return {
        "job_name": BODIES_JOB,
        "honor_labels": True,
        "scrape_interval": f"{interval:g}s",
        "scrape_timeout": f"{min(interval, 10):g}s",
        "static_configs": [{"targets": [f"127.0.0.1:{port}" for port in ports]}],
    }


@dataclass
class Watch:
    """CPU seconds and counters at the start, after the first interval, at the end."""

    servers: list[Server]
    counters: dict[str, tuple[str, tuple[str, ...]]]
    marks: list[tuple[float, dict[str, float], dict[str, Metrics]]] = field(default_factory=list)

    def mark(self) -> None:
        self.marks.append(
            (
                time.monotonic(),
                {s.name: cpu_seconds(s.pid) for s in self.servers},
                {s.name: scrape(s.url) for s in self.servers},
            )
        )

    def count(self, mark: int, name: str) -> float:
        metric, having = self.counters[name]
        return self.marks[mark][2][name].total(metric, *having)


def watch_run(
    servers: list[Server], counters: dict[str, tuple[str, tuple[str, ...]]], args: argparse.Namespace
) -> Watch:
    """Marks at the start, after the first interval (+ 15 s for remote write), and at the end."""
    watch = Watch(servers, counters)
    watch.mark()
    begun = watch.marks[0][0]
    time.sleep(args.scrape_interval_s + 15)
    watch.mark()
    time.sleep(max(0.0, begun + args.ingest_minutes * 60 - time.monotonic()))
    watch.mark()
    return watch


def ingestion_figures(run: Run, watch: Watch, names: list[str], samples_of: dict[str, str]) -> dict[str, float]:
    """Rows shared by both runs; `samples_of` names, per process, whose sample counter its CPU is
    divided by. Returns the steady samples/s per process."""
    (_, cpu0, _), (t1, cpu1, _), (t2, cpu2, _) = watch.marks
    rates = {}
    first, steady, cores, rate, peak, end = [], [], [], [], [], []
    for name in names:
        key = samples_of[name]
        s0, s1, s2 = (watch.count(i, key) for i in range(3))
        rates[name] = (s2 - s1) / (t2 - t1)
        rate.append(f"{rates[name]:,.0f}" if key == name else "")
        first.append(f"{(cpu1[name] - cpu0[name]) / max(s1 - s0, 1) * 1e6:.2f}")
        steady.append(f"{(cpu2[name] - cpu1[name]) / max(s2 - s1, 1) * 1e6:.2f}")
        cores.append(f"{(cpu2[name] - cpu1[name]) / (t2 - t1):.2f}")
        server = next(s for s in watch.servers if s.name == name)
        peak.append(f"{hwm_mb(server.pid):,.0f}")
        end.append(f"{rss_mb(server.pid):,.0f}")
    run.row("samples/s ingested, steady", rate)
    run.row("CPU s per million samples, first interval (new series)", first)
    run.row("CPU s per million samples, steady", steady)
    run.row("cores used, steady", cores)
    run.row("RSS peak MB (VmHWM)", peak)
    run.row("RSS at the end MB", end)
    return rates


def ingest_single(args: argparse.Namespace, bodies: Path, directory: Path, offered: float) -> Run:
    run = Run(["one Prometheus"])
    with serving(bodies, directory) as ports:
        config = {
            "global": {"scrape_interval": f"{args.scrape_interval_s:g}s"},
            "scrape_configs": [scrape_job(ports, args.scrape_interval_s)],
        }
        server = start_prometheus_server(directory / "single", config, flags=("--web.enable-admin-api",))
        try:
            watch = watch_run([server], {"prometheus": ("prometheus_tsdb_head_samples_appended_total", ())}, args)
            rates = ingestion_figures(run, watch, ["prometheus"], {"prometheus": "prometheus"})
            last = watch.marks[2][2]["prometheus"]
            samples = last.total("prometheus_tsdb_head_samples_appended_total")
            run.row("active series", [f"{last.total('prometheus_tsdb_head_series'):,.0f}"])
            wal = du(directory / "single" / "data" / "wal")
            began = time.monotonic()
            name = post(f"{server.url}/api/v1/admin/tsdb/snapshot")["data"]["name"]
            snapshot_s = time.monotonic() - began
            block = du(directory / "single" / "data" / "snapshots" / name)
            run.row("samples stored", [f"{samples:,.0f}"])
            run.row(
                "disk bytes per sample",
                [f"{block / samples:.2f} (snapshot block, {mb(block)} MB; WAL {wal / samples:.2f})"],
            )
            run.row("disk bytes per series", [f"{block / max(last.total('prometheus_tsdb_head_series'), 1):.1f}"])
            run.notes.append(
                f"One Prometheus: {rates['prometheus'] / offered * 100:.1f} % of the offered rate in the steady part; "
                f"the snapshot of its head took {snapshot_s:.0f} s; scrape failures "
                f"{last.total('prometheus_target_scrapes_exceeded_sample_limit_total') + last.total('prometheus_target_scrape_pool_exceeded_target_limit_total'):.0f} over limits."
            )
        finally:
            stop(server.process)
    shutil.rmtree(directory / "single", ignore_errors=True)
    return run


def ingest_sharded(args: argparse.Namespace, bodies: Path, directory: Path, offered: float) -> Run:
    shards = 2
    with serving(bodies, directory) as ports:
        split = [sum(1 for p in ports if hashmod(f"127.0.0.1:{p}", shards) == n) for n in range(shards)]
        victoria = start_victoria_metrics(directory / "victoria")
        agents: list[Server] = []
        try:
            write_url = f"{victoria.url}/api/v1/write"
            for n in range(shards):
                job = scrape_job(ports, args.scrape_interval_s)
                job["relabel_configs"] = scale_out.shard_relabeling(n, shards)
                config = {
                    "global": {"scrape_interval": f"{args.scrape_interval_s:g}s"},
                    "scrape_configs": [job],
                    "remote_write": [{"url": write_url}],
                }
                agents.append(start_agent(directory / f"shard-{n}", f"shard {n}", config))
            names = [a.name for a in agents] + [victoria.name]
            counters = {a.name: ("prometheus_agent_samples_appended_total", ()) for a in agents}
            counters[victoria.name] = ("vm_rows_inserted_total", ('type="promremotewrite"',))
            run = Run([f"shard {n} (agent, {split[n]} targets)" for n in range(shards)] + ["VictoriaMetrics"])
            watch = watch_run([*agents, victoria], counters, args)
            rates = ingestion_figures(run, watch, names, {n: n for n in names})
            ends = watch.marks[2][2]
            run.row(
                "active series",
                [f"{ends[a.name].total('prometheus_agent_active_series'):,.0f}" for a in agents]
                + [f"{ends[victoria.name].total('vm_cache_entries', HOUR_METRIC_IDS):,.0f} (this hour)"],
            )
            health = []
            for a in agents:
                m = ends[a.name]
                lag = m.total("prometheus_remote_storage_highest_timestamp_in_seconds") - m.total(
                    "prometheus_remote_storage_queue_highest_sent_timestamp_seconds"
                )
                health.append(
                    f"sent {m.total('prometheus_remote_storage_samples_total'):,.0f}, "
                    f"failed {m.total('prometheus_remote_storage_samples_failed_total'):,.0f}, "
                    f"retried {m.total('prometheus_remote_storage_samples_retried_total'):,.0f}, "
                    f"dropped {m.total('prometheus_remote_storage_samples_dropped_total'):,.0f}, "
                    f"pending {m.total('prometheus_remote_storage_samples_pending'):,.0f}, "
                    f"shards {m.total('prometheus_remote_storage_shards'):.0f}, behind {lag:.0f} s"
                )
            run.row("remote write at the end", [*health, ""])
            # Stop the shards (they send what they hold), then flush VictoriaMetrics to disk.
            for a in agents:
                stop(a.process)
            urllib.request.urlopen(f"{victoria.url}/internal/force_flush", timeout=600).read()
            time.sleep(2)
            final = scrape(victoria.url)
            rows = final.total("vm_rows", 'type="storage/big"') + final.total("vm_rows", 'type="storage/small"')
            stored = directory / "victoria" / "data"
            data_bytes, index_bytes = du(stored / "data"), du(stored / "indexdb")
            run.row("samples stored", ["", "", f"{rows:,.0f}"])
            run.row(
                "disk bytes per sample",
                [
                    f"(WAL {du(directory / f'shard-{n}' / 'agent') / max(watch.count(2, agents[n].name), 1):.2f})"
                    for n in range(shards)
                ]
                + [
                    f"{(data_bytes + index_bytes) / max(rows, 1):.2f} (data {mb(data_bytes)} MB, index {mb(index_bytes)} MB)"
                ],
            )
            hour_series = ends[victoria.name].total("vm_cache_entries", HOUR_METRIC_IDS)
            run.row("disk bytes per series", ["", "", f"{(data_bytes + index_bytes) / max(hour_series, 1):.1f}"])
            appended = sum(rates[a.name] for a in agents)
            cpu_steady = sum(watch.marks[2][1][n] - watch.marks[1][1][n] for n in names)
            samples_steady = watch.count(2, victoria.name) - watch.count(1, victoria.name)
            run.notes.append(
                f"Shards + VictoriaMetrics: the shards appended {appended:,.0f} samples/s "
                f"({appended / offered * 100:.1f} % of the offered rate), VictoriaMetrics inserted "
                f"{rates[victoria.name]:,.0f}/s; together {cpu_steady / max(samples_steady, 1) * 1e6:.2f} CPU s per "
                "million samples in the steady part."
            )
        finally:
            for a in agents:
                stop(a.process)
            stop(victoria.process)
    shutil.rmtree(directory / "victoria", ignore_errors=True)
    for n in range(shards):
        shutil.rmtree(directory / f"shard-{n}", ignore_errors=True)
    return run


def ingest_case(args: argparse.Namespace, directory: Path) -> list[str]:
    interval = args.scrape_interval_s
    rounds = int(args.ingest_minutes * 60 // interval) + 3
    at = args.minutes * 60
    end = time.time()
    rendered = render_rounds(
        scenario(args.hosts, args.minutes, end),
        at,
        rounds,
        interval,
        min(args.targets, args.hosts),
        directory / "bodies",
        reported=not args.inferred,
        clock_start=end - at,
    )
    per_round = statistics.mean(rendered.samples)
    offered = per_round / interval
    single = ingest_single(args, rendered.directory, directory, offered)
    sharded = ingest_sharded(args, rendered.directory, directory, offered)
    shutil.rmtree(rendered.directory, ignore_errors=True)

    def cell(run: Run, label: str, column: int) -> float:
        text = run.rows[label][column].split(" ")[0].replace(",", "")
        return float(text) if text else math.nan

    single_cpu = cell(single, "CPU s per million samples, steady", 0)
    pipeline = sum(cell(sharded, "cores used, steady", c) for c in range(3))
    lines = [
        f"### Ingestion: {args.hosts:,} hosts scraped every {args.scrape_interval} for {args.ingest_minutes:g} minutes",
        "",
        f"{rendered.targets} targets of {-(-args.hosts // rendered.targets):,} hosts (honor_labels), "
        f"{per_round:,.0f} samples a round ({per_round / args.hosts:.1f} per host): {offered:,.0f} samples/s offered. "
        f"{rendered.rounds} rounds rendered in {rendered.seconds:.0f} s "
        f"({mb(rendered.raw_bytes / rendered.rounds)} MB a round, {mb(rendered.gzip_bytes / rendered.rounds)} MB gzipped).",
        "",
        "#### (a) One Prometheus, scraping and storing",
        "",
        *single.table(),
        "",
        *single.notes,
        "",
        "#### (b) Two Prometheus agents (hashmod of the address) remote-writing into VictoriaMetrics",
        "",
        *sharded.table(),
        "",
        *sharded.notes,
        "",
        f"Side by side: one Prometheus {single_cpu:.2f} CPU s per million samples and "
        f"{cell(single, 'cores used, steady', 0):.2f} cores; the sharded path "
        f"{pipeline:.2f} cores in all (VictoriaMetrics alone {cell(sharded, 'cores used, steady', 2):.2f}). "
        f"Peak memory: one Prometheus {cell(single, 'RSS peak MB (VmHWM)', 0):,.0f} MB; the shards "
        f"{cell(sharded, 'RSS peak MB (VmHWM)', 0) + cell(sharded, 'RSS peak MB (VmHWM)', 1):,.0f} MB together, "
        f"VictoriaMetrics {cell(sharded, 'RSS peak MB (VmHWM)', 2):,.0f} MB.",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--hosts", type=int, default=100_000, help="fleet size (default 100000)")
    parser.add_argument("--minutes", type=float, default=15, help="history length for the rules (default 15)")
    add_reading_options(parser)
    parser.add_argument(
        "--inferred",
        action="store_true",
        help="hosts serve Zincati's socket alone, rules with infer_phases=true (default: every host reports)",
    )
    parser.add_argument("--scrape-interval", default="30s", help="live scrape interval (default 30s, the bundle's)")
    parser.add_argument(
        "--ingest-minutes", type=float, default=5, help="wall minutes of each ingestion run (default 5)"
    )
    parser.add_argument(
        "--targets", type=int, default=100, help="scrape targets the fleet is packed into (default 100)"
    )
    parser.add_argument("--skip-rules", action="store_true", help="ingestion only")
    parser.add_argument("--skip-ingest", action="store_true", help="rule evaluation only")
    args = parser.parse_args()
    args.interval_s = parse_duration(args.interval)
    args.scrape_interval_s = parse_duration(args.scrape_interval)
    missing = [f"{name} ({package})" for name, package in BINARIES.items() if shutil.which(name) is None]
    if missing:
        sys.exit("needs " + ", ".join(missing))
    preamble("victoria.py")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    print(f"Commit: {commit.strip()}; prometheus 2.42, victoria-metrics/vmalert 1.79.5 (Debian)\n", flush=True)
    directory = Path(tempfile.mkdtemp(prefix="les-victoria-"))
    try:
        if not args.skip_rules:
            for line in rules_case(args, directory):
                print(line, flush=True)
            print(flush=True)
        if not args.skip_ingest:
            for line in ingest_case(args, directory):
                print(line, flush=True)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
