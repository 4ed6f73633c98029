"""Surprise's SVD (biased matrix factorisation by SGD): the single-node reference rating model."""

from __future__ import annotations

import numpy as np
import pandas as pd

from contracts.names import ITEM_COL, RATING_COL, USER_COL
from jobs.models import spark_input
from jobs.models.common import FactorModel, id_arrays, index_of

DEFAULTS = {
    "n_factors": 100,
    "n_epochs": 20,
    "lr_all": 0.005,
    "reg_all": 0.02,
    "random_state": 42,
    "rating_min": 1.0,
    "rating_max": 5.0,
}


class SurpriseSVD(FactorModel):
    """surprise.SVD fitted on the explicit ratings (rows with a rating) of the interactions.

    After fit the Surprise objects are dropped; the state is FactorModel's arrays:
    `user_factors` = pu, `item_factors` = qi, `user_bias` = bu, `item_bias` = bi,
    `global_mean` = mu, rows aligned with sorted `user_ids` / `item_ids` (users and movies
    with at least one rating). predict() reproduces surprise.SVD.estimate + clipping exactly.
    Params: n_factors, n_epochs, lr_all, reg_all, random_state (Surprise's names) and
    rating_min/rating_max (the rating scale, default 1..5).
    """

    family = "svd_surprise"
    defaults = DEFAULTS
    predicts_ratings = True

    def fit(self, interactions) -> SurpriseSVD:
        """Fit on a pandas frame, or on the rated rows of a Spark DataFrame.

        From Spark only the rated (user, movie, rating) rows reach the driver, as Surprise
        needs: at most settings.train_spark_rows() of them, above which the train job fits
        explicit ALS instead (families.at_scale). `seen` is built in Spark.
        """
        if not spark_input.is_spark(interactions):
            return self.fit_rated(interactions[interactions[RATING_COL].notna()], interactions)
        from pyspark.sql import functions as F

        rated = interactions.where(F.col(RATING_COL).isNotNull())
        arrays = spark_input.column_arrays(rated, USER_COL, ITEM_COL, RATING_COL)
        self.fit_rated(
            pd.DataFrame(dict(zip((USER_COL, ITEM_COL, RATING_COL), arrays, strict=True)))
        )
        shape = (len(self.user_ids), len(self.item_ids))
        self.seen = spark_input.csr(
            spark_input.with_index(interactions, self.user_ids, self.item_ids), shape
        )
        return self

    def fit_rated(
        self, rated: pd.DataFrame, interactions: pd.DataFrame | None = None
    ) -> SurpriseSVD:
        """Fit SVD on the rated rows; `seen` from `interactions` when given."""
        from surprise import SVD, Dataset, Reader

        if rated.empty:
            raise ValueError("svd_surprise needs explicit ratings; the training split has none")
        p = self.params
        self.rating_min, self.rating_max = float(p["rating_min"]), float(p["rating_max"])
        frame = pd.DataFrame(
            {
                "u": rated[USER_COL].to_numpy(dtype=np.int64),
                "i": rated[ITEM_COL].astype(str).to_numpy(),
                "r": rated[RATING_COL].to_numpy(dtype=np.float64),
            }
        )
        reader = Reader(rating_scale=(self.rating_min, self.rating_max))
        trainset = Dataset.load_from_df(frame, reader).build_full_trainset()
        algo = SVD(
            n_factors=int(p["n_factors"]),
            n_epochs=int(p["n_epochs"]),
            lr_all=float(p["lr_all"]),
            reg_all=float(p["reg_all"]),
            random_state=p["random_state"],
        )
        algo.fit(trainset)

        self.user_ids, self.item_ids = id_arrays(frame["u"], frame["i"])
        raw_users = np.array([trainset.to_raw_uid(x) for x in range(trainset.n_users)], np.int64)
        raw_items = np.array([trainset.to_raw_iid(x) for x in range(trainset.n_items)]).astype(str)
        u_order = index_of(raw_users, self.user_ids)  # inner id of each sorted user
        i_order = index_of(raw_items, self.item_ids)
        self.user_factors = np.ascontiguousarray(algo.pu[u_order], dtype=np.float32)
        self.item_factors = np.ascontiguousarray(algo.qi[i_order], dtype=np.float32)
        self.user_bias = algo.bu[u_order].astype(np.float64)
        self.item_bias = algo.bi[i_order].astype(np.float64)
        self.global_mean = float(trainset.global_mean)
        self.fallback_rating = self.global_mean
        self.biased = 1.0
        if interactions is not None:
            self.fit_seen(interactions, USER_COL, ITEM_COL)
        return self
