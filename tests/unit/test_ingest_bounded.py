"""Bounded reads (issue 13, "Memory stays bounded"): drift is judged from stored summaries of
the reference snapshots, never their rows, and gives the same numbers a full read gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from jobs.ingest import lake, summary, validate
from tests.unit.test_ingest_derive import day, make_snapshot

LIMITS = {**validate.thresholds(), "min_rows_for_drift": 5}


@pytest.fixture
def three(tmp_path):
    root = tmp_path / "lake"
    return [
        make_snapshot(root, 1, day("2025-03-01", range(1, 31), 2)),
        make_snapshot(root, 2, day("2025-03-02", range(20, 41), 5), first_offset=1000),
        make_snapshot(root, 3, day("2025-03-03", range(40, 51), 4), first_offset=2000),
    ]


def full_read(path: Path, table: str, column: str) -> np.ndarray:
    return pq.read_table(path / table, columns=[column])[column].to_numpy()


def test_a_summary_holds_the_distinct_ids_and_the_star_counts(three):
    got = summary.load(three[1])
    users = np.unique(
        np.concatenate([full_read(three[1], t, "user_id") for t in ("watch", "rate")])
    )
    assert got.users.to_pylist() == users.tolist() == list(range(20, 41))
    assert got.movies.to_pylist() == ["film+1+1999", "film+2+1999"]
    assert got.stars == (0, 0, 0, 0, 21)
    assert (summary.summary_dir(three[1]) / "stars.json").is_file()
    assert summary.summary_dir(three[1]).parent == three[1].parent.parent / summary.SUMMARIES
    assert summary.load(three[1]) == summary._read(summary.summary_dir(three[1]))


def test_drift_reads_the_references_summaries_not_their_rows(three, monkeypatch):
    for reference in three[:2]:
        summary.load(reference)  # stored when they were validated
    read_from = []
    original = lake.table_files
    monkeypatch.setattr(
        lake, "table_files", lambda d, t: read_from.append(Path(d)) or original(d, t)
    )
    references = [(p, lake.read_manifest(p)) for p in three[:2]]
    manifest = lake.read_manifest(three[2])
    facts = validate.aggregates(three[2], manifest, references, LIMITS)
    assert set(read_from) == {three[2]}
    # users 40..50 rated and watched the same number of times; only user 40 was seen before
    assert facts["new_user_share"] == pytest.approx(10 / 11)
    assert facts["new_movie_share"] == 0.0
    assert facts["rating_kl"] == pytest.approx(
        validate.rating_kl([0, 0, 0, 11, 0], [0, 30, 0, 0, 21])
    )
    assert facts["rating_kl"] > LIMITS["max_rating_kl"]  # 4 stars only vs 2 and 5 stars
    assert facts["reconciled"] and facts["files_verified"]


def test_new_movie_share_counts_the_snapshots_newest_hours(tmp_path):
    """New movies released two hours before a 12-hour snapshot ends are a fifth of its
    newest three hours (the retrain level's window), not diluted by the ten before them."""
    root = tmp_path / "lake"
    reference = make_snapshot(root, 1, day("2025-03-01", range(1, 31), 3))
    known = [
        f"2025-03-02T{h:02d}:00:{u:02d},{u},GET /data/m/film+1+1999/0.mpg"
        for h in range(10)
        for u in range(1, 9)
    ]
    movie = {u: "new+1+2025" if u < 3 else "film+2+1999" for u in range(1, 11)}
    late = [
        f"2025-03-02T{h:02d}:30:{u:02d},{u},GET /data/m/{movie[u]}/0.mpg"
        for h in (10, 11)
        for u in range(1, 11)
    ]
    snapshot = make_snapshot(root, 2, known + late, first_offset=1000)
    manifest = lake.read_manifest(snapshot)
    references = [(reference, lake.read_manifest(reference))]
    facts = validate.aggregates(snapshot, manifest, references, LIMITS)
    hour_9 = 8  # 09:00 is within three hours of the newest event (11:30)
    assert facts["new_movie_share"] == pytest.approx(4 / (hour_9 + 20))
    whole = validate.aggregates(
        snapshot, manifest, references, {**LIMITS, "drift_window_hours": 24}
    )
    assert whole["new_movie_share"] == pytest.approx(4 / (80 + 20))


def test_offsets_are_judged_against_the_previous_complete_snapshot(three):
    previous = lake.previous_complete(lake.read_manifest(three[2]), three[2].parent.parent)
    assert previous["snapshot_id"] == "s000002"
    gap = {**lake.read_manifest(three[2]), "offsets": {"0": [2005, 2077]}}
    assert validate.offsets_contiguous(lake.read_manifest(three[2]), previous) is False
    assert validate.offsets_contiguous(gap, previous) is False
    follows = {**gap, "offsets": {"0": [previous["offsets"]["0"][1], 2100]}}
    assert validate.offsets_contiguous(follows, previous) is True
    assert validate.offsets_contiguous({**follows, "skipped_offsets": {"0": 3}}, previous) is False
    assert lake.previous_complete(lake.read_manifest(three[0]), three[0].parent.parent) is None
