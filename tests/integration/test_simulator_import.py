"""Import of the real MovieTweetings 100K sample: every rating becomes one rate line."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from simulator import grammar
from simulator.cli import main

pytestmark = pytest.mark.integration
DATA = Path("/work/shared/data/movietweetings-100k")


@pytest.mark.skipif(
    not (DATA / "ratings.dat").exists(),
    reason=f"MovieTweetings sample not found at {DATA} (shared read-only data, never in the repo)",
)
def test_movietweetings_import_keeps_every_rating(tmp_path: Path):
    out = tmp_path / "movielog.txt"
    argv = ["import-ratings", str(DATA / "ratings.dat"), "--format", "movietweetings"]
    assert main([*argv, "--minutes-per-star", "1", "--out", str(out)]) == 0
    lines = out.read_bytes().split(b"\n")[:-1]
    parsed = [grammar.parse(line) for line in lines]
    assert all(parsed)
    rates = [p for p in parsed if p["kind"] == "rate"]
    assert len(rates) == 100_000
    source = Counter()
    for text in (DATA / "ratings.dat").read_text().splitlines():
        user, _, _, _ = text.split("::")
        source[int(user)] += 1
    assert Counter(p["user"] for p in rates) == source
    times = [p["time"] for p in parsed]
    assert times == sorted(times)
    assert len({p["movie"] for p in rates}) > 9_000
