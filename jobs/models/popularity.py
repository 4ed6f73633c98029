"""Recent-window popularity: the fallback for unknown users and the baseline to beat."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from contracts.names import ITEM_COL, TIME_COL, USER_COL
from jobs.models import spark_input
from jobs.models.common import (
    BLOCK_USERS,
    ArrayModel,
    empty_recommendations,
    index_of,
    to_frame,
    top_k_dense,
)


class PopularityRecommender(ArrayModel):
    """Movies ranked by distinct users in the last `window_days` of the training data.

    The window is measured back from the newest training event (never the wall clock); ties
    break by all-time distinct users, then movie ID. Every user, known or not, gets the same
    list minus what they have seen. Attributes: `item_ids` (movies in rank order, best first),
    `item_scores` (window users + all-time users / (1 + max all-time users), so the tie-break
    stays below one window user), `user_ids`, `seen` (CSR users x item_ids).
    Params: window_days (float, default 30; None = all history).
    """

    family = "popularity"
    array_attrs = ArrayModel.array_attrs + ("item_scores",)
    item_scores: np.ndarray

    def __init__(self, window_days: float | None = 30.0, **params: Any) -> None:
        super().__init__(window_days=window_days, **params)
        self.window_days = window_days

    def fit(self, interactions) -> PopularityRecommender:
        """Fit on a pandas frame or a Spark DataFrame (counted in Spark)."""
        if spark_input.is_spark(interactions):
            return self.fit_spark(interactions)
        frame = interactions[[USER_COL, ITEM_COL, TIME_COL]].copy()
        frame[ITEM_COL] = frame[ITEM_COL].astype(str)
        all_time = frame.groupby(ITEM_COL)[USER_COL].nunique()
        recent = frame
        if self.window_days is not None:
            times = pd.to_datetime(frame[TIME_COL])
            start = times.max() - pd.Timedelta(days=float(self.window_days))
            recent = frame[times >= start]
        window = recent.groupby(ITEM_COL)[USER_COL].nunique().reindex(all_time.index, fill_value=0)
        table = pd.DataFrame({"window": window, "all_time": all_time}).reset_index()
        self.rank_items(table)
        self.user_ids = np.unique(frame[USER_COL].to_numpy(dtype=np.int64))
        self.fit_seen(frame, USER_COL, ITEM_COL)
        return self

    def fit_spark(self, interactions) -> PopularityRecommender:
        """The same counts in Spark; the driver gets one row per movie and the seen CSR."""
        from pyspark.sql import functions as F

        frame = interactions.withColumn(ITEM_COL, F.col(ITEM_COL).cast("string"))
        in_window = F.lit(True)
        if self.window_days is not None:
            newest = frame.agg(F.max(TIME_COL)).first()[0]
            start = pd.Timestamp(newest) - pd.Timedelta(days=float(self.window_days))
            in_window = F.col(TIME_COL) >= F.lit(start.to_pydatetime())
        counts = frame.groupBy(ITEM_COL).agg(
            F.countDistinct(F.when(in_window, F.col(USER_COL))).alias("window"),
            F.countDistinct(USER_COL).alias("all_time"),
        )
        items, window, all_time = spark_input.column_arrays(counts, ITEM_COL, "window", "all_time")
        self.rank_items(
            pd.DataFrame({ITEM_COL: items.astype(str), "window": window, "all_time": all_time})
        )
        self.user_ids, _ = spark_input.id_arrays(frame)
        shape = (len(self.user_ids), len(self.item_ids))
        self.seen = spark_input.csr(
            spark_input.with_index(frame, self.user_ids, self.item_ids), shape
        )
        return self

    def rank_items(self, table: pd.DataFrame) -> None:
        """item_ids and item_scores from per-movie distinct-user counts (window, all_time)."""
        all_time = table["all_time"]
        table = table.sort_values(
            ["window", "all_time", ITEM_COL], ascending=[False, False, True], kind="stable"
        )
        self.item_ids = table[ITEM_COL].to_numpy().astype(str)
        self.item_scores = table["window"].to_numpy(np.float64) + table["all_time"].to_numpy(
            np.float64
        ) / (1.0 + float(all_time.max()))

    def score_block(self, user_index: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.item_scores, (len(user_index), len(self.item_ids)))

    def top(self, k: int = 20) -> pd.DataFrame:
        """The global list (for unknown users and the published popular list)."""
        n = min(k, len(self.item_ids))
        return pd.DataFrame(
            {
                ITEM_COL: self.item_ids[:n].astype(object),
                "rank": np.arange(1, n + 1),
                "score": self.item_scores[:n],
            }
        )

    def recommend(
        self, users: np.ndarray | list, k: int = 20, exclude_seen: bool = True
    ) -> pd.DataFrame:
        """Top-k for every requested user; unknown users get the plain global list."""
        users = np.asarray(users, dtype=np.int64)
        if len(users) == 0:
            return empty_recommendations()
        idx = index_of(self.user_ids, users)
        # Only the first k + (most items any of them has seen) movies can ever be chosen.
        frames = []
        for start in range(0, len(users), BLOCK_USERS):
            block, block_idx = users[start : start + BLOCK_USERS], idx[start : start + BLOCK_USERS]
            rows = np.where(block_idx >= 0, block_idx, 0)
            seen = self.seen[rows]
            if exclude_seen:
                seen = seen.multiply((block_idx >= 0)[:, None]).tocsr()
                seen.eliminate_zeros()
                width = min(len(self.item_ids), k + int(np.diff(seen.indptr).max(initial=0)))
                seen = seen[:, :width]
            else:
                seen, width = None, min(k, len(self.item_ids))
            scores = np.broadcast_to(self.item_scores[:width], (len(block), width))
            items, best = top_k_dense(scores, k, seen)
            frames.append(to_frame(block, self.item_ids[:width], items, best))
        return pd.concat(frames, ignore_index=True)
