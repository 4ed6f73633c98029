"""Item-item kNN with shrunk cosine similarity, top-M neighbours per item (memory ~ movies x M).

sim(i, j) = dot(x_i, x_j) / (|x_i| |x_j|) * n_ij / (n_ij + shrink), where x_i is item i's column
of user weights (1, or the implicit strength) and n_ij the number of users who interacted with
both. Only each item's M most similar items are kept (ties by lower item index), so the model
never holds a movies x movies or users x users matrix: the scipy engine works through blocks of
items (block x movies at a time), the Spark engine aggregates co-occurring pairs per user and
keeps the top M with a window. Both compute the same numbers (tested).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm import tqdm

from contracts.names import ITEM_COL, STRENGTH_COL, TIME_COL, USER_COL
from jobs.models import spark_input
from jobs.models.common import ArrayModel, id_arrays, index_of, interaction_matrix, top_k_dense

DEFAULTS = {
    "neighbours": 50,
    "shrink": 10.0,
    "weighting": "binary",
    "engine": "auto",
    "max_history": 500,
    "spark_threshold": None,  # None: settings.train_spark_rows()
}
ITEM_BLOCK = 256


class ItemKNN(ArrayModel):
    """Neighbourhood recommender: score(u, j) = sum over u's history i of w_ui * sim(i, j).

    Attributes: `neighbours` (CSR, items x items, row i = the top-M neighbours j of item i with
    their similarity; at most M stored values per row), `seen` (CSR users x items of the
    history weights w_ui: 1 for weighting='binary', the implicit strength for 'strength'),
    `user_ids`, `item_ids` (sorted). Scoring a block is the sparse product seen[block] @ neighbours.
    Params: neighbours (M), shrink, weighting, engine ('scipy' | 'spark' | 'auto': Spark above
    spark_threshold interactions, default TRAIN_SPARK_ROWS; a Spark DataFrame to fit on always
    takes the Spark engine), max_history (each user's most recent interactions that
    count towards similarity, bounding the per-user pair count).
    """

    family = "item_knn"
    defaults = DEFAULTS
    array_attrs = ArrayModel.array_attrs + ("neighbours",)
    neighbours: sp.csr_matrix

    def fit(self, interactions) -> ItemKNN:
        """Fit on a pandas frame, or on a Spark DataFrame with the Spark engine."""
        p = self.params
        if p["weighting"] not in ("binary", "strength"):
            raise ValueError(f"weighting must be 'binary' or 'strength', not {p['weighting']!r}")
        if spark_input.is_spark(interactions):
            return self.fit_spark(interactions)
        if interactions.empty:
            raise ValueError("item_knn cannot fit on an empty training split")
        self.user_ids, self.item_ids = id_arrays(interactions[USER_COL], interactions[ITEM_COL])
        weights = None
        if p["weighting"] == "strength":
            weights = interactions[STRENGTH_COL].fillna(0.0).to_numpy(np.float64)
        self.seen = interaction_matrix(
            interactions, self.user_ids, self.item_ids, weights, USER_COL, ITEM_COL
        )
        recent = recent_history(interactions, int(p["max_history"]), USER_COL, TIME_COL)
        u = index_of(self.user_ids, recent[USER_COL].to_numpy(np.int64))
        i = index_of(self.item_ids, recent[ITEM_COL].astype(str).to_numpy())
        v = (
            np.ones(len(recent))
            if p["weighting"] == "binary"
            else recent[STRENGTH_COL].fillna(0.0).to_numpy(np.float64)
        )
        engine = choose_engine(p, len(recent))
        args = (u, i, v, len(self.user_ids), len(self.item_ids))
        m, shrink = int(p["neighbours"]), float(p["shrink"])
        if engine == "scipy":
            self.neighbours = neighbours_scipy(*args, m=m, shrink=shrink)
        else:
            self.neighbours = neighbours_spark(*args, m=m, shrink=shrink)
        return self

    def fit_spark(self, interactions) -> ItemKNN:
        """The same model from a Spark DataFrame: similarities and neighbours are Spark jobs."""
        from pyspark.sql import functions as F

        p = self.params
        self.user_ids, self.item_ids = spark_input.id_arrays(interactions)
        if len(self.user_ids) == 0:
            raise ValueError("item_knn cannot fit on an empty training split")
        weight = F.lit(1.0) if p["weighting"] == "binary" else F.coalesce(STRENGTH_COL, F.lit(0.0))
        indexed = spark_input.with_index(interactions, self.user_ids, self.item_ids).withColumn(
            spark_input.VALUE, weight.cast("double")
        )
        shape = (len(self.user_ids), len(self.item_ids))
        self.seen = spark_input.csr(indexed, shape, spark_input.VALUE)
        recent = spark_input.recent(indexed, int(p["max_history"]), TIME_COL)
        self.neighbours = neighbours_from_frame(
            recent, len(self.item_ids), int(p["neighbours"]), float(p["shrink"])
        )
        return self

    def score_block(self, user_index: np.ndarray) -> np.ndarray:
        scores = (self.seen[user_index] @ self.neighbours).toarray()
        # Items no neighbour of the history reaches have no evidence at all: never recommend.
        scores[scores <= 0] = -np.inf
        return scores


def choose_engine(params: dict, rows: int) -> str:
    """'scipy' or 'spark': as given, or for engine='auto' Spark above `spark_threshold` rows
    (default settings.train_spark_rows())."""
    from contracts import settings

    engine = params["engine"]
    if engine == "auto":
        threshold = params.get("spark_threshold") or settings.train_spark_rows()
        engine = "spark" if rows > int(threshold) else "scipy"
    if engine not in ("scipy", "spark"):
        raise ValueError(f"engine must be 'scipy', 'spark' or 'auto', not {engine!r}")
    return engine


def recent_history(frame: pd.DataFrame, limit: int, user_col: str, time_col: str) -> pd.DataFrame:
    """Each user's `limit` most recent interactions (all of them for shorter histories)."""
    ranked = frame.sort_values([user_col, time_col], ascending=[True, False], kind="stable")
    return ranked[ranked.groupby(user_col).cumcount() < limit]


def shrunk_cosine(
    dot: np.ndarray, co: np.ndarray, norm_i: np.ndarray, norm_j: np.ndarray, shrink: float
) -> np.ndarray:
    """Shrunk cosine from dot products, co-counts and norms (0 where there is no overlap)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        cosine = dot / (norm_i * norm_j)
        sim = cosine * co / (co + shrink)
    return np.where(co > 0, sim, 0.0)


def neighbours_scipy(
    u: np.ndarray, i: np.ndarray, v: np.ndarray, n_users: int, n_items: int, m: int, shrink: float
) -> sp.csr_matrix:
    """Top-m shrunk-cosine neighbours per item, computed block of items by block (single node)."""
    x = sp.csr_matrix((v, (u, i)), shape=(n_users, n_items))
    x.sum_duplicates()
    b = x.copy()
    b.data[:] = 1.0
    xt, bt = x.T.tocsr(), b.T.tocsr()
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
    rows, cols, vals = [], [], []
    for start in tqdm(range(0, n_items, ITEM_BLOCK), desc="item_knn similarity", leave=False):
        stop = min(start + ITEM_BLOCK, n_items)
        dot = (xt[start:stop] @ x).toarray()
        co = (bt[start:stop] @ b).toarray()
        sim = shrunk_cosine(dot, co, norms[start:stop, None], norms[None, :], shrink)
        sim[np.arange(stop - start), np.arange(start, stop)] = 0.0
        sim[sim <= 0] = -np.inf
        items, best = top_k_dense(sim, m)
        keep = items >= 0
        rows.append(np.nonzero(keep)[0] + start)
        cols.append(items[keep])
        vals.append(best[keep])
    if not rows:
        return sp.csr_matrix((n_items, n_items))
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_items, n_items),
    )


def neighbours_spark(
    u: np.ndarray, i: np.ndarray, v: np.ndarray, n_users: int, n_items: int, m: int, shrink: float
) -> sp.csr_matrix:
    """The same neighbours computed in Spark from numpy (user, item, weight) arrays."""
    from jobs.spark import get_spark

    spark = get_spark("train-item-knn")
    frame = pd.DataFrame(
        {
            spark_input.USER_INDEX: u.astype(np.int64),
            spark_input.ITEM_INDEX: i.astype(np.int64),
            spark_input.VALUE: np.asarray(v, dtype=np.float64),
        }
    )
    return neighbours_from_frame(spark.createDataFrame(frame), n_items, m, shrink)


def neighbours_from_frame(df, n_items: int, m: int, shrink: float) -> sp.csr_matrix:
    """Top-m shrunk-cosine neighbours per item from a Spark DataFrame of (user index, item
    index, weight) rows: per-user pair join, sums per pair, top-m window; only the
    items x m result reaches the driver."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # Columns u, i, v are spark_input.USER_INDEX, ITEM_INDEX, VALUE; j is the other item.
    df = df.groupBy("u", "i").agg(F.sum("v").alias("v"))
    norms = df.groupBy("i").agg(F.sqrt(F.sum(F.col("v") * F.col("v"))).alias("norm"))
    a = df.select("u", "i", F.col("v").alias("vi"))
    b = df.select("u", F.col("i").alias("j"), F.col("v").alias("vj"))
    pairs = (
        a.join(b, "u")
        .where(F.col("i") != F.col("j"))
        .groupBy("i", "j")
        .agg(F.sum(F.col("vi") * F.col("vj")).alias("dot"), F.count("*").alias("co"))
    )
    ni = norms.select("i", F.col("norm").alias("ni"))
    nj = norms.select(F.col("i").alias("j"), F.col("norm").alias("nj"))
    sims = (
        pairs.join(ni, "i")
        .join(nj, "j")
        .select(
            "i",
            "j",
            (
                F.col("dot") / (F.col("ni") * F.col("nj")) * F.col("co") / (F.col("co") + shrink)
            ).alias("sim"),
        )
        .where(F.col("sim") > 0)
    )
    window = Window.partitionBy("i").orderBy(F.col("sim").desc(), F.col("j").asc())
    top = sims.withColumn("r", F.row_number().over(window)).where(F.col("r") <= m)
    i, j, sim = spark_input.column_arrays(top, "i", "j", "sim")
    return sp.csr_matrix((sim.astype(np.float64), (i, j)), shape=(n_items, n_items))
