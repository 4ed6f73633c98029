"""What users are served beats popularity, end to end: stream -> Kafka -> ingest -> validate ->
dataset -> train -> gate -> refit -> score -> publish -> real gunicorn -> GET /recommend, scored
on each user's later interactions that were never replayed (benchmarks.bench_served_quality).

On the churn-shaped world (users arrive over the run and stay days to weeks, so one time cut
starves) and on MovieTweetings with each user's later ratings held back (skipped where the
read-only sample is absent): the ratio of served NDCG@20 to all-time popularity (minus each
user's kept movies) has its whole bootstrap interval above 1, every scored user got a model
list, and no served list holds a movie the user had already seen.
"""

from __future__ import annotations

import pytest

from benchmarks import bench_served_quality as bench

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHURN_DAYS = 14  # small world, ~2.6M lines: users still come and go within the run


def assert_served_beats_popularity(row: dict) -> None:
    print(
        f"{row['shape']}: served/popularity {row['ratio']:.3f} "
        f"[{row['ratio_low']:.3f}, {row['ratio_high']:.3f}] over {row['users']} users; "
        f"gate: {row['gate']}"
    )
    assert row["users"] >= 500, row
    assert row["ratio_low"] > 1.0, row
    assert row["seen_served"] == 0 and row["failed"] == 0, row
    assert row["share_popular"] == 0.0, row  # every known user gets a personalised list
    assert row["reco_version"], row


def test_churn_world_served_lists_beat_popularity(kafka, tmp_path):
    lines = bench.simulate("churn", tmp_path / "churn.log", "small", CHURN_DAYS)
    row = bench.measure_shape(lines, tmp_path / "work", "churn", resamples=1000)
    assert "rolling" in row["protocol"], row  # the global cut starves on this shape
    assert_served_beats_popularity(row)


def test_movietweetings_served_lists_beat_popularity(kafka, tmp_path):
    if not (bench.MT_DIR / "ratings.dat").exists():
        pytest.skip(f"MovieTweetings sample not found in {bench.MT_DIR} (read-only shared data)")
    lines = bench.import_movietweetings(tmp_path / "mt.log")
    row = bench.measure_shape(lines, tmp_path / "work", "movietweetings", resamples=1000)
    assert_served_beats_popularity(row)
