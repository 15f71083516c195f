#!/usr/bin/env python3
"""What basic auth costs per request, and that an unknown user costs what a known one does.

    python3 bench/basic_auth.py [--cost 10] [--checks 20]

Measures local_exporter.webconfig.basic_auth.BasicAuthUsers.allows (what every request behind
`basic_auth_users` runs) on its paths, against the baseline of one bare `bcrypt.checkpw` at the
same cost, in the same run:
  known user, first request    a bcrypt check (in a thread)
  unknown user, first request  a bcrypt check against the dummy hash: should equal the above
  known user, cached           what Prometheus pays on every scrape after its first
  unknown user, cached         a repeated guess
Each uncached figure is the median over `--checks` distinct passwords (a new password misses
the cache by construction).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import platform
import statistics
import time

import bcrypt

from local_exporter.bridge.webconfig.basic_auth import BasicAuthUsers, PasswordChecks


def header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def timed(users: BasicAuthUsers, authorization: str, address: str = "") -> float:
    started = time.perf_counter()
    await users.allows(authorization, address)
    return time.perf_counter() - started


async def measure(cost: int, checks: int) -> None:
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(cost))
    users = BasicAuthUsers({"prometheus": hashed}, PasswordChecks())
    # Interleaved, so that a drift of the machine's speed does not favour one path.
    bare, known, unknown = [], [], []
    for i in range(checks):
        started = time.perf_counter()
        bcrypt.checkpw(f"guess-{i}".encode(), hashed)
        bare.append(time.perf_counter() - started)
        # An address per guess: one address's failures are throttled after a few (limits.py).
        known.append(await timed(users, header("prometheus", f"known-{i}"), f"known-{i}"))
        unknown.append(await timed(users, header(f"nobody-{i}", f"unknown-{i}"), f"unknown-{i}"))
    await users.allows(header("prometheus", "right"))
    cached_known = [await timed(users, header("prometheus", "right")) for _ in range(1000)]
    cached_unknown = [await timed(users, header("nobody-0", "unknown-0")) for _ in range(1000)]

    def ms(samples: list[float]) -> str:
        return f"{1000 * statistics.median(samples):9.3f}"

    print(f"Machine: Python {platform.python_version()}, bcrypt {bcrypt.__version__}, cost {cost}\n")
    print("| path | median ms | vs bare bcrypt.checkpw |")
    print("|---|---:|---:|")
    base = statistics.median(bare)
    for name, samples in (
        ("bare bcrypt.checkpw (baseline)", bare),
        ("known user, first request", known),
        ("unknown user, first request", unknown),
        ("known user, cached", cached_known),
        ("unknown user, cached", cached_unknown),
    ):
        print(f"| {name} | {ms(samples)} | {statistics.median(samples) / base:.3f} |")
    print(f"\nunknown/known, first request: {statistics.median(unknown) / statistics.median(known):.3f} (target: 1)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cost", type=int, default=10)
    parser.add_argument("--checks", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(measure(args.cost, args.checks))


if __name__ == "__main__":
    main()
