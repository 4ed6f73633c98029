"""Spark ML ALS: the distributed matrix factorisation (explicit ratings or implicit strength)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from contracts.names import ITEM_COL, RATING_COL, STRENGTH_COL, USER_COL
from jobs.models.common import FactorModel, id_arrays, index_of

DEFAULTS = {
    "rank": 32,
    "max_iter": 10,
    "reg_param": 0.05,
    "implicit_prefs": False,
    "alpha": 10.0,
    "seed": 42,
    "blocks": 4,
    "rating_min": 1.0,
    "rating_max": 5.0,
}


def as_bool(value: Any) -> bool:
    """Parse a boolean hyperparameter given as bool or CLI text."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


class SparkALS(FactorModel):
    """pyspark.ml ALS fitted in the shared Spark session; factors copied out as numpy.

    implicit_prefs=False: fits the explicit `rating` column (rows with a rating);
    implicit_prefs=True: fits the implicit `strength` of every interaction as confidence
    (Hu, Koren & Volinsky), which ranks rather than predicts ratings.
    State (FactorModel): `user_factors`, `item_factors` (float32, rank columns) row-aligned with
    sorted `user_ids` / `item_ids`; ALS has no bias terms, so `user_bias`/`item_bias` are zeros
    and `global_mean` 0: score = U . V exactly as Spark's `recommendForAllUsers` ranks.
    Params: rank, max_iter, reg_param, implicit_prefs, alpha, seed, blocks (user and item blocks).
    """

    family = "als_spark"
    defaults = DEFAULTS

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.params["implicit_prefs"] = as_bool(self.params["implicit_prefs"])

    def fit(self, interactions: pd.DataFrame) -> SparkALS:
        from pyspark.ml.recommendation import ALS

        from jobs.spark import get_spark

        p = self.params
        implicit = p["implicit_prefs"]
        value_col = STRENGTH_COL if implicit else RATING_COL
        rows = interactions[interactions[value_col].notna()]
        if rows.empty:
            raise ValueError(f"als_spark needs a non-empty {value_col!r} column to fit")
        self.user_ids, self.item_ids = id_arrays(rows[USER_COL], rows[ITEM_COL])
        frame = pd.DataFrame(
            {
                "u": index_of(self.user_ids, rows[USER_COL].to_numpy(np.int64)).astype(np.int32),
                "i": index_of(self.item_ids, rows[ITEM_COL].astype(str).to_numpy()).astype(
                    np.int32
                ),
                "v": rows[value_col].to_numpy(np.float32),
            }
        )
        spark = get_spark("train-als")
        data = spark.createDataFrame(frame).repartition(int(p["blocks"]))
        als = ALS(
            rank=int(p["rank"]),
            maxIter=int(p["max_iter"]),
            regParam=float(p["reg_param"]),
            implicitPrefs=implicit,
            alpha=float(p["alpha"]),
            seed=int(p["seed"]),
            numUserBlocks=int(p["blocks"]),
            numItemBlocks=int(p["blocks"]),
            userCol="u",
            itemCol="i",
            ratingCol="v",
            coldStartStrategy="drop",
        )
        fitted = als.fit(data)
        self.user_factors = self.factor_matrix(fitted.userFactors.toPandas(), len(self.user_ids))
        self.item_factors = self.factor_matrix(fitted.itemFactors.toPandas(), len(self.item_ids))
        self.user_bias = np.zeros(len(self.user_ids))
        self.item_bias = np.zeros(len(self.item_ids))
        self.global_mean = 0.0
        self.biased = 0.0
        self.rating_min, self.rating_max = float(p["rating_min"]), float(p["rating_max"])
        if not implicit:
            self.fallback_rating = float(frame["v"].mean())
        self.fit_seen(interactions, USER_COL, ITEM_COL)
        return self

    @property
    def predicts_ratings(self) -> bool:
        """Explicit ALS estimates ratings (RMSE/MAE apply); implicit ALS only ranks."""
        return not self.params["implicit_prefs"]

    def factor_matrix(self, factors: pd.DataFrame, n: int) -> np.ndarray:
        """Dense (n, rank) float32 matrix from Spark's (id, features) rows (missing ids = 0)."""
        out = np.zeros((n, int(self.params["rank"])), dtype=np.float32)
        if len(factors):
            out[factors["id"].to_numpy()] = np.stack(factors["features"].to_numpy())
        return out
