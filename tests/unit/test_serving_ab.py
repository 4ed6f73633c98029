"""Stable A/B assignment: deterministic across processes, splits by the configured shares."""

from __future__ import annotations

import subprocess
import sys

import pytest

from contracts.settings import REPO_ROOT
from serving.ab import Variant, assign, bucket

pytestmark = pytest.mark.unit

AB = (Variant("a", "v1", "m1", 0.5), Variant("b", "v2", "m2", 0.5))


def test_bucket_is_uniform_in_unit_interval_and_salted():
    values = [bucket("s1", u) for u in range(1, 2001)]
    assert all(0 <= v < 1 for v in values)
    assert values != [bucket("s2", u) for u in range(1, 2001)]


def test_assignment_is_identical_in_another_interpreter():
    """Python's hash() is salted per process; blake2b is not, so a fresh process agrees."""
    users = list(range(1, 301))
    here = "".join(assign("salt", u, AB).name for u in users)
    code = (
        "from serving.ab import Variant, assign\n"
        "AB = (Variant('a','v1','m1',0.5), Variant('b','v2','m2',0.5))\n"
        f"print(''.join(assign('salt', u, AB).name for u in {users!r}))"
    )
    env = {"PYTHONHASHSEED": "123", "PYTHONPATH": str(REPO_ROOT)}
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout.strip()
    assert here == there


@pytest.mark.parametrize("shares", [(0.5, 0.5), (0.9, 0.1), (0.2, 0.3, 0.5)])
def test_split_within_one_point_over_10000_users(shares):
    variants = tuple(Variant(f"v{i}", f"r{i}", f"m{i}", s) for i, s in enumerate(shares))
    counts = dict.fromkeys((v.name for v in variants), 0)
    for user in range(1, 10_001):
        counts[assign("exp-salt", user, variants).name] += 1
    for variant in variants:
        assert abs(counts[variant.name] / 10_000 - variant.share) <= 0.01, counts


def test_zero_share_variant_gets_no_traffic():
    variants = (Variant("a", "v1", "m", 1.0), Variant("off", "v2", "m", 0.0))
    assert {assign("s", u, variants).name for u in range(1, 3001)} == {"a"}


def test_no_positive_share_is_an_error():
    with pytest.raises(ValueError, match="positive share"):
        assign("s", 1, (Variant("a", "v1", "m", 0.0),))
