"""Spark ML ALS: the distributed matrix factorisation (explicit ratings or implicit strength)."""

from __future__ import annotations

from typing import Any

import numpy as np

from contracts.names import ITEM_COL, RATING_COL, STRENGTH_COL, USER_COL
from jobs.models import spark_input
from jobs.models.common import FactorModel

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

    def fit(self, interactions) -> SparkALS:
        """Fit on a pandas frame (uploaded to Spark) or a Spark DataFrame of interactions."""
        from jobs.spark import get_spark

        if not spark_input.is_spark(interactions):
            spark = get_spark("train-als")
            interactions = spark.createDataFrame(interactions[[USER_COL, ITEM_COL, self.value_col]])
        return self.fit_spark(interactions)

    @property
    def value_col(self) -> str:
        """The column ALS fits: the implicit strength, or the explicit rating."""
        return STRENGTH_COL if self.params["implicit_prefs"] else RATING_COL

    def fit_spark(self, interactions) -> SparkALS:
        """Fit on a Spark DataFrame; the driver collects IDs, factors and the seen CSR only."""
        from pyspark.ml.recommendation import ALS
        from pyspark.sql import functions as F

        p = self.params
        value = F.col(self.value_col)
        # A pandas frame's missing values arrive as NaN, the Parquet parts' as null.
        rows = interactions.where(value.isNotNull() & ~F.isnan(value))
        self.user_ids, self.item_ids = spark_input.id_arrays(rows)
        if len(self.user_ids) == 0:
            raise ValueError(f"als_spark needs a non-empty {self.value_col!r} column to fit")
        data = spark_input.with_index(rows, self.user_ids, self.item_ids).select(
            spark_input.USER_INDEX,
            spark_input.ITEM_INDEX,
            F.col(self.value_col).cast("float").alias(spark_input.VALUE),
        )
        als = ALS(
            rank=int(p["rank"]),
            maxIter=int(p["max_iter"]),
            regParam=float(p["reg_param"]),
            implicitPrefs=p["implicit_prefs"],
            alpha=float(p["alpha"]),
            seed=int(p["seed"]),
            numUserBlocks=int(p["blocks"]),
            numItemBlocks=int(p["blocks"]),
            userCol=spark_input.USER_INDEX,
            itemCol=spark_input.ITEM_INDEX,
            ratingCol=spark_input.VALUE,
            coldStartStrategy="drop",
        )
        fitted = als.fit(data.repartition(int(p["blocks"])))
        self.user_factors = self.factor_matrix(fitted.userFactors, len(self.user_ids))
        self.item_factors = self.factor_matrix(fitted.itemFactors, len(self.item_ids))
        self.user_bias = np.zeros(len(self.user_ids))
        self.item_bias = np.zeros(len(self.item_ids))
        self.global_mean = 0.0
        self.biased = 0.0
        self.rating_min, self.rating_max = float(p["rating_min"]), float(p["rating_max"])
        if not p["implicit_prefs"]:
            self.fallback_rating = float(data.agg(F.avg(spark_input.VALUE)).first()[0])
        shape = (len(self.user_ids), len(self.item_ids))
        self.seen = spark_input.csr(
            spark_input.with_index(interactions, self.user_ids, self.item_ids), shape
        )
        return self

    @property
    def predicts_ratings(self) -> bool:
        """Explicit ALS estimates ratings (RMSE/MAE apply); implicit ALS only ranks."""
        return not self.params["implicit_prefs"]

    def factor_matrix(self, factors, n: int) -> np.ndarray:
        """Dense (n, rank) float32 matrix from Spark's (id, features) rows (missing ids = 0)."""
        out = np.zeros((n, int(self.params["rank"])), dtype=np.float32)
        table = factors.select("id", "features").toArrow()
        if table.num_rows:
            ids = table.column("id").to_numpy()
            # Every row has `rank` features: the flattened list column reshapes without copies.
            flat = table.column("features").combine_chunks().flatten().to_numpy()
            out[ids] = flat.reshape(len(ids), out.shape[1])
        return out
