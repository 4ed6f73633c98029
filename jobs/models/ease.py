"""EASE (Steck 2019): a closed-form item-item model trained for ranking on implicit feedback.

B = argmin |X - X B|^2 + lambda |B|^2 subject to diag(B) = 0 has the closed form
P = (X^T X + lambda I)^-1, B = -P / diag(P) (column-wise), diag(B) = 0. It needs a dense
items x items inverse, so it is fitted on the `max_items` most popular training movies only
(memory max_items^2 x 4 bytes: 36 MB at the default 3,000).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from contracts.names import ITEM_COL, STRENGTH_COL, USER_COL
from jobs.models import spark_input
from jobs.models.common import ArrayModel, interaction_matrix

DEFAULTS = {"reg": 200.0, "max_items": 3000, "weighting": "binary"}


def most_frequent(counts: pd.DataFrame, limit: int) -> np.ndarray:
    """The `limit` movies with the most interactions (column n), ties by movie ID."""
    ordered = counts.sort_values(["n", ITEM_COL], ascending=[False, True], kind="stable")
    return ordered[ITEM_COL].to_numpy()[:limit].astype(str)


class EASE(ArrayModel):
    """Ranking model on implicit feedback: score(u, .) = x_u @ item_weights.

    Attributes: `item_ids` (the modelled movies, most popular first), `item_weights` (dense
    float32 (n_items, n_items), B above), `seen` (CSR users x item_ids of history weights x_u;
    only modelled movies count), `user_ids` (sorted). Params: reg (lambda), max_items,
    weighting ('binary' or 'strength').
    """

    family = "ease"
    defaults = DEFAULTS
    array_attrs = ArrayModel.array_attrs + ("item_weights",)
    item_weights: np.ndarray

    def fit(self, interactions) -> EASE:
        """Fit on a pandas frame, or a Spark DataFrame (counts and `seen` built in Spark)."""
        p = self.params
        if p["weighting"] not in ("binary", "strength"):
            raise ValueError(f"weighting must be 'binary' or 'strength', not {p['weighting']!r}")
        if spark_input.is_spark(interactions):
            self.seen_from_spark(interactions)
        else:
            if interactions.empty:
                raise ValueError("ease cannot fit on an empty training split")
            items = interactions[ITEM_COL].astype(str)
            counts = items.groupby(items).size().rename("n").reset_index()
            self.item_ids = most_frequent(counts, int(p["max_items"]))
            self.user_ids = np.unique(interactions[USER_COL].to_numpy(np.int64))
            weights = None
            if p["weighting"] == "strength":
                weights = interactions[STRENGTH_COL].fillna(0.0).to_numpy(np.float64)
            self.seen = interaction_matrix(
                interactions, self.user_ids, self.item_ids, weights, USER_COL, ITEM_COL
            )
        self.fit_weights()
        return self

    def seen_from_spark(self, interactions) -> None:
        """user_ids, item_ids (the max_items most frequent) and `seen`, counted in Spark."""
        from pyspark.sql import functions as F

        p = self.params
        counts = interactions.groupBy(F.col(ITEM_COL).cast("string").alias(ITEM_COL)).count()
        items, n = spark_input.column_arrays(counts, ITEM_COL, "count")
        self.item_ids = most_frequent(pd.DataFrame({ITEM_COL: items, "n": n}), int(p["max_items"]))
        self.user_ids, _ = spark_input.id_arrays(interactions)
        if len(self.user_ids) == 0:
            raise ValueError("ease cannot fit on an empty training split")
        weight = F.lit(1.0) if p["weighting"] == "binary" else F.coalesce(STRENGTH_COL, F.lit(0.0))
        indexed = spark_input.with_index(interactions, self.user_ids, self.item_ids)
        shape = (len(self.user_ids), len(self.item_ids))
        self.seen = spark_input.csr(
            indexed.withColumn(spark_input.VALUE, weight.cast("double")), shape, spark_input.VALUE
        )

    def fit_weights(self) -> None:
        """The closed-form item weights from the Gram matrix of `seen`."""
        p = self.params
        gram = (self.seen.T @ self.seen).toarray()
        gram[np.diag_indices_from(gram)] += float(p["reg"])
        inverse = np.linalg.inv(gram)
        weights_b = inverse / (-np.diag(inverse))
        weights_b[np.diag_indices_from(weights_b)] = 0.0
        self.item_weights = weights_b.astype(np.float32)

    def score_block(self, user_index: np.ndarray) -> np.ndarray:
        history: sp.csr_matrix = self.seen[user_index]
        return np.asarray(history @ self.item_weights)
