"""Offline evaluation of a fitted model on a dataset's held-out (time-split) test interactions.

Metric keys (k = 20 by default), as stored in the registry and read by the gate:
`precision_at_20`, `recall_at_20`, `ndcg_at_20`, `map_at_20`, `hit_rate_at_20`,
`catalog_coverage`, `popularity_bias` (jobs.train.metrics defines each), `users` (test users
evaluated), and for rating models `rmse`, `mae` over the test rows that carry a rating.
Breakdowns (`by_group`): `history` (users by training interactions: new <= 5 < medium <= 20 <
heavy), and `gender` / `age` (bands <18, 18-24, 25-34, 35-44, 45-54, 55+) when the users
dimension (user_id, age, gender) is available.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from contracts.names import ITEM_COL, PREDICTION_COL, RANK_COL, RATING_COL, USER_COL, K
from jobs.models import spark_input
from jobs.models.base import Recommender
from jobs.models.common import SCORE_COL, empty_recommendations
from jobs.train import metrics

log = logging.getLogger(__name__)


HISTORY_BANDS = ((5, "new"), (20, "medium"), (np.inf, "heavy"))
AGE_BANDS = (
    (18, "<18"),
    (25, "18-24"),
    (35, "25-34"),
    (45, "35-44"),
    (55, "45-54"),
    (np.inf, "55+"),
)
RECOMMEND_BLOCK = 2048
GROUPS = ("history", "gender", "age")


def band(values: pd.Series, bands: Sequence[tuple[float, str]]) -> pd.Series:
    """Label each value with the first band whose upper bound it does not exceed (age: below)."""
    edges = [-np.inf] + [b for b, _ in bands]
    return pd.cut(values, bins=edges, labels=[name for _, name in bands], right=True).astype(str)


def age_band(age: pd.Series) -> pd.Series:
    """Age bands <18, 18-24, …, 55+ (upper bounds exclusive)."""
    edges = [-np.inf] + [b for b, _ in AGE_BANDS]
    labels = [name for _, name in AGE_BANDS]
    return pd.cut(age, bins=edges, labels=labels, right=False).astype(str)


def recommend_all(model: Recommender, users: np.ndarray, k: int) -> pd.DataFrame:
    """model.recommend over `users` in blocks (what scoring does, at evaluation size)."""
    frames = [
        model.recommend(users[i : i + RECOMMEND_BLOCK], k=k, exclude_seen=True)
        for i in range(0, len(users), RECOMMEND_BLOCK)
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def summarise(per_user: pd.DataFrame, k: int) -> dict[str, float]:
    """Means of the per-user ranking metrics under their registry names."""
    if per_user.empty:
        return {"users": 0}
    return {
        f"precision_at_{k}": float(per_user["precision"].mean()),
        f"recall_at_{k}": float(per_user["recall"].mean()),
        f"ndcg_at_{k}": float(per_user["ndcg"].mean()),
        f"map_at_{k}": float(per_user["ap"].mean()),
        f"hit_rate_at_{k}": float(per_user["hit"].mean()),
        "users": int(len(per_user)),
    }


def group_labels(
    users: pd.Series, history: pd.Series, users_dim: pd.DataFrame | None
) -> dict[str, pd.Series]:
    """Per evaluated user: history band (training interactions per user: `history`, indexed
    by user ID) and gender/age when known."""
    history = history.reindex(users, fill_value=0)
    labels = {"history": band(history, HISTORY_BANDS).set_axis(users.index)}
    if users_dim is not None and len(users_dim):
        dim = users_dim.drop_duplicates(USER_COL).set_index(USER_COL).reindex(users)
        if "gender" in dim:
            labels["gender"] = dim["gender"].fillna("unknown").astype(str).set_axis(users.index)
        if "age" in dim:
            ages = age_band(pd.to_numeric(dim["age"], errors="coerce"))
            labels["age"] = ages.where(dim["age"].notna().to_numpy(), "unknown").set_axis(
                users.index
            )
    return labels


def by_group(per_user: pd.DataFrame, k: int) -> dict[str, dict[str, dict[str, float]]]:
    """summarise() per label of every group column the per-user rows carry."""
    return {
        name: {str(label): summarise(part, k) for label, part in per_user.groupby(name)}
        for name in GROUPS
        if name in per_user
    }


def evaluate(
    model: Recommender,
    train: pd.DataFrame,
    test: pd.DataFrame,
    k: int = K,
    users_dim: pd.DataFrame | None = None,
    recommendations: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Overall, per-subpopulation and per-user metrics of `model` on `test` (fit on `train`).

    `per_user` (a frame: user_id, ndcg, … and the group labels) is what the gate's paired
    bootstrap resamples; it is not JSON and is stored beside the run, not in the registry.
    Spark DataFrames for `train` and `test` are measured by evaluate_spark.
    """
    if spark_input.is_spark(test):
        return evaluate_spark(model, train, test, k, users_dim)
    test_users = np.unique(test[USER_COL].to_numpy(np.int64))
    recs = recommendations if recommendations is not None else recommend_all(model, test_users, k)
    per_user = metrics.per_user_ranking(test, recs, k)
    history = train.groupby(USER_COL).size()
    per_user = per_user.assign(**group_labels(per_user[USER_COL], history, users_dim))
    overall = summarise(per_user, k)
    overall["catalog_coverage"] = metrics.catalog_coverage(recs, int(train[ITEM_COL].nunique()), k)
    overall["popularity_bias"] = metrics.popularity_bias(recs, train, k)
    if getattr(model, "predicts_ratings", False):
        rated = test[test[RATING_COL].notna()]
        if len(rated):
            pred = rated[[USER_COL, ITEM_COL]].assign(
                **{PREDICTION_COL: model.predict(rated[USER_COL], rated[ITEM_COL])}
            )
            overall["rmse"] = metrics.rmse(rated, pred)
            overall["mae"] = metrics.mae(rated, pred)
            overall["rated_test_rows"] = int(len(rated))
    return {"k": k, "overall": overall, "by_group": by_group(per_user, k), "per_user": per_user}


def evaluate_spark(
    model: Recommender, train, test, k: int = K, users_dim: pd.DataFrame | None = None
) -> dict[str, Any]:
    """evaluate() on Spark DataFrames, by jobs.train.spark_metrics (same names, same numbers).

    The driver holds what is per user (test user IDs, their top k, the per-user scores the
    gate resamples) and per movie; the test and training interactions stay in Spark.
    """
    from pyspark.sql import functions as F

    from jobs.train import spark_metrics

    spark = test.sparkSession
    (users,) = spark_input.column_arrays(test.select(USER_COL).distinct(), USER_COL)
    recs = recommend_all(model, np.sort(users.astype(np.int64)), k)
    recs = recs if len(recs) else empty_recommendations()
    schema = f"{USER_COL} long, {ITEM_COL} string, {RANK_COL} int, {SCORE_COL} double"
    recs_df = spark.createDataFrame(recs[[USER_COL, ITEM_COL, RANK_COL, SCORE_COL]], schema)
    per_user = spark_metrics.per_user_ranking(test, recs_df, k).toPandas()
    per_user = per_user.sort_values(USER_COL, ignore_index=True)
    history = train.groupBy(USER_COL).count().join(test.select(USER_COL).distinct(), USER_COL)
    counts = history.toPandas().set_index(USER_COL)["count"]
    per_user = per_user.assign(**group_labels(per_user[USER_COL], counts, users_dim))
    overall = summarise(per_user, k)
    catalog = train.select(ITEM_COL).distinct().count()
    overall["catalog_coverage"] = spark_metrics.catalog_coverage(recs_df, catalog, k)
    overall["popularity_bias"] = spark_metrics.popularity_bias(recs_df, train, k)
    if getattr(model, "predicts_ratings", False):
        rated = test.where(F.col(RATING_COL).isNotNull())
        n_rated = rated.count()
        if n_rated:
            pred = predictions(model, rated)
            overall["rmse"] = spark_metrics.rmse(rated, pred)
            overall["mae"] = spark_metrics.mae(rated, pred)
            overall["rated_test_rows"] = int(n_rated)
    return {"k": k, "overall": overall, "by_group": by_group(per_user, k), "per_user": per_user}


def predictions(model: Recommender, rated):
    """Spark frame (user, movie, prediction) of model.predict on the executors, by batch."""
    import copy

    from pyspark.sql import functions as F

    # The executors need the factors, not the seen matrix (12 bytes per interaction).
    predictor = copy.copy(model)
    predictor.seen = None

    def predict(batches):
        for batch in batches:
            yield batch.assign(
                **{PREDICTION_COL: predictor.predict(batch[USER_COL], batch[ITEM_COL])}
            )

    schema = f"{USER_COL} long, {ITEM_COL} string, {PREDICTION_COL} double"
    pairs = rated.select(F.col(USER_COL).cast("long").alias(USER_COL), ITEM_COL)
    return pairs.mapInPandas(predict, schema)


def pool(results: Sequence[dict[str, Any]], k: int = K) -> dict[str, Any]:
    """One result from the folds of a rolling protocol.

    Ranking metrics are means over every (fold, user) test unit, as one big test set would
    give; coverage, popularity bias, RMSE and MAE are the mean of the folds' values; `users`
    counts distinct users and `test_units` the (fold, user) pairs. One fold gives that fold's
    own numbers.
    """
    per_user = pd.concat(
        [r["per_user"].assign(fold=i) for i, r in enumerate(results)], ignore_index=True
    )
    overall = summarise(per_user, k)
    overall["users"] = int(per_user[USER_COL].nunique())
    overall["test_units"] = int(len(per_user))
    overall["folds"] = len(results)
    for name in ("catalog_coverage", "popularity_bias", "rmse", "mae"):
        values = [r["overall"][name] for r in results if name in r["overall"]]
        if values:
            overall[name] = float(np.mean(values))
    rated = [r["overall"]["rated_test_rows"] for r in results if "rated_test_rows" in r["overall"]]
    if rated:
        overall["rated_test_rows"] = int(sum(rated))
    return {"k": k, "overall": overall, "by_group": by_group(per_user, k), "per_user": per_user}


def per_user_path(dataset_path: str | Path, model_version: str) -> Path:
    """Where a model's per-user scores on a dataset's test units are kept for the gate."""
    from contracts import settings

    run = settings.load().reports_dir / Path(dataset_path).name
    return run / "per_user" / f"{model_version}.parquet"


def load_users_dim() -> pd.DataFrame | None:
    """users(user_id, age, gender) from the Postgres catalogue, None when it is not there."""
    try:
        from sqlalchemy import text

        from contracts import db

        with db.engine().connect() as conn:
            return pd.read_sql(text("SELECT user_id, age, gender FROM users"), conn)
    except Exception as exc:  # noqa: BLE001 - no users dimension is a designed fallback
        log.warning("no users dimension (%s): no gender/age breakdown", exc)
        return None


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """`python -m jobs.train.evaluate --dataset D --family F --artifact PATH`: metrics JSON."""
    from jobs.models import families
    from jobs.train import dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--family", required=True)
    parser.add_argument("--artifact", type=Path, required=True, help="saved model directory")
    parser.add_argument("--k", type=int, default=K)
    args = parser.parse_args(argv)
    train, test = dataset.load_split(args.dataset)
    model = families.load(args.family, args.artifact)
    result = evaluate(model, train, test, args.k, load_users_dim())
    result.pop("per_user")
    print(json.dumps(result, indent=2, sort_keys=True))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
