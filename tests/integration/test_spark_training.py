"""Training at scale: evaluation on Spark DataFrames (jobs.train.spark_metrics) gives the numbers
the pandas evaluation gives on the same small data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jobs.models import families
from jobs.train import evaluate
from tests.unit.test_models_spark import rated_world

pytestmark = pytest.mark.integration


def test_spark_evaluation_matches_pandas_evaluation(spark):
    frame = rated_world()
    frame.loc[frame.index % 5 == 0, "rating"] = np.nan  # watched, not rated
    # 4 to 13 training interactions per user: the history bands "new" and "medium".
    later = frame.groupby("user_id").cumcount() >= 4 + frame.user_id % 10
    train, test = frame[~later], frame[later]
    model = families.create("svd_surprise", n_factors=4, n_epochs=30, lr_all=0.01).fit(train)
    users_dim = pd.DataFrame(
        {"user_id": np.arange(1, 91), "age": np.arange(1, 91) % 60 + 10, "gender": "F"}
    )
    local = evaluate.evaluate(model, train, test, k=5, users_dim=users_dim)
    at_scale = evaluate.evaluate(
        model, spark.createDataFrame(train), spark.createDataFrame(test), 5, users_dim
    )
    assert set(at_scale["overall"]) == set(local["overall"]) >= {"rmse", "mae", "ndcg_at_5"}
    for name, value in local["overall"].items():
        assert at_scale["overall"][name] == pytest.approx(value, rel=1e-9), name
    assert 0 < local["overall"]["ndcg_at_5"] < 1 and local["overall"]["rmse"] > 0
    assert at_scale["by_group"].keys() == local["by_group"].keys()
    for group, labels in local["by_group"].items():
        assert at_scale["by_group"][group].keys() == labels.keys()
        for label, values in labels.items():
            assert at_scale["by_group"][group][label] == pytest.approx(values), (group, label)
    assert set(local["by_group"]) == {"history", "gender", "age"}
    assert set(local["by_group"]["history"]) == {"new", "medium"}
    columns = list(local["per_user"].columns)
    pd.testing.assert_frame_equal(
        at_scale["per_user"][columns], local["per_user"], check_dtype=False
    )
