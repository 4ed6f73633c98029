"""jobs.publish.topk returns exactly what a stable full sort returns: same items, order, ties
(the references are in tests/support/topk_reference.py)."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.publish import topk
from tests.support import topk_reference

pytestmark = pytest.mark.unit


def random_seen(rng: np.random.Generator, n_users: int, n_items: int, most: int) -> topk.SeenCSR:
    return topk.SeenCSR.from_lists(
        [rng.choice(n_items, rng.integers(0, most + 1), replace=False) for _ in range(n_users)]
    )


def reference(scorer: topk.FactorTopK, users: np.ndarray, seen: topk.SeenCSR) -> np.ndarray:
    """Naive answer on the very same float32 scores (so rounding cannot differ)."""
    scores = scorer.scores(users)[:, : scorer.n_items].copy()
    topk.exclude_seen(scores, seen, scorer.n_items)
    return topk_reference.naive_top_k(scores, scorer.k)


@pytest.mark.parametrize(
    ("n_items", "rank", "groups", "block"),
    [(3000, 16, 64, 50), (997, 8, 512, 7), (25, 4, 512, 3), (5000, 32, 100, 300)],
)
def test_matches_full_sort_on_random_factors(n_items, rank, groups, block):
    rng = np.random.default_rng(n_items)
    items = rng.standard_normal((n_items, rank)).astype(np.float32)
    bias = rng.standard_normal(n_items).astype(np.float32)
    users = rng.standard_normal((120, rank)).astype(np.float32)
    seen = random_seen(rng, len(users), n_items, most=min(n_items - 20, 300))
    scorer = topk.FactorTopK(items, bias, k=20, groups=groups, block=block)

    got, values = scorer.top_k(users, seen)

    want = np.vstack([reference(scorer, users[i : i + 1], seen.rows(i, i + 1)) for i in range(120)])
    np.testing.assert_array_equal(got, want)
    assert (np.diff(values, axis=1) <= 0).all()
    for row in range(len(users)):
        seen_row = set(seen.indices[seen.indptr[row] : seen.indptr[row + 1]].tolist())
        assert not seen_row & set(got[row].tolist())


def test_ties_break_by_lower_item_index():
    # Integer factors make many exactly equal scores; the answer must equal a stable sort.
    rng = np.random.default_rng(7)
    items = rng.integers(-1, 2, size=(2000, 3)).astype(np.float32)
    users = rng.integers(-1, 2, size=(64, 3)).astype(np.float32)
    seen = random_seen(rng, 64, 2000, most=50)
    scorer = topk.FactorTopK(items, k=20, groups=40, block=16)

    got, _ = scorer.top_k(users, seen)

    np.testing.assert_array_equal(got, reference(scorer, users, seen))


def test_all_equal_scores_give_the_lowest_unseen_indices():
    items = np.ones((300, 2), dtype=np.float32)
    users = np.ones((2, 2), dtype=np.float32)
    seen = topk.SeenCSR.from_lists([[0, 1, 5], []])
    got, _ = topk.FactorTopK(items, k=5, groups=30).top_k(users, seen)
    assert got.tolist() == [[2, 3, 4, 6, 7], [0, 1, 2, 3, 4]]


def test_users_with_too_few_unseen_items_are_padded_with_minus_one():
    items = np.arange(12, dtype=np.float32).reshape(6, 2)
    users = np.ones((2, 2), dtype=np.float32)
    seen = topk.SeenCSR.from_lists([[0, 1, 2, 3], list(range(6))])
    got, values = topk.FactorTopK(items, k=4).top_k(users, seen)
    assert got.tolist() == [[5, 4, -1, -1], [-1, -1, -1, -1]]
    assert np.isneginf(values[0, 2:]).all()


def test_negative_zero_ties_with_positive_zero():
    items = np.array([[0.0], [-0.0], [0.0], [1.0]], dtype=np.float32)
    users = np.array([[1.0], [-1.0]], dtype=np.float32)
    got, _ = topk.FactorTopK(items, k=3).top_k(users)
    assert got.tolist() == [[3, 0, 1], [0, 1, 2]]


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="NaN"):
        topk.FactorTopK(np.array([[np.nan]], dtype=np.float32))
    scorer = topk.FactorTopK(np.ones((30, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(b, 2\)"):
        scorer.top_k(np.ones((3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="out of range"):
        scorer.top_k(np.ones((1, 2), dtype=np.float32), topk.SeenCSR.from_lists([[30]]))


def test_sparse_top_k_orders_and_excludes_seen():
    # Row 0: scores on columns 4, 1, 7 (7 seen); row 1: nothing stored; row 2: tie 2.0 on 9 and 3.
    indptr = np.array([0, 3, 3, 6])
    indices = np.array([4, 1, 7, 9, 3, 0])
    data = np.array([0.5, 0.9, 5.0, 2.0, 2.0, 1.0])
    seen = topk.SeenCSR.from_lists([[7], [2], []])

    items, values = topk_reference.sparse_top_k(indptr, indices, data, k=3, seen=seen)

    assert items.tolist() == [[1, 4, -1], [-1, -1, -1], [3, 9, 0]]
    assert values[2].tolist() == [2.0, 2.0, 1.0]


def test_fill_from_ranking_skips_seen_and_listed():
    items = np.array([[5, -1, -1], [1, 2, 3]])
    seen = topk.SeenCSR.from_lists([[0], []])
    filled = topk.fill_from_ranking(items, np.array([0, 5, 1, 2]), seen)
    assert filled.tolist() == [[5, 1, 2], [1, 2, 3]]


def test_argpartition_baseline_agrees_without_ties():
    rng = np.random.default_rng(3)
    scores = rng.standard_normal((10, 500)).astype(np.float32)
    np.testing.assert_array_equal(
        topk_reference.argpartition_top_k(scores, 20), topk_reference.naive_top_k(scores, 20)
    )
