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


# Neighbours >= the 100 movies: binary similarities tie, and rounding (scipy vs Spark sums)
# could order ties either way at a top-M cut (the cut itself: tests/unit/test_models_spark.py).
SCALE_PARAMS = {
    "svd_surprise": {"n_factors": 8},
    "item_knn": {"neighbours": 100, "shrink": 5.0},
    "hybrid": {
        "neighbours": 100,
        "shrink": 5.0,
        "blend": 0.2,
        "half_life_days": 7.0,
        "history_half_life_days": 7.0,
    },
}


@pytest.fixture(scope="module")
def planted_datasets(spark, tmp_path_factory):
    """{protocol: dataset path} of one planted world: 'global' (one fold) and 'rolling' (the
    global cut leaves 197 warm test users, below the default 500: six folds)."""
    from jobs.train import dataset
    from tests.integration.test_dataset import planted_world, write_snapshot

    watch, rate, _, _ = planted_world(users=200, per_user=15, seed=11)
    root = tmp_path_factory.mktemp("lake")
    snap = write_snapshot(root, "s1", watch, rate)
    build = {"window_days": None, "spark": spark}
    return {
        "global": dataset.build_dataset([snap], root / "global", min_test_users=1, **build),
        "rolling": dataset.build_dataset([snap], root / "rolling", **build),
    }


def test_spark_folds_hold_the_rows_of_the_pandas_folds(spark, planted_datasets):
    from jobs.train import dataset

    path = planted_datasets["rolling"]
    assert dataset.read_manifest(path)["evaluation"]["protocol"] == "rolling"
    local, distributed = dataset.load_folds(path), dataset.load_folds_spark(spark, path)
    assert len(local) == len(distributed) > 1

    def keys(frame) -> list[tuple]:
        return sorted(zip(frame.user_id, frame.movie_id, frame.event_time, strict=True))

    for (train, test), (train_df, test_df) in zip(local, distributed, strict=True):
        assert keys(train_df.toPandas()) == keys(train)
        assert keys(test_df.toPandas()) == keys(test)
    everything = dataset.load_interactions_spark(spark, path)
    assert everything.count() == len(dataset.load_interactions(path))


class DriverFrames:
    """Rows of every pandas frame Spark hands the driver (DataFrame.toPandas)."""

    def __init__(self, monkeypatch, spark):
        self.rows: list[int] = []
        DataFrame = type(spark.range(1))  # the session's class (pyspark.sql.classic)
        original = DataFrame.toPandas
        assert "toPandas" in vars(DataFrame)

        def recorded(df):
            out = original(df)
            self.rows.append(len(out))
            return out

        monkeypatch.setattr(DataFrame, "toPandas", recorded)


def no_pandas_load(*args, **kwargs):
    raise AssertionError("training at scale loaded the dataset into pandas")


def test_train_job_above_the_size_never_loads_interactions_into_pandas(
    spark, planted_datasets, postgres, tmp_path, monkeypatch
):
    from jobs.train import dataset, registry, train
    from tests.integration.test_registry import private_registry

    planted_dataset = planted_datasets["global"]
    manifest = dataset.read_manifest(planted_dataset)
    counts = manifest["counts"]
    monkeypatch.setenv("RECS_VAR_DIR", str(tmp_path / "var"))
    with private_registry(postgres) as url:
        small = train.train(
            planted_dataset, "item_knn", SCALE_PARAMS["item_knn"], url, tmp_path / "m"
        )
        monkeypatch.setenv("TRAIN_SPARK_ROWS", str(counts["rated"] // 2))
        for name in ("load_interactions", "load_folds", "load_split", "load_cold"):
            monkeypatch.setattr(dataset, name, no_pandas_load)
        monkeypatch.setattr(pd, "read_parquet", no_pandas_load)
        frames = DriverFrames(monkeypatch, spark)
        versions = {
            family: train.train(planted_dataset, family, params, url, tmp_path / "m")
            for family, params in SCALE_PARAMS.items()
        }
        refitted = train.refit(planted_dataset, versions["item_knn"], url, tmp_path / "m")
        # What the refit and the fallback popularity list (pipeline.refresh_popularity) read.
        everything = train.all_interactions(planted_dataset)
        rows = {family: registry.get(v, url) for family, v in versions.items()}
        small_row = registry.get(small, url)
        refit_row = registry.get(refitted, url)
    # The rating model at this size is explicit ALS, and it predicts ratings.
    assert versions["svd_surprise"].startswith("als_spark-")
    assert rows["svd_surprise"]["hyperparameters"]["implicit_prefs"] is False
    assert rows["svd_surprise"]["metrics"]["rmse"] > 0
    # The kNN computed in Spark from Parquet scores as the one computed with scipy.
    for name in ("ndcg_at_20", "precision_at_20", "catalog_coverage", "popularity_bias"):
        assert rows["item_knn"]["metrics"][name] == pytest.approx(small_row["metrics"][name])
    assert rows["hybrid"]["metrics"]["ndcg_at_20"] > 0.2
    assert refit_row["trained_on"]["rows"] == counts["interactions"] == everything.count()
    # Per-user frames only (the per-user scores, history counts): none interactions-sized.
    assert frames.rows and max(frames.rows) <= counts["users"] < counts["interactions"] / 10
