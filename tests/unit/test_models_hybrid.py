"""The hybrid family: kNN + decayed-popularity blend, validation choice, scoring, round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jobs.models import families
from jobs.models.hybrid import HybridKNN, decay, worst_merit
from tests.unit.test_models import tiny_frame

pytestmark = pytest.mark.unit

FIXED = {"neighbours": 5, "shrink": 1.0, "half_life_days": 2.0}


def trending_frame() -> pd.DataFrame:
    """tiny_frame's two tastes, plus a movie `new` that many users watched in the last day."""
    frame = tiny_frame()
    newest = frame["event_time"].max()
    late = [(u, "new", 4.0, 1.3, newest + pd.Timedelta(minutes=u)) for u in range(1, 61) if u % 3]
    extra = pd.DataFrame(late, columns=frame.columns)
    return pd.concat([frame, extra], ignore_index=True)


def test_blend_one_is_trending_popularity_and_blend_zero_is_knn():
    frame = trending_frame()
    trend = HybridKNN(**FIXED, blend=1.0).fit(frame)
    knn = HybridKNN(**FIXED, blend=0.0).fit(frame)
    # User 3 (taste b) has not seen `new`: pure trending puts it first, pure kNN ranks own taste.
    top_trend = trend.recommend([3], k=3)["movie_id"].tolist()
    top_knn = knn.recommend([3], k=3)["movie_id"].tolist()
    assert top_trend[0] == "new"
    assert all(m.startswith("b") for m in top_knn), top_knn
    seen = set(frame.loc[frame.user_id == 3, "movie_id"])
    assert not seen & set(top_trend + top_knn)


def test_prior_decays_by_half_life():
    t0 = pd.Timestamp("2010-01-10")
    frame = pd.DataFrame(
        {
            "user_id": [1, 2, 3, 4],
            "movie_id": ["old", "new", "x", "x"],
            "event_time": [t0 - pd.Timedelta(days=2), t0, t0, t0],
        }
    )
    model = HybridKNN(neighbours=3, shrink=0.0, half_life_days=2.0, blend=1.0).fit(frame)
    prior = dict(zip(model.item_ids, model.item_prior, strict=True))
    assert prior["x"] == pytest.approx(1.0)
    assert prior["new"] == pytest.approx(0.5)
    assert prior["old"] == pytest.approx(0.25)  # one half-life older: half of `new`
    assert decay(np.array([0.0, 3.0]), 3.0) == pytest.approx([1.0, 0.5])


def test_auto_chooses_on_both_validation_splits_and_records_the_grids():
    frame = trending_frame()
    model = HybridKNN(neighbours=5, shrink=1.0, blend_grid=[0.0, 1.0], half_life_grid=[1, 7])
    model.fit(frame)
    splits = model.validation["splits"]
    assert set(splits) == {"global", "per_user"}
    history = model.history_half_life_days
    assert history in (1.0, 7.0, 30.0, None)
    h = [g["history_half_life_days"] for g in splits["global"]["history_grid"]].index(history)
    grids = [split["grid"][h] for split in splits.values()]
    assert all(len(grid) == 4 and split["validation_rows"] > 0 for grid, split in
               zip(grids, splits.values(), strict=True))  # fmt: skip

    def merit(grid, blend, half_life):
        best = max(g["ndcg_at_20"] for g in grid)
        point = next(g for g in grid if (g["blend"], g["half_life_days"]) == (blend, half_life))
        return point["ndcg_at_20"] / best

    # The chosen point has the best worst-case merit over the two splits.
    chosen = min(merit(grid, model.blend, model.half_life_days) for grid in grids)
    others = [min(merit(grid, b, hl) for grid in grids) for b in (0.0, 1.0) for hl in (1.0, 7.0)]
    assert chosen == pytest.approx(max(others))
    assert model.validation["chosen"]["worst_merit"] == pytest.approx(chosen)


def test_worst_merit_prefers_the_point_that_holds_up_on_both_splits():
    time_cut = [{"ndcg_at_20": 0.20}, {"ndcg_at_20": 0.18}, {"ndcg_at_20": 0.10}]
    per_user = [{"ndcg_at_20": 0.05}, {"ndcg_at_20": 0.09}, {"ndcg_at_20": 0.10}]
    # Best on the time cut alone is point 0, on the per-user split point 2; point 1 holds up.
    assert worst_merit([time_cut, per_user]) == pytest.approx([0.5, 0.9, 0.5])


def test_history_weights_decay_from_each_users_latest_event():
    frame = trending_frame()
    flat = HybridKNN(**FIXED, blend=0.5, history_half_life_days=None).fit(frame)
    assert np.allclose(flat.seen.data, 1.0)
    decayed = HybridKNN(**FIXED, blend=0.5, history_half_life_days=1.0).fit(frame)
    assert decayed.seen.max() == pytest.approx(1.0) and decayed.seen.data.min() > 0
    assert decayed.validation == {}  # nothing was left to choose


def test_too_little_data_for_validation_falls_back_and_says_so():
    frame = pd.DataFrame(
        {"user_id": [1, 2], "movie_id": ["a", "b"], "event_time": pd.to_datetime(["2001", "2002"])}
    )
    model = HybridKNN(neighbours=3).fit(frame)
    assert "skipped" in model.validation
    assert (model.blend, model.half_life_days) == (0.9, 7.0)


def test_score_block_matches_recommend_and_round_trips(tmp_path):
    frame = trending_frame()
    model = families.create("hybrid", **FIXED, blend=0.5).fit(frame)
    scores = model.score_block(np.arange(len(model.user_ids)))
    assert scores.shape == (len(model.user_ids), len(model.item_ids))
    assert np.isfinite(scores).all()
    users = np.array([2, 3, 999])
    before = model.recommend(users, k=5)
    assert set(before.user_id) == {2, 3}
    loaded = families.load("hybrid", model.save(tmp_path / "m"))
    assert loaded.blend == 0.5 and loaded.half_life_days == 2.0
    pd.testing.assert_frame_equal(before, loaded.recommend(users, k=5))
    # Every training interaction stays in `seen` (weights floored above 0), so none is re-shown.
    assert model.seen.nnz == len(frame.drop_duplicates(["user_id", "movie_id"]))


def test_bad_parameters_are_clear_errors():
    frame = tiny_frame()
    with pytest.raises(ValueError, match="blend"):
        HybridKNN(blend=1.5).fit(frame)
    with pytest.raises(ValueError, match="half_life_days"):
        HybridKNN(half_life_days=0).fit(frame)
    with pytest.raises(ValueError, match="empty"):
        HybridKNN().fit(frame.iloc[:0])


def test_batch_scoring_job_gives_the_same_lists_as_recommend(tmp_path):
    from jobs.publish import score

    model = HybridKNN(**FIXED, blend=0.5).fit(trending_frame())
    saved = model.save(tmp_path / "model")
    score.prepare_bundle(model, saved, tmp_path / "bundle")
    rows = score.BlockScorer(tmp_path / "bundle", k=5).score_rows(0, len(model.user_ids))
    recs = model.recommend(model.user_ids, k=5)
    expected = recs.groupby("user_id")["movie_id"].agg(list)
    got = rows.set_index("user_id")["items"].map(list)
    assert got.to_dict() == expected.reindex(got.index).to_dict()
