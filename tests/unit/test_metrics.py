"""Offline metrics (pandas) against a hand-worked example; the Spark twins against the same."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from jobs.train import metrics

K = 3

# user 1 holds out a, b, c; user 2 holds out d; user 3 holds out e and gets no recommendations.
TRUTH = pd.DataFrame(
    {"user_id": [1, 1, 1, 2, 3], "movie_id": ["a", "b", "c", "d", "e"], "rating": [4, 2, 5, 3, 1]}
)
# user 1: a (hit), x, b (hit); user 2: y, d (hit), z; a 4th row of user 1 lies beyond k.
PRED = pd.DataFrame(
    {
        "user_id": [1, 1, 1, 1, 2, 2, 2],
        "movie_id": ["a", "x", "b", "c", "y", "d", "z"],
        "rank": [1, 2, 3, 4, 1, 2, 3],
    }
)
# Training popularity (distinct users): a 4, b 3, x 2, y 2, d 1, z 1.
TRAIN = pd.DataFrame(
    {
        "user_id": [1, 2, 3, 4, 1, 2, 3, 1, 2, 3, 4, 5, 6],
        "movie_id": ["a", "a", "a", "a", "b", "b", "b", "x", "x", "y", "y", "d", "z"],
    }
)
RATING_PRED = pd.DataFrame(
    {"user_id": [1, 1, 9], "movie_id": ["a", "b", "q"], "prediction": [3.5, 3.0, 1.0]}
)

LOG3 = math.log2(3)
# user 1: hits at 1 and 3 of 3 relevant; user 2: hit at 2 of 1 relevant; user 3: nothing.
EXPECTED = {
    "precision_at_k": (2 / 3 + 1 / 3 + 0) / 3,
    "recall_at_k": (2 / 3 + 1 + 0) / 3,
    "ndcg_at_k": ((1 + 0.5) / (1 + 1 / LOG3 + 0.5) + (1 / LOG3) / 1 + 0) / 3,
    "map_at_k": ((1 + 2 / 3) / 3 + (1 / 2) / 1 + 0) / 3,
    "hit_rate_at_k": 2 / 3,
}
COVERAGE = 6 / 10  # a, x, b, y, d, z out of a 10-movie catalogue
POP_BIAS = (6 / 6 + 4 / 6 + 5 / 6 + 4 / 6 + 2 / 6 + 2 / 6) / 6  # a x b | y d z
RMSE = math.sqrt((0.5**2 + 1.0**2) / 2)
MAE = (0.5 + 1.0) / 2


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_ranking_metric_matches_hand_worked_answer(name):
    assert getattr(metrics, name)(TRUTH, PRED, k=K) == pytest.approx(EXPECTED[name])


@pytest.mark.unit
def test_rank_is_derived_from_score_when_absent():
    scored = PRED.drop(columns="rank").assign(score=[9.0, 8.0, 7.0, 6.0, 3.0, 2.0, 1.0])
    assert metrics.ndcg_at_k(TRUTH, scored, k=K) == pytest.approx(EXPECTED["ndcg_at_k"])


@pytest.mark.unit
def test_coverage_bias_and_rating_errors():
    assert metrics.catalog_coverage(PRED, 10, k=K) == pytest.approx(COVERAGE)
    assert metrics.popularity_bias(PRED, TRAIN, k=K) == pytest.approx(POP_BIAS)
    assert metrics.rmse(TRUTH, RATING_PRED) == pytest.approx(RMSE)
    assert metrics.mae(TRUTH, RATING_PRED) == pytest.approx(MAE)


@pytest.mark.unit
def test_perfect_and_empty_recommendations():
    perfect = TRUTH.assign(rank=TRUTH.groupby("user_id").cumcount() + 1)
    assert metrics.ndcg_at_k(TRUTH, perfect, k=K) == pytest.approx(1.0)
    assert metrics.map_at_k(TRUTH, perfect, k=K) == pytest.approx(1.0)
    assert metrics.ndcg_at_k(TRUTH, PRED.iloc[0:0], k=K) == 0.0
    with pytest.raises(ValueError, match="no \\(user, movie\\) pair"):
        metrics.rmse(TRUTH, RATING_PRED.iloc[2:])
