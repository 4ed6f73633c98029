"""Models that fit in Spark: kNN's Spark engine equals its scipy engine; ALS round trip; at
scale the rating model is explicit ALS, which agrees with Surprise's SVD on the same data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jobs.models import families
from tests.unit.test_models import tiny_frame

pytestmark = pytest.mark.integration


def test_item_knn_spark_engine_matches_scipy(spark):
    frame = tiny_frame(users=40)
    # Continuous weights so no two similarities tie at the top-M cut.
    frame["strength"] = np.random.default_rng(5).uniform(0.1, 2.0, len(frame))
    params = {"neighbours": 4, "shrink": 2.0, "weighting": "strength"}
    local = families.create("item_knn", engine="scipy", **params).fit(frame)
    distributed = families.create("item_knn", engine="spark", **params).fit(frame)
    assert (local.neighbours != 0).sum() == (distributed.neighbours != 0).sum() > 0
    np.testing.assert_allclose(
        local.neighbours.toarray(), distributed.neighbours.toarray(), rtol=1e-9, atol=1e-12
    )


def test_als_factors_score_like_spark_and_round_trip(spark, tmp_path):
    frame = tiny_frame(users=40)
    model = families.create("als_spark", rank=4, max_iter=5, blocks=2).fit(frame)
    assert model.user_factors.shape == (40, 4)
    assert model.item_factors.shape == (len(model.item_ids), 4)
    assert model.predicts_ratings
    recs = model.recommend([2, 3], k=3)
    u = np.searchsorted(model.user_ids, 2)
    best = model.item_ids[np.argsort(-(model.item_factors @ model.user_factors[u]))]
    seen = set(frame[frame.user_id == 2].movie_id)
    expected = [m for m in best if m not in seen][:3]
    assert recs[recs.user_id == 2].movie_id.tolist() == expected
    loaded = families.load("als_spark", model.save(tmp_path / "als"))
    np.testing.assert_array_equal(loaded.item_factors, model.item_factors)
    assert 1.0 <= loaded.predict([2, 999], ["a1", "a1"]).min()


def rated_world(users: int = 90, genres: int = 3, per_genre: int = 10, seed: int = 4):
    """Each user rates 16 random movies: own genre about 4.6 stars, others about 1.8 (sd 0.5)."""
    rng = np.random.default_rng(seed)
    rows = []
    t0 = pd.Timestamp("2001-01-01")
    for u in range(1, users + 1):
        for n, m in enumerate(rng.choice(genres * per_genre, 16, replace=False)):
            centre = 4.6 if m // per_genre == u % genres else 1.8
            r = float(np.clip(round(centre + rng.normal(0, 0.5)), 1, 5))
            rows.append((u, f"m{m}", r, 0.5 + r / 5, t0 + pd.Timedelta(hours=u * 20 + n)))
    return pd.DataFrame(rows, columns=["user_id", "movie_id", "rating", "strength", "event_time"])


def test_svd_becomes_explicit_als_above_the_documented_size(monkeypatch):
    monkeypatch.setenv("TRAIN_SPARK_ROWS", "1000")
    params = {"n_factors": 8, "n_epochs": 5, "lr_all": 0.01, "random_state": 1}
    assert families.at_scale("svd_surprise", params, 1000) == ("svd_surprise", params)
    assert families.at_scale("svd_surprise", params, 1001) == (
        "als_spark",
        {"rank": 8, "seed": 1, "implicit_prefs": False},
    )
    assert families.at_scale("item_knn", {}, 10**9) == ("item_knn", {})


def test_explicit_als_agrees_with_surprise_svd(spark, monkeypatch):
    """The family used at scale and the single-node reference, fitted on the same ratings."""
    frame = rated_world()
    held_out = np.random.default_rng(0).random(len(frame)) < 0.2
    train, test = frame[~held_out], frame[held_out]
    svd_params = {"n_factors": 4, "n_epochs": 40, "lr_all": 0.01}
    monkeypatch.setenv("TRAIN_SPARK_ROWS", "1")
    family, als_params = families.at_scale("svd_surprise", svd_params, len(train))
    models = {
        "svd": families.create("svd_surprise", **svd_params).fit(train),
        "als": families.create(family, **als_params, reg_param=0.1, blocks=2).fit(train),
        "pop": families.create("popularity", window_days=None).fit(train),
    }
    truth = test.rating.to_numpy()
    rmse = {
        name: float(
            np.sqrt(np.mean((models[name].predict(test.user_id, test.movie_id) - truth) ** 2))
        )
        for name in ("svd", "als")
    }
    naive = float(np.sqrt(np.mean((train.rating.mean() - truth) ** 2)))
    # Both learn the tastes (well under the mean predictor's 1.4). They are different fits
    # (ALS-WR without biases vs biased SGD) and the ratings carry noise of sd 0.5, so they
    # are held to 0.15 stars of each other (about 10% of the naive error), not to equality.
    assert max(rmse.values()) < 0.6 * naive, (rmse, naive)
    assert abs(rmse["svd"] - rmse["als"]) < 0.15, rmse
    users = np.arange(1, 91)
    tops = {name: m.recommend(users, k=5) for name, m in models.items()}
    sets = {
        name: recs.groupby("user_id").movie_id.agg(set).reindex(users)
        for name, recs in tops.items()
    }

    def overlap(a: str, b: str) -> float:
        return float(np.mean([len(x & y) / 5 for x, y in zip(sets[a], sets[b], strict=True)]))

    assert overlap("svd", "als") > 0.5
    assert overlap("svd", "als") > max(overlap("svd", "pop"), overlap("als", "pop")) + 0.2
    own = {
        name: float((recs.movie_id.str[1:].astype(int) // 10 == recs.user_id % 3).mean())
        for name, recs in tops.items()
    }
    assert min(own["svd"], own["als"]) > 0.8 > own["pop"] + 0.2, own


@pytest.fixture(scope="module")
def parquet_frame(spark, tmp_path_factory):
    """(pandas frame, the same rows read back by Spark from Parquet, as the train job reads)."""
    frame = tiny_frame(users=40)
    # Continuous weights so no two similarities tie at the top-M cut.
    frame["strength"] = np.random.default_rng(5).uniform(0.1, 2.0, len(frame))
    frame.loc[frame.index % 4 == 0, "rating"] = np.nan  # watched, not rated
    path = tmp_path_factory.mktemp("interactions") / "train"
    path.mkdir()
    frame.to_parquet(path / "part-0.parquet", coerce_timestamps="us", index=False)
    return frame, spark.read.parquet(str(path))


def test_item_knn_from_a_spark_dataframe_matches_scipy(parquet_frame):
    frame, sdf = parquet_frame
    params = {"neighbours": 4, "shrink": 2.0, "weighting": "strength", "max_history": 5}
    local = families.create("item_knn", engine="scipy", **params).fit(frame)
    distributed = families.create("item_knn", **params).fit(sdf)
    np.testing.assert_array_equal(local.item_ids, distributed.item_ids)
    np.testing.assert_array_equal(local.user_ids, distributed.user_ids)
    assert (local.neighbours != 0).sum() == (distributed.neighbours != 0).sum() > 0
    np.testing.assert_allclose(
        local.neighbours.toarray(), distributed.neighbours.toarray(), rtol=1e-9, atol=1e-12
    )
    np.testing.assert_allclose(local.seen.toarray(), distributed.seen.toarray(), rtol=1e-12)
    users = local.user_ids[:10]
    pd.testing.assert_frame_equal(local.recommend(users, k=5), distributed.recommend(users, k=5))


def test_als_from_a_spark_dataframe_equals_als_from_pandas(parquet_frame):
    frame, sdf = parquet_frame
    params = {"rank": 4, "max_iter": 5, "blocks": 2, "seed": 7}
    from_pandas = families.create("als_spark", **params).fit(frame)
    from_spark = families.create("als_spark", **params).fit(sdf)
    assert len(from_spark.user_ids) == 40  # every user rated something
    for name in ("user_ids", "item_ids", "user_factors", "item_factors"):
        np.testing.assert_array_equal(getattr(from_pandas, name), getattr(from_spark, name))
    assert (from_pandas.seen != from_spark.seen).nnz == 0
    assert from_spark.seen.nnz == len(frame)  # unrated interactions are seen too
    assert from_spark.fallback_rating == pytest.approx(frame.rating.mean())


def test_hybrid_from_a_spark_dataframe_gives_the_same_lists(parquet_frame):
    frame, sdf = parquet_frame
    # Binary kNN similarities tie; rounding may order ties either way at a top-M cut, so M
    # keeps every neighbour of the 21 movies here (the cut itself: the item_knn tests above).
    params = {
        "neighbours": 25,
        "shrink": 2.0,
        "max_history": 5,
        "blend": 0.5,
        "half_life_days": 2.0,
        "history_half_life_days": 1.0,
    }
    local = families.create("hybrid", engine="scipy", **params).fit(frame)
    distributed = families.create("hybrid", **params).fit(sdf)
    for name in ("neighbours", "seen"):
        np.testing.assert_allclose(
            getattr(local, name).toarray(), getattr(distributed, name).toarray(), rtol=1e-9
        )
    np.testing.assert_allclose(local.item_prior, distributed.item_prior, rtol=1e-9)
    assert 0 < local.item_prior.min() < local.item_prior.max() == 1.0
    users = local.user_ids
    left, right = local.recommend(users, k=5), distributed.recommend(users, k=5)
    pd.testing.assert_frame_equal(left.drop(columns="score"), right.drop(columns="score"))
    np.testing.assert_allclose(left.score, right.score, rtol=1e-9)


def test_hybrid_from_a_spark_dataframe_chooses_as_from_pandas(parquet_frame):
    frame, sdf = parquet_frame
    params = {"neighbours": 25, "shrink": 2.0, "blend_grid": [0.0, 0.5, 1.0]}
    local = families.create("hybrid", engine="scipy", **params).fit(frame)
    distributed = families.create("hybrid", **params).fit(sdf)
    assert "per_user" in local.validation["splits"]
    assert distributed.validation["chosen"] == pytest.approx(local.validation["chosen"])
    for name, split in local.validation["splits"].items():
        theirs = distributed.validation["splits"][name]
        assert theirs["fit_rows"] == split["fit_rows"] and theirs["users"] == split["users"]
        for mine, other in zip(split["grid"], theirs["grid"], strict=True):
            assert [g["ndcg_at_20"] for g in other] == pytest.approx(
                [g["ndcg_at_20"] for g in mine]
            )


def test_spark_validation_splits_equal_the_pandas_ones(spark):
    from jobs.train import splits

    frame = rated_world(users=30)
    # Times shuffled across users so the global cut leaves warm users on both sides.
    rng = np.random.default_rng(2)
    frame["event_time"] = pd.Timestamp("2001-01-01") + pd.to_timedelta(
        rng.permutation(len(frame)) * 3600 + rng.integers(0, 2, len(frame)), unit="s"
    )
    sdf = spark.createDataFrame(frame)

    def keys(part) -> list[tuple]:
        part = part if isinstance(part, pd.DataFrame) else part.toPandas()
        return sorted(zip(part.user_id, part.movie_id, strict=True))

    for fraction in (0.2, 0.25, 0.5):
        train, warm, _ = splits.temporal_split(frame, fraction)
        spark_train, spark_warm = splits.temporal_split_spark(sdf, fraction)
        assert keys(spark_train) == keys(train) and len(warm) > 0
        assert keys(spark_warm) == keys(warm)
        earlier, later = splits.per_user_later_split(frame, fraction)
        spark_earlier, spark_later = splits.per_user_later_split_spark(sdf, fraction)
        assert keys(spark_earlier) == keys(earlier) and keys(spark_later) == keys(later)


@pytest.mark.parametrize(
    ("family", "params"),
    [
        ("popularity", {"window_days": 0.5}),
        ("ease", {"reg": 10.0, "max_items": 15, "weighting": "strength"}),
    ],
)
def test_driver_side_families_fit_from_a_spark_dataframe_alike(parquet_frame, family, params):
    frame, sdf = parquet_frame
    local = families.create(family, **params).fit(frame)
    distributed = families.create(family, **params).fit(sdf)
    for name in local.array_attrs:
        left, right = getattr(local, name), getattr(distributed, name)
        if hasattr(left, "toarray"):
            left, right = left.toarray(), right.toarray()
        if left.dtype.kind == "f":
            np.testing.assert_allclose(left, right, rtol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(left, right, err_msg=name)
    users = local.user_ids[:10]
    pd.testing.assert_frame_equal(local.recommend(users, k=5), distributed.recommend(users, k=5))


def test_svd_from_a_spark_dataframe_fits_the_rated_rows(parquet_frame):
    frame, sdf = parquet_frame
    model = families.create("svd_surprise", n_factors=4, n_epochs=5).fit(sdf)
    rated = frame[frame.rating.notna()]
    assert model.global_mean == pytest.approx(rated.rating.mean())
    assert len(model.user_ids) == rated.user_id.nunique()
    assert model.seen.nnz == len(frame)  # unrated interactions are seen too


def test_nth_time_is_exact_when_the_quantile_guess_is_off(spark, monkeypatch):
    from jobs.train import splits

    rng = np.random.default_rng(8)
    micros = np.sort(rng.integers(0, 10**9, 300)) * 1000
    frame = spark.createDataFrame(pd.DataFrame({"event_time": pd.to_datetime(micros, unit="us")}))
    cls = type(frame)
    for position in (0, 150, 299):
        for offset in (-40, 0, 40):
            guess = float(micros[min(max(position + offset, 0), 299)])
            monkeypatch.setattr(cls, "approxQuantile", lambda *a, g=guess, **k: [g])
            assert splits.nth_time_spark(frame, position) == micros[position], (position, offset)
