"""Interactions given as a Spark DataFrame: what a family needs on the driver, without pandas.

Above settings.train_spark_rows() the train job hands the families the dataset's Parquet parts
as a Spark DataFrame. The driver then holds per-user and per-item arrays (sorted IDs, factors,
neighbour lists) and the sparse `seen` matrix as scipy CSR (12 bytes per interaction, the
scoring state itself), collected as Arrow columns; never an interactions-sized pandas frame.
Index columns: USER_INDEX / ITEM_INDEX = position of the user / movie in the sorted ID arrays,
the same numbers jobs.models.common.index_of gives the pandas path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from contracts.names import ITEM_COL, USER_COL

USER_INDEX = "u"
ITEM_INDEX = "i"
VALUE = "v"


def is_spark(frame: Any) -> bool:
    """True for a Spark DataFrame (anything that is not a pandas frame)."""
    return not isinstance(frame, pd.DataFrame)


def size(frame) -> int:
    """Rows of a pandas or Spark frame."""
    return int(frame.count()) if is_spark(frame) else len(frame)


def column_arrays(df, *names: str) -> list[np.ndarray]:
    """The named columns of a Spark DataFrame as numpy arrays (through Arrow, not pandas)."""
    table = df.select(*names).toArrow()
    return [table.column(name).to_numpy() for name in names]


def id_arrays(df) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct user IDs (int64) and movie IDs (fixed-width str), as common.id_arrays."""
    from pyspark.sql import functions as F

    (users,) = column_arrays(df.select(F.col(USER_COL).cast("long")).distinct(), USER_COL)
    (items,) = column_arrays(df.select(F.col(ITEM_COL).cast("string")).distinct(), ITEM_COL)
    return np.sort(users.astype(np.int64)), np.sort(items.astype(str))


def with_index(df, user_ids: np.ndarray, item_ids: np.ndarray):
    """`df` with USER_INDEX and ITEM_INDEX columns; rows of users or movies not in the ID
    arrays are dropped (as common.interaction_matrix drops them)."""
    from pyspark.sql import functions as F

    spark = df.sparkSession
    users = spark.createDataFrame(
        pd.DataFrame({USER_COL: user_ids, USER_INDEX: np.arange(len(user_ids), dtype=np.int32)})
    )
    items = spark.createDataFrame(
        pd.DataFrame(
            {
                ITEM_COL: item_ids.astype(object),
                ITEM_INDEX: np.arange(len(item_ids), dtype=np.int32),
            }
        )
    )
    keyed = df.withColumn(USER_COL, F.col(USER_COL).cast("long")).withColumn(
        ITEM_COL, F.col(ITEM_COL).cast("string")
    )
    return keyed.join(users, USER_COL).join(F.broadcast(items), ITEM_COL)


def csr(indexed, shape: tuple[int, int], value: str | None = None) -> sp.csr_matrix:
    """users x items CSR of `value` (1.0 when None) summed per (user, movie), from an indexed
    frame (with_index)."""
    names = (USER_INDEX, ITEM_INDEX) if value is None else (USER_INDEX, ITEM_INDEX, value)
    columns = column_arrays(indexed, *names)
    v = columns[2].astype(np.float64) if value is not None else np.ones(len(columns[0]))
    m = sp.csr_matrix((v, (columns[0], columns[1])), shape=shape)
    m.sum_duplicates()
    return m


def recent(indexed, limit: int, time_col: str):
    """Each user's `limit` most recent rows (ties in time: lower movie index first)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order = Window.partitionBy(USER_INDEX).orderBy(F.col(time_col).desc(), F.col(ITEM_INDEX))
    ranked = indexed.withColumn("_recent", F.row_number().over(order))
    return ranked.where(F.col("_recent") <= limit).drop("_recent")
