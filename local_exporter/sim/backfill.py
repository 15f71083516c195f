"""Write a simulated fleet's scrape history as one OpenMetrics file for `promtool tsdb create-blocks-from openmetrics`.

The simulator hands `HistoryWriter.add` what Prometheus would have scraped from the bridge at one
instant for one target: the timestamp, the target labels (`instance`, `job`) and the text
exposition (0.0.4). After `promtool tsdb create-blocks-from openmetrics FILE DIR` the stored series
are the ones a live Prometheus scraping that target would store:

* Target labels are attached to every sample the way a scrape with `honor_labels: false` does: a
  scraped label that collides with a target label is renamed `exported_<name>` (more `exported_`
  prefixes while that name is taken too), empty label values are dropped.
* Every sample keeps its exact text-format name. OpenMetrics wants a `counter` family's samples to
  end in `_total`, so a text counter `foo_total` becomes OM family `foo` of type `counter` (sample
  `foo_total`), while a `_total`-less text counter such as `zincati_update_agent_finalization_attempts`
  becomes an `unknown` family of that exact name. Gauges stay gauges; anything else (untyped,
  summary/histogram parts) becomes an `unknown` family named after the sample. promtool 2.42 stores
  all of these under the sample name (checked in tests/sim/test_backfill.py); blocks carry no
  metadata, so the OM type only has to be valid, not meaningful.
* OpenMetrics forbids interleaving families, and wants a series' points contiguous and in
  ascending time. Samples therefore go to spill files in a temporary directory, one per
  (family, bucket), the bucket chosen by a hash of the target labels so one target's series never
  straddle buckets; `close` concatenates them family by family, grouping each bucket's lines by
  series. Memory is bounded by `buffer_chars` plus one bucket of one family at close time; raise
  `buckets` for larger fleets.
* No stale markers are written: a series that disappears (a reboot changes `os_version` on
  `zincati_identity_os_info`, a host goes down) simply stops, and queries stop returning it after
  the 5-minute lookback instead of at once, as they would after a live target vanished without a
  final scrape.

Parsing is a small parser for what exporters like Zincati write (`# HELP`, `# TYPE`,
`name{labels} value [timestamp]`), O(samples) with a cache of each distinct scraped series text, so
a fleet's identical lines are parsed once. prometheus_client's parser is not used: it renames
counter samples (adds `_total`) and is several times slower.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

OmType = Literal["counter", "gauge", "unknown"]

_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
EXPORTED_PREFIX = "exported_"
#: Distinct scraped series texts remembered per `# TYPE` line (Zincati has a handful per family).
SERIES_CACHE_LIMIT = 100_000


def om_family(sample_name: str, text_name: str | None, text_type: str | None) -> tuple[str, OmType]:
    """The OpenMetrics family (name, type) a text-format sample goes to, keeping its exact name.

    `text_name`/`text_type` are the `# TYPE` line in force (None when there is none).
    """
    if sample_name == text_name:
        if text_type == "counter" and sample_name.endswith("_total"):
            return sample_name[: -len("_total")], "counter"
        if text_type == "gauge":
            return sample_name, "gauge"
    return sample_name, "unknown"


def resolve_labels(scraped: list[tuple[str, str]], target: Mapping[str, str]) -> list[tuple[str, str]]:
    """Scraped labels after a `honor_labels: false` scrape, target labels excluded (appended by the caller).

    As Prometheus does: empty values are dropped, and a scraped label whose name a target label
    takes is renamed with `exported_` prefixes until the name is free.
    """
    scraped = [(name, value) for name, value in scraped if value != ""]
    names = {name for name, _ in scraped}
    taken = names | {name for name, value in target.items() if value != ""}
    result: list[tuple[str, str]] = []
    conflicting: list[tuple[str, str]] = []
    for name, value in scraped:
        if target.get(name, "") != "":
            conflicting.append((name, value))
        else:
            result.append((name, value))
    for name, value in sorted(conflicting, key=lambda item: len(item[0])):
        new = name
        while True:
            new = EXPORTED_PREFIX + new
            if new not in taken:
                break
        taken.add(new)
        result.append((new, value))
    return result


def _parse_series(series: str) -> tuple[str, list[tuple[str, str]]]:
    """`name{a="x",b="y"}` -> ("name", [("a", 'x'), ("b", 'y')]) with values still escaped."""
    brace = series.find("{")
    if brace < 0:
        name = series.strip()
        labels: list[tuple[str, str]] = []
    else:
        name = series[:brace].strip()
        body = series[brace + 1 : series.rindex("}")]
        labels = []
        position = 0
        while position < len(body):
            match = _LABEL.match(body, position)
            if match is None:
                if body[position:].strip():
                    raise ValueError(f"cannot parse labels of {series!r}")
                break
            labels.append((match.group(1), match.group(2)))
            position = match.end()
    if not _NAME.match(name):
        raise ValueError(f"invalid metric name in {series!r}")
    return name, labels


def _format_timestamp(ms: int) -> str:
    """Milliseconds as exact decimal seconds (OpenMetrics timestamps are seconds)."""
    seconds, rest = divmod(ms, 1000)
    return str(seconds) if rest == 0 else f"{seconds}.{rest:03d}"


def _unescape_help(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def _escape_om_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@dataclass
class _FamilyInfo:
    index: int
    name: str
    type: OmType
    help: str | None = None


@dataclass(frozen=True)
class BackfillStats:
    samples: int
    series: int
    families: int
    bytes: int


class HistoryWriter:
    """Collects scrapes over simulated time and writes one OpenMetrics file on `close`.

    Add each target's snapshots in ascending time (series whose points arrive out of order are
    sorted at close; the same series twice at one timestamp is an error).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        buckets: int = 64,
        buffer_chars: int = 32 * 1024 * 1024,
        spill_dir: Path | str | None = None,
    ) -> None:
        if buckets < 1:
            raise ValueError("buckets must be at least 1")
        self.path = Path(path)
        self.buckets = buckets
        self.buffer_chars = buffer_chars
        self._tmp = Path(tempfile.mkdtemp(prefix="backfill-", dir=spill_dir))
        self._families: dict[str, _FamilyInfo] = {}
        #: bucket -> family index -> lines not yet in that spill file
        self._buffers: dict[int, dict[int, list[str]]] = {}
        self._buffered = 0
        self._samples = 0
        #: target label names -> `# TYPE` line -> series text -> (family index, line head, head close)
        self._sections: dict[tuple[str, ...], dict[str, dict[str, tuple[int, str, str]]]] = {}
        self._closed = False
        #: target -> its last scrape (ms), while `_ordered`; once not, `close` sorts and checks every series.
        self._last_ms: dict[str, int] = {}
        #: target labels as given -> what `_target` makes of them (a fleet's targets recur every scrape).
        self._targets: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], tuple[str, ...], str, int]] = {}
        self._ordered = True

    # --- input ---------------------------------------------------------------------------------

    def add(self, timestamp: float, target_labels: Mapping[str, str], exposition: bytes | str) -> int:
        """One scrape of one target at `timestamp` (unix seconds); the number of samples taken."""
        if self._closed:
            raise RuntimeError("the writer is closed")
        key = tuple(target_labels.items())
        known = self._targets.get(key)
        if known is None:
            known = self._targets[key] = self._target(target_labels)
        target, target_names, target_text, bucket = known
        ms = round(timestamp * 1000)
        default_ts = " " + _format_timestamp(ms) + "\n"
        if self._ordered:
            # While every target's scrapes come in strictly ascending time, so does every series.
            if self._last_ms.get(target_text, -1 << 63) >= ms:
                self._ordered = False
                self._last_ms.clear()
            else:
                self._last_ms[target_text] = ms
        bucket_buffers = self._buffers.setdefault(bucket, {})
        text = exposition.decode() if isinstance(exposition, bytes) else exposition
        # Parsed series are cached per target label names and per `# TYPE` line in force.
        sections = self._sections.setdefault(target_names, {})
        type_line = ""
        section = sections.setdefault(type_line, {})
        added = 0
        for line in text.split("\n"):
            if not line:
                continue
            if line[0] == "#":
                if line.startswith("# TYPE "):
                    type_line = line
                    section = sections.setdefault(line, {})
                continue
            head, _, value = line.rpartition(" ")
            if head and (head[-1] == "}" or " " not in head):
                series, ts = head, default_ts
            else:  # an explicit timestamp (milliseconds), or odd spacing
                close = line.rfind("}")
                if close >= 0:
                    series, rest = line[: close + 1], line[close + 1 :].split()
                else:
                    series, *rest = line.split()
                if len(rest) == 1:
                    value, ts = rest[0], default_ts
                elif len(rest) == 2:
                    value, ts = rest[0], " " + _format_timestamp(int(rest[1])) + "\n"
                    self._ordered = False
                else:
                    raise ValueError(f"cannot parse sample line {line!r}")
            entry = section.get(series)
            if entry is None:
                if len(section) >= SERIES_CACHE_LIMIT:  # per-host label values: do not grow without bound
                    section.clear()
                entry = section[series] = self._prepare(series, type_line, target, text)
            index, pre, tail = entry
            spill = bucket_buffers.get(index)
            if spill is None:
                spill = bucket_buffers[index] = []
            spill.append(pre + target_text + tail + value + ts)
            added += 1
        self._samples += added
        self._buffered += len(text) + added * (len(target_text) + len(default_ts) + 2)
        if self._buffered >= self.buffer_chars:
            self._flush()
        return added

    def _target(self, target_labels: Mapping[str, str]) -> tuple[dict[str, str], tuple[str, ...], str, int]:
        """A target's labels (empty values dropped), their names, their text and its spill bucket."""
        target = {name: value for name, value in target_labels.items() if value != ""}
        for name in target:
            if not _LABEL_NAME.match(name) or name.startswith("__"):
                raise ValueError(f"invalid target label name {name!r}")
        text = ",".join(f'{name}="{_escape_label(value)}"' for name, value in target.items())
        return target, tuple(target), text, zlib.crc32(text.encode()) % self.buckets

    def _prepare(self, series: str, type_line: str, target: Mapping[str, str], text: str) -> tuple[int, str, str]:
        name, scraped = _parse_series(series)
        type_parts = type_line.split(None, 3)
        type_name = type_parts[2] if len(type_parts) > 2 else None
        type_type = type_parts[3].strip() if len(type_parts) > 3 else ("untyped" if type_name else None)
        family_name, om_type = om_family(name, type_name, type_type)
        family = self._families.get(family_name)
        if family is None:
            family = _FamilyInfo(len(self._families), family_name, om_type)
            self._families[family_name] = family
        elif family.type != om_type:
            raise ValueError(f"family {family_name!r} is both {family.type} and {om_type}")
        if family.help is None:
            help_prefix = f"# HELP {name} "
            for line in text.split("\n"):
                if line.startswith(help_prefix) or line == help_prefix.rstrip():
                    family.help = _unescape_help(line[len(help_prefix) :])
                    break
        labels = ",".join(f'{label}="{value}"' for label, value in resolve_labels(scraped, target))
        if target:
            return family.index, f"{name}{{{labels}{',' if labels else ''}", "} "
        return family.index, (f"{name}{{{labels}}} " if labels else f"{name} "), ""

    def _flush(self) -> None:
        for bucket, families in self._buffers.items():
            for index, lines in families.items():
                if lines:
                    with (self._tmp / f"{index}-{bucket}").open("a", encoding="utf-8") as spill:
                        spill.write("".join(lines))
        self._buffers.clear()
        self._buffered = 0

    # --- output --------------------------------------------------------------------------------

    def close(self) -> BackfillStats:
        """Write the OpenMetrics file (ending in `# EOF`) and remove the spill files."""
        if self._closed:
            raise RuntimeError("the writer is closed")
        self._closed = True
        try:
            self._flush()
            series = 0
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("w", encoding="utf-8") as out:
                for family in sorted(self._families.values(), key=lambda f: f.name):
                    if family.help is not None:
                        out.write(f"# HELP {family.name} {_escape_om_help(family.help)}\n")
                    out.write(f"# TYPE {family.name} {family.type}\n")
                    for bucket in range(self.buckets):
                        spill = self._tmp / f"{family.index}-{bucket}"
                        if spill.exists():
                            series += _write_bucket(spill, out, check_order=not self._ordered)
                out.write("# EOF\n")
            return BackfillStats(self._samples, series, len(self._families), self.path.stat().st_size)
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def discard(self) -> None:
        """Drop everything without writing (spill files included)."""
        self._closed = True
        self._buffers.clear()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.discard()
        elif not self._closed:
            self.close()


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _write_bucket(spill: Path, out: IO[str], *, check_order: bool) -> int:
    """Copy one spill file grouped by series, each series in ascending time; the series count."""
    groups: dict[str, list[str]] = {}
    with spill.open(encoding="utf-8") as lines:
        for line in lines:
            series = line[: line.rindex(" ", 0, line.rindex(" "))]
            group = groups.get(series)
            if group is None:
                groups[series] = [line]
            else:
                group.append(line)
    for series, group in groups.items():
        if not check_order:
            out.write("".join(group))
            continue
        times = [_seconds(line) for line in group]
        if any(later <= earlier for earlier, later in itertools.pairwise(times)):
            order = sorted(range(len(group)), key=times.__getitem__)
            for earlier, later in itertools.pairwise(order):
                if times[earlier] == times[later]:
                    raise ValueError(f"{series} has two samples at {group[later].split()[-1]}")
            group = [group[i] for i in order]
        out.write("".join(group))
    os.remove(spill)
    return len(groups)


def _seconds(line: str) -> float:
    return float(line[line.rindex(" ") + 1 :])
