"""The version rank the `os_update` families carry: versions of either OS ordered by their
numeric parts, as a number PromQL can compare (agents/os_update.py version_rank)."""

from __future__ import annotations

import random

import pytest

from local_exporter.agents.cincinnati import version_key
from local_exporter.agents.os_update import version_rank

#: Real release versions: Fedora CoreOS (major.date.stream.respin) and Flatcar (major.minor.patch).
ORDERED = [
    ["39.20231101.3.0", "39.20231119.3.0", "40.20240416.3.1", "40.20240504.3.0", "40.20240504.3.1", "41.20241109.3.0"],
    ["3760.2.0", "3815.2.5", "4081.2.0", "4152.2.3", "4230.2.1", "4230.10.0", "10000.1.0"],
]


@pytest.mark.parametrize("versions", ORDERED, ids=["fedora-coreos", "flatcar"])
def test_ranks_order_versions_as_their_numeric_parts_do(versions: list[str]) -> None:
    shuffled = random.Random(1).sample(versions, len(versions))
    assert sorted(shuffled, key=version_rank) == sorted(shuffled, key=version_key) == versions


def test_ranks_are_exact_in_a_float() -> None:
    for versions in ORDERED:
        for version in versions:
            rank = version_rank(version)
            assert rank < 2**53 and float(rank) == rank


@pytest.mark.parametrize(
    ("version", "rank"),
    [("40.20240519.3.0", 2408202405191310), ("4230.2.1", 4423012110000000), ("no digits", 0)],
)
def test_the_documented_examples(version: str, rank: int) -> None:
    assert version_rank(version) == rank


def test_a_version_with_one_more_part_ranks_above() -> None:
    assert version_rank("4230.2") < version_rank("4230.2.0")
