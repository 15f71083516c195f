"""What `serve` and `check-config` cost before they do any work, against what cannot be avoided.

    python3 bench/footprint.py [--repeat 5] [--rev REV ...]

1. Idle RSS of `local-exporter serve` with one file selector, next to the featureless aiohttp
   relay of bench/baseline.py (the same event loop, no features): each is started --repeat
   times, scraped once (so that whatever loads on first use is loaded), left idle for a
   second, and its VmRSS read from /proc. Target: serve at most 1.05x the relay.
2. Wall time of `local-exporter check-config` on a three-selector config (file, uds, http) next
   to `python -c pass`, measured by hyperfine (Debian package `hyperfine`).

`--rev REV` measures the same for another revision of this repository too (checked out in a
temporary git worktree), so a change's effect is seen in one run on one machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import ROOT, child_env, free_port, http_ok, rss_mb, stop

RELAY = Path(__file__).with_name("bridge_vs_relay.py")


@contextlib.contextmanager
def checkout(rev: str) -> Iterator[Path]:
    """A temporary worktree of `rev`; this checkout itself for "HEAD" with uncommitted changes."""
    if rev == "WORKTREE":
        yield ROOT
        return
    directory = Path(tempfile.mkdtemp(prefix="footprint-"))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(directory), rev], check=True)
    try:
        yield directory
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(directory)], check=True)
        shutil.rmtree(directory, ignore_errors=True)


def idle_rss(command: list[str], port: int, env: dict[str, str], cwd: Path, selector: str = "f") -> float:
    """Start `command` in `cwd`, scrape it once, let it idle for a second; its RSS in MB."""
    # A neutral `cwd`: `python -m` looks there first, before PYTHONPATH.
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not http_ok(f"http://127.0.0.1:{port}/-/ready"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{command[:4]} did not become ready")
            time.sleep(0.05)
        if not http_ok(f"http://127.0.0.1:{port}/bridge?selector={selector}"):
            raise SystemExit(f"{command[:4]}: the scrape failed")
        time.sleep(1.0)
        return rss_mb(process.pid)
    finally:
        stop(process)


def serve_command(directory: Path, config: Path) -> tuple[list[str], dict[str, str]]:
    env = child_env()
    env["PYTHONPATH"] = str(directory)  # this checkout's package, not the installed one
    return [sys.executable, "-m", "local_exporter", "serve", "-c", str(config)], env


def write_config(directory: Path, port: int, selectors: dict[str, str]) -> Path:
    path = directory / f"config-{port}.toml"
    lines = [f'[service]\naddress = "127.0.0.1"\nport = {port}\n[bridge.selectors]']
    lines += [f"{name} = {{ {keys} }}" for name, keys in selectors.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def measure_rss(work: Path, checkouts: dict[str, Path], repeat: int) -> dict[str, list[float]]:
    payload = work / "f.prom"
    payload.write_text("zincati_update_agent_updates_enabled 1\n")
    results: dict[str, list[float]] = {name: [] for name in ("relay", *checkouts)}
    for _ in range(repeat):
        # Interleaved, so that drift on the machine affects every server alike.
        port = free_port()
        routes = json.dumps({"f": ["file", str(payload)]})
        relay = [sys.executable, str(RELAY), "relay", str(port), routes]
        results["relay"].append(idle_rss(relay, port, child_env(), work))
        for name, directory in checkouts.items():
            port = free_port()
            config = write_config(work, port, {"f": f'kind = "file", path = "{payload}"'})
            command, env = serve_command(directory, config)
            results[name].append(idle_rss(command, port, env, work))
    return results


def measure_check_config(work: Path, checkouts: dict[str, Path], runs: int) -> dict[str, float]:
    hyperfine = shutil.which("hyperfine")
    if hyperfine is None:
        raise SystemExit("hyperfine is not installed: apt-get install hyperfine")
    config = write_config(
        work,
        9598,
        {
            "zincati": 'kind = "uds", path = "/run/zincati/public/metrics.promsock"',
            "node": 'kind = "file", path = "/var/lib/node_exporter/textfile/os.prom"',
            "local": 'kind = "http", url = "http://127.0.0.1:9100/metrics"',
        },
    )
    commands = {"python -c pass": f"{sys.executable} -c pass"}
    for name, directory in checkouts.items():
        commands[f"check-config ({name})"] = (
            f"env PYTHONPATH={directory} {sys.executable} -m local_exporter check-config {config}"
        )
    export = work / "hyperfine.json"
    subprocess.run(
        [hyperfine, "--warmup", "3", "--runs", str(runs), "--style", "none", "--export-json", str(export)]
        + [arg for name, command in commands.items() for arg in ("--command-name", name, command)],
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=work,  # neutral: `python -m` looks in the working directory before PYTHONPATH
    )
    return {r["command"]: r["mean"] * 1000 for r in json.loads(export.read_text())["results"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="starts of each server (default 5)")
    parser.add_argument("--runs", type=int, default=30, help="hyperfine runs per command (default 30)")
    parser.add_argument("--rev", action="append", default=[], help="also measure this git revision")
    args = parser.parse_args()
    print(f"# {sys.executable} ({sys.version.split()[0]}), {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"# command: python3 bench/footprint.py --repeat {args.repeat} --runs {args.runs}", end="")
    print("".join(f" --rev {rev}" for rev in args.rev))
    with contextlib.ExitStack() as stack:
        checkouts = {"this checkout": ROOT}
        for rev in args.rev:
            checkouts[rev] = stack.enter_context(checkout(rev))
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="footprint-work-")))
        rss = measure_rss(work, checkouts, args.repeat)
        times = measure_check_config(work, checkouts, args.runs)
    relay = statistics.median(rss["relay"])
    print("\n| server (one file selector, idle after one scrape) | RSS MB (median) | min-max | / relay |")
    print("|---|---|---|---|")
    for name, values in rss.items():
        label = "featureless relay (bench/baseline.py)" if name == "relay" else f"serve, {name}"
        print(
            f"| {label} | {statistics.median(values):.1f} | {min(values):.1f}-{max(values):.1f} "
            f"| {statistics.median(values) / relay:.3f} |"
        )
    base = times["python -c pass"]
    print("\n| command (three selectors: uds, file, http) | wall ms (mean) | / python -c pass |")
    print("|---|---|---|")
    for name, ms in times.items():
        print(f"| {name} | {ms:.1f} | {ms / base:.2f} |")


if __name__ == "__main__":
    main()
