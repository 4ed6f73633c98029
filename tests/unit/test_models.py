"""Model families on a tiny planted-taste frame: interface, exclusion, save/load round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jobs.models import families
from jobs.models.common import top_k_dense

pytestmark = pytest.mark.unit


def tiny_frame(users: int = 60, seed: int = 3) -> pd.DataFrame:
    """Two tastes: even users like movies a0..a9, odd users b0..b9; one shared blockbuster."""
    rng = np.random.default_rng(seed)
    rows = []
    t0 = pd.Timestamp("2001-01-01")
    for u in range(1, users + 1):
        own = "a" if u % 2 == 0 else "b"
        picks = [f"{own}{j}" for j in rng.choice(10, 6, replace=False)] + ["hit"]
        for n, movie in enumerate(picks):
            rating = 5.0 if movie.startswith(own) else 3.0
            rows.append((u, movie, rating, 0.5 + rating / 5, t0 + pd.Timedelta(hours=u * 10 + n)))
    return pd.DataFrame(rows, columns=["user_id", "movie_id", "rating", "strength", "event_time"])


FAST = {
    "popularity": {"window_days": None},
    "svd_surprise": {"n_factors": 4, "n_epochs": 30, "lr_all": 0.01},
    "item_knn": {"neighbours": 5, "shrink": 1.0},
    "ease": {"reg": 10.0},
}


@pytest.fixture(scope="module")
def frame():
    return tiny_frame()


@pytest.mark.parametrize("family", sorted(FAST))
def test_recommend_excludes_seen_and_round_trips(family, frame, tmp_path):
    model = families.create(family, **FAST[family]).fit(frame)
    users = np.array([2, 3, 4, 999])
    recs = model.recommend(users, k=5)
    assert list(recs.columns) == ["user_id", "movie_id", "rank", "score"]
    assert 999 not in set(recs.user_id) or family == "popularity"
    seen = set(zip(frame.user_id, frame.movie_id, strict=True))
    assert not any((u, m) in seen for u, m in zip(recs.user_id, recs.movie_id, strict=True))
    for _, group in recs.groupby("user_id"):
        assert group["rank"].tolist() == list(range(1, len(group) + 1))
        assert group["score"].is_monotonic_decreasing
        assert group["movie_id"].is_unique
    loaded = families.load(family, model.save(tmp_path / family))
    again = loaded.recommend(users, k=5)
    pd.testing.assert_frame_equal(recs, again)
    assert loaded.memory_bytes() == model.memory_bytes() > 0


@pytest.mark.parametrize("family", ["item_knn", "ease"])
def test_personal_models_recover_the_planted_taste(family, frame):
    model = families.create(family, **FAST[family]).fit(frame)
    recs = model.recommend(np.arange(1, 61), k=3)
    own = np.where(recs.user_id % 2 == 0, "a", "b")
    assert (recs.movie_id.str[0] == own).mean() > 0.9


def test_popularity_ranks_by_window_users_and_serves_unknown_users(frame):
    model = families.create("popularity", window_days=None).fit(frame)
    assert model.item_ids[0] == "hit"
    recs = model.recommend([12345], k=3)
    assert recs.movie_id.iloc[0] == "hit"
    assert len(model.recommend([2], k=100)) == 21 - 7  # 21 movies, 7 seen


def test_item_knn_keeps_at_most_m_neighbours(frame):
    model = families.create("item_knn", neighbours=3).fit(frame)
    per_row = np.diff(model.neighbours.indptr)
    assert per_row.max() <= 3
    assert model.neighbours.diagonal().sum() == 0


def test_svd_predict_matches_surprise_estimate(frame):
    from surprise import SVD, Dataset, Reader

    model = families.create("svd_surprise", **FAST["svd_surprise"]).fit(frame)
    data = Dataset.load_from_df(
        frame[["user_id", "movie_id", "rating"]], Reader(rating_scale=(1, 5))
    )
    algo = SVD(n_factors=4, n_epochs=30, lr_all=0.01, random_state=42)
    algo.fit(data.build_full_trainset())
    pairs = [(2, "a1"), (3, "b2"), (999, "a1"), (2, "unknown")]
    ours = model.predict([u for u, _ in pairs], [m for _, m in pairs])
    theirs = [algo.predict(u, m).est for u, m in pairs]
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_top_k_dense_orders_and_excludes():
    import scipy.sparse as sp

    scores = np.array([[0.1, 0.9, 0.5, 0.7], [1.0, 2.0, 3.0, 4.0]])
    seen = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 0]]))
    items, best = top_k_dense(scores, 2, seen)
    assert items.tolist() == [[3, 2], [3, 2]]
    assert best.tolist() == [[0.7, 0.5], [4.0, 3.0]]


def test_unknown_family_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model family 'nope'"):
        families.get("nope")
