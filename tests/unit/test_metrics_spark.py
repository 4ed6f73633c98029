"""The Spark metrics give the same hand-worked answers as the pandas ones (same names)."""

from __future__ import annotations

import pytest

from jobs.train import spark_metrics
from tests.unit.test_metrics import (
    COVERAGE,
    EXPECTED,
    MAE,
    POP_BIAS,
    PRED,
    RATING_PRED,
    RMSE,
    TRAIN,
    TRUTH,
    K,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def frames(spark):
    return {
        "truth": spark.createDataFrame(TRUTH),
        "pred": spark.createDataFrame(PRED),
        "train": spark.createDataFrame(TRAIN),
        "ratings": spark.createDataFrame(RATING_PRED),
    }


def test_spark_ranking_metrics_match_hand_worked_answers(frames):
    for name, expected in EXPECTED.items():
        got = getattr(spark_metrics, name)(frames["truth"], frames["pred"], k=K)
        assert got == pytest.approx(expected), name


def test_spark_coverage_bias_and_rating_errors(frames):
    assert spark_metrics.catalog_coverage(frames["pred"], 10, k=K) == pytest.approx(COVERAGE)
    assert spark_metrics.popularity_bias(frames["pred"], frames["train"], k=K) == pytest.approx(
        POP_BIAS
    )
    assert spark_metrics.rmse(frames["truth"], frames["ratings"]) == pytest.approx(RMSE)
    assert spark_metrics.mae(frames["truth"], frames["ratings"]) == pytest.approx(MAE)


def test_spark_rank_derived_from_score(frames, spark):
    scored = PRED.drop(columns="rank").assign(score=[9.0, 8.0, 7.0, 6.0, 3.0, 2.0, 1.0])
    got = spark_metrics.ndcg_at_k(frames["truth"], spark.createDataFrame(scored), k=K)
    assert got == pytest.approx(EXPECTED["ndcg_at_k"])
