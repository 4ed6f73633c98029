"""Real data: the MovieTweetings 100k sample through our dataset job and models.

Skips when the read-only sample is absent. Builds the interactions from ratings.dat (0..10
mapped to 1..5 by simulator.importers.to_stars) as a lake snapshot (tests.support.movietweetings),
then the dataset job with its default GLOBAL temporal split (docs/models.md). What the issue
requires, on that split: Surprise SVD through our pipeline within 0.01 RMSE of Surprise run
directly, and the best family above the pipeline's 30-day popularity on NDCG@20 on the same
test set. Measured:
popularity 30 d 0.129, popularity with its window tuned on validation (7 d) 0.162, item_knn
0.094, svd_surprise 0.007, hybrid 0.136 (docs/models.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.bench_models import SAMPLE, surprise_direct_rmse
from jobs.train import dataset, evaluate
from jobs.train.train import fit_timed
from tests.support import movietweetings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

POPULARITY_WINDOWS = (1, 3, 7, 14, 30)


@pytest.fixture(scope="module")
def split(spark, tmp_path_factory):
    if not SAMPLE.exists():
        pytest.skip(f"MovieTweetings sample not found at {SAMPLE} (read-only shared data)")
    root = Path(tmp_path_factory.mktemp("mt"))
    snap = movietweetings.rate_snapshot(SAMPLE, root / "snap")
    path = dataset.build_dataset([snap], root / "ds", window_days=None, spark=spark)
    assert dataset.read_manifest(path)["split"]["kind"] == "global"
    return dataset.load_split(path)


def ndcg(family: str, params: dict, train, test) -> float:
    model, _ = fit_timed(family, params, train)
    return evaluate.evaluate(model, train, test)["overall"]["ndcg_at_20"]


def test_svd_through_pipeline_matches_surprise_direct(split):
    train, test = split
    model, _ = fit_timed("svd_surprise", {}, train)
    ours = evaluate.evaluate(model, train, test)["overall"]["rmse"]
    direct = surprise_direct_rmse(train, test, {})
    assert abs(ours - direct) <= 0.01, (ours, direct)


def test_best_family_beats_popularity_on_the_same_test_set(split):
    """The hybrid (its blend chosen on validation splits of train) ranks above the pipeline's
    30-day popularity baseline on the time cut. Popularity with its window tuned on the time
    cut is printed, not asserted against: the hybrid's choice also has to hold up on each
    user's later interactions (docs/models.md, "Served quality"), and on this data that costs
    it its lead over the tuned 7-day list under the time cut."""
    train, test = split
    fit_part, val, _ = dataset.temporal_split(train)
    on_val = [ndcg("popularity", {"window_days": d}, fit_part, val) for d in POPULARITY_WINDOWS]
    tuned_window = POPULARITY_WINDOWS[int(np.argmax(on_val))]
    scores = {
        "popularity_30d": ndcg("popularity", {"window_days": 30}, train, test),
        "popularity_tuned": ndcg("popularity", {"window_days": tuned_window}, train, test),
        "svd_surprise": ndcg("svd_surprise", {}, train, test),
        "item_knn": ndcg("item_knn", {"neighbours": 200, "shrink": 50.0}, train, test),
        "hybrid": ndcg("hybrid", {}, train, test),
    }
    print(f"NDCG@20 on the MovieTweetings time cut: {scores}")
    assert scores["hybrid"] > scores["popularity_30d"], scores
    assert scores["popularity_tuned"] >= scores["popularity_30d"], scores
    # The observations: a rating-trained SVD ranks below popularity, kNN over implicit
    # feedback far above that SVD.
    assert scores["svd_surprise"] < scores["popularity_30d"], scores
    assert scores["item_knn"] > 5 * scores["svd_surprise"], scores
