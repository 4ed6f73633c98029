"""Offline metrics on pandas frames; jobs/train/spark_metrics.py has the same names in Spark.

Conventions (both versions):
- `rating_true`: the held-out interactions (user, movie[, rating]); every movie a user has in
  it counts as relevant. `rating_pred`: recommendations (user, movie, rank 1 = best); when it
  has no rank column, ranks are derived from `score` (descending). Only rank <= k counts.
- Ranking metrics average over EVERY user in `rating_true`; a user without recommendations
  scores 0 (a model cannot improve its numbers by staying silent).
- precision@k = hits / k; recall@k = hits / |relevant|;
  ndcg@k = sum over hits of 1/log2(rank + 1), divided by the same sum for ranks 1..min(|rel|, k);
  map@k = (sum over hits of (hits up to that rank) / rank) / min(|relevant|, k);
  hit_rate@k = share of users with at least one hit.
- catalog_coverage = distinct movies recommended (rank <= k) / catalogue size.
- popularity_bias = mean over recommended rows of the movie's popularity percentile, where
  popularity = distinct training users and percentile(i) = share of catalogue movies whose
  popularity is <= popularity(i) (movies outside the training data: 0).
- rmse / mae over (user, movie) pairs present in both frames.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from contracts.names import ITEM_COL, PREDICTION_COL, RANK_COL, RATING_COL, USER_COL

SCORE_COL = "score"


def with_rank(
    rating_pred: pd.DataFrame,
    k: int,
    col_user: str = USER_COL,
    col_rank: str = RANK_COL,
) -> pd.DataFrame:
    """Recommendations with rank <= k (ranks derived from `score` when there is no rank)."""
    pred = rating_pred
    if col_rank not in pred.columns:
        pred = pred.sort_values([col_user, SCORE_COL], ascending=[True, False], kind="stable")
        pred = pred.assign(**{col_rank: pred.groupby(col_user).cumcount() + 1})
    return pred[pred[col_rank] <= k]


def per_user_ranking(
    rating_true: pd.DataFrame,
    rating_pred: pd.DataFrame,
    k: int = 20,
    col_user: str = USER_COL,
    col_item: str = ITEM_COL,
    col_rank: str = RANK_COL,
) -> pd.DataFrame:
    """One row per user of rating_true: precision, recall, ndcg, ap, hit at k (for breakdowns)."""
    truth = rating_true[[col_user, col_item]].drop_duplicates()
    top = with_rank(rating_pred, k, col_user, col_rank)[[col_user, col_item, col_rank]]
    top = top.drop_duplicates([col_user, col_item])
    hits = top.merge(truth, on=[col_user, col_item], how="inner")
    hits = hits.sort_values([col_user, col_rank], kind="stable")
    rank = hits[col_rank].to_numpy(np.float64)
    hits = hits.assign(
        gain=1.0 / np.log2(rank + 1.0),
        prec=(hits.groupby(col_user).cumcount().to_numpy() + 1.0) / rank,
    )
    per_hit = hits.groupby(col_user).agg(
        hits=("gain", "size"), dcg=("gain", "sum"), prec=("prec", "sum")
    )
    users = truth.groupby(col_user).size().rename("n_rel").to_frame()
    out = users.join(per_hit, how="left").fillna(0.0)
    n_ideal = np.minimum(out["n_rel"].to_numpy(), k).astype(np.int64)
    discounts = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    out["precision"] = out["hits"] / k
    out["recall"] = out["hits"] / out["n_rel"]
    out["ndcg"] = out["dcg"] / discounts[n_ideal]
    out["ap"] = out["prec"] / n_ideal
    out["hit"] = (out["hits"] > 0).astype(np.float64)
    return out[["n_rel", "hits", "precision", "recall", "ndcg", "ap", "hit"]].reset_index()


def _mean(rating_true, rating_pred, k, column, col_user, col_item, col_rank) -> float:
    per_user = per_user_ranking(rating_true, rating_pred, k, col_user, col_item, col_rank)
    return float(per_user[column].mean()) if len(per_user) else 0.0


def precision_at_k(
    rating_true, rating_pred, k=20, col_user=USER_COL, col_item=ITEM_COL, col_rank=RANK_COL
) -> float:
    """Mean over users of hits / k."""
    return _mean(rating_true, rating_pred, k, "precision", col_user, col_item, col_rank)


def recall_at_k(
    rating_true, rating_pred, k=20, col_user=USER_COL, col_item=ITEM_COL, col_rank=RANK_COL
) -> float:
    """Mean over users of hits / |relevant|."""
    return _mean(rating_true, rating_pred, k, "recall", col_user, col_item, col_rank)


def ndcg_at_k(
    rating_true, rating_pred, k=20, col_user=USER_COL, col_item=ITEM_COL, col_rank=RANK_COL
) -> float:
    """Mean over users of binary-relevance DCG@k / ideal DCG@k."""
    return _mean(rating_true, rating_pred, k, "ndcg", col_user, col_item, col_rank)


def map_at_k(
    rating_true, rating_pred, k=20, col_user=USER_COL, col_item=ITEM_COL, col_rank=RANK_COL
) -> float:
    """Mean over users of average precision at k (normalised by min(|relevant|, k))."""
    return _mean(rating_true, rating_pred, k, "ap", col_user, col_item, col_rank)


def hit_rate_at_k(
    rating_true, rating_pred, k=20, col_user=USER_COL, col_item=ITEM_COL, col_rank=RANK_COL
) -> float:
    """Share of users with at least one relevant movie in their top k."""
    return _mean(rating_true, rating_pred, k, "hit", col_user, col_item, col_rank)


def catalog_coverage(
    rating_pred, catalog, k=20, col_user=USER_COL, col_item=ITEM_COL, col_rank=RANK_COL
) -> float:
    """Distinct movies recommended in anyone's top k / catalogue size (int or list of IDs)."""
    size = catalog if isinstance(catalog, int | np.integer) else len(pd.unique(pd.Series(catalog)))
    if size <= 0:
        raise ValueError("catalog_coverage needs a non-empty catalogue")
    top = with_rank(rating_pred, k, col_user, col_rank)
    return float(top[col_item].nunique() / size)


def item_popularity_percentile(train, col_user=USER_COL, col_item=ITEM_COL) -> pd.Series:
    """Per movie of `train`: share of movies whose distinct-user count is <= its own."""
    popularity = train.groupby(col_item)[col_user].nunique()
    return popularity.rank(method="max", pct=True)


def popularity_bias(
    rating_pred, train, k=20, col_user=USER_COL, col_item=ITEM_COL, col_rank=RANK_COL
) -> float:
    """Mean popularity percentile (by training users) of the movies recommended in the top k."""
    top = with_rank(rating_pred, k, col_user, col_rank)
    if top.empty:
        return 0.0
    pct = item_popularity_percentile(train, col_user, col_item)
    return float(top[col_item].map(pct).fillna(0.0).mean())


def _joined(rating_true, rating_pred, col_user, col_item, col_rating, col_prediction):
    both = rating_true[[col_user, col_item, col_rating]].merge(
        rating_pred[[col_user, col_item, col_prediction]], on=[col_user, col_item], how="inner"
    )
    if both.empty:
        raise ValueError("no (user, movie) pair is in both the truth and the predictions")
    return both[col_rating].to_numpy(np.float64) - both[col_prediction].to_numpy(np.float64)


def rmse(
    rating_true,
    rating_pred,
    col_user=USER_COL,
    col_item=ITEM_COL,
    col_rating=RATING_COL,
    col_prediction=PREDICTION_COL,
) -> float:
    """Root mean squared error of predicted vs true ratings on the shared pairs."""
    err = _joined(rating_true, rating_pred, col_user, col_item, col_rating, col_prediction)
    return float(np.sqrt(np.mean(err**2)))


def mae(
    rating_true,
    rating_pred,
    col_user=USER_COL,
    col_item=ITEM_COL,
    col_rating=RATING_COL,
    col_prediction=PREDICTION_COL,
) -> float:
    """Mean absolute error of predicted vs true ratings on the shared pairs."""
    err = _joined(rating_true, rating_pred, col_user, col_item, col_rating, col_prediction)
    return float(np.mean(np.abs(err)))
