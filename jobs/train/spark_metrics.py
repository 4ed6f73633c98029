"""The metrics of jobs/train/metrics.py, same names, arguments and definitions, on Spark DataFrames.

Use these when the held-out split or the recommendations are too big for the driver; see the
module docstring of jobs.train.metrics for the exact definitions (they are tested to agree).
"""

from __future__ import annotations

import math

from contracts.names import ITEM_COL, PREDICTION_COL, RANK_COL, RATING_COL, USER_COL

SCORE_COL = "score"


def with_rank(rating_pred, k, col_user=USER_COL, col_rank=RANK_COL):
    """Recommendations with rank <= k (ranks derived from `score` when there is no rank)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    pred = rating_pred
    if col_rank not in pred.columns:
        window = Window.partitionBy(col_user).orderBy(F.col(SCORE_COL).desc())
        pred = pred.withColumn(col_rank, F.row_number().over(window))
    return pred.where(F.col(col_rank) <= k)


def per_user_ranking(
    rating_true, rating_pred, k=20, col_user=USER_COL, col_item=ITEM_COL, col_rank=RANK_COL
):
    """Spark frame, one row per truth user: n_rel, hits, precision, recall, ndcg, ap, hit."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    truth = rating_true.select(col_user, col_item).distinct()
    top = with_rank(rating_pred, k, col_user, col_rank).select(col_user, col_item, col_rank)
    top = top.dropDuplicates([col_user, col_item])
    hits = top.join(truth, [col_user, col_item], "inner")
    order = Window.partitionBy(col_user).orderBy(col_rank)
    hits = hits.withColumn("gain", 1.0 / F.log2(F.col(col_rank) + 1.0)).withColumn(
        "prec", F.row_number().over(order) / F.col(col_rank)
    )
    per_hit = hits.groupBy(col_user).agg(
        F.count("*").alias("hits"), F.sum("gain").alias("dcg"), F.sum("prec").alias("prec")
    )
    users = truth.groupBy(col_user).agg(F.count("*").alias("n_rel"))
    out = users.join(per_hit, col_user, "left").fillna(0, subset=["hits", "dcg", "prec"])
    ideal = F.least(F.col("n_rel"), F.lit(k))
    # Ideal DCG for n relevant = sum_{r=1..n} 1/log2(r+1): a small lookup array, 1-based.
    discounts = [0.0]
    for r in range(1, k + 1):
        discounts.append(discounts[-1] + 1.0 / math.log2(r + 1))
    idcg = F.element_at(F.array(*[F.lit(d) for d in discounts]), (ideal + 1).cast("int"))
    return out.select(
        col_user,
        "n_rel",
        "hits",
        (F.col("hits") / F.lit(k)).alias("precision"),
        (F.col("hits") / F.col("n_rel")).alias("recall"),
        (F.col("dcg") / idcg).alias("ndcg"),
        (F.col("prec") / ideal).alias("ap"),
        (F.col("hits") > 0).cast("double").alias("hit"),
    )


def _mean(rating_true, rating_pred, k, column, col_user, col_item, col_rank) -> float:
    from pyspark.sql import functions as F

    per_user = per_user_ranking(rating_true, rating_pred, k, col_user, col_item, col_rank)
    value = per_user.agg(F.avg(column)).first()[0]
    return float(value) if value is not None else 0.0


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
    """Distinct movies recommended in anyone's top k / catalogue size (int or Spark frame)."""
    size = catalog if isinstance(catalog, int) else catalog.select(col_item).distinct().count()
    if size <= 0:
        raise ValueError("catalog_coverage needs a non-empty catalogue")
    top = with_rank(rating_pred, k, col_user, col_rank)
    return top.select(col_item).distinct().count() / size


def item_popularity_percentile(train, col_user=USER_COL, col_item=ITEM_COL):
    """Spark frame (movie, pct): share of movies whose distinct-user count is <= its own."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    popularity = train.groupBy(col_item).agg(F.countDistinct(col_user).alias("pop"))
    per_level = popularity.groupBy("pop").agg(F.count("*").alias("n"))
    cumulative = Window.orderBy("pop").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    total = popularity.count()
    levels = per_level.withColumn("pct", F.sum("n").over(cumulative) / F.lit(total))
    return popularity.join(levels.select("pop", "pct"), "pop").select(col_item, "pct")


def popularity_bias(
    rating_pred, train, k=20, col_user=USER_COL, col_item=ITEM_COL, col_rank=RANK_COL
) -> float:
    """Mean popularity percentile (by training users) of the movies recommended in the top k."""
    from pyspark.sql import functions as F

    top = with_rank(rating_pred, k, col_user, col_rank)
    pct = item_popularity_percentile(train, col_user, col_item)
    value = top.join(pct, col_item, "left").agg(F.avg(F.coalesce("pct", F.lit(0.0)))).first()[0]
    return float(value) if value is not None else 0.0


def _errors(rating_true, rating_pred, col_user, col_item, col_rating, col_prediction):
    from pyspark.sql import functions as F

    both = rating_true.select(col_user, col_item, col_rating).join(
        rating_pred.select(col_user, col_item, col_prediction), [col_user, col_item], "inner"
    )
    return both.select((F.col(col_rating) - F.col(col_prediction)).cast("double").alias("err"))


def rmse(
    rating_true,
    rating_pred,
    col_user=USER_COL,
    col_item=ITEM_COL,
    col_rating=RATING_COL,
    col_prediction=PREDICTION_COL,
) -> float:
    """Root mean squared error of predicted vs true ratings on the shared pairs."""
    from pyspark.sql import functions as F

    row = (
        _errors(rating_true, rating_pred, col_user, col_item, col_rating, col_prediction)
        .agg(F.count("*"), F.avg(F.col("err") * F.col("err")))
        .first()
    )
    if not row[0]:
        raise ValueError("no (user, movie) pair is in both the truth and the predictions")
    return math.sqrt(row[1])


def mae(
    rating_true,
    rating_pred,
    col_user=USER_COL,
    col_item=ITEM_COL,
    col_rating=RATING_COL,
    col_prediction=PREDICTION_COL,
) -> float:
    """Mean absolute error of predicted vs true ratings on the shared pairs."""
    from pyspark.sql import functions as F

    row = (
        _errors(rating_true, rating_pred, col_user, col_item, col_rating, col_prediction)
        .agg(F.count("*"), F.avg(F.abs("err")))
        .first()
    )
    if not row[0]:
        raise ValueError("no (user, movie) pair is in both the truth and the predictions")
    return float(row[1])
