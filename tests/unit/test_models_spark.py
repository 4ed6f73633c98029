"""Models that fit in Spark: kNN's Spark engine equals its scipy engine; ALS round trip."""

from __future__ import annotations

import numpy as np
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
