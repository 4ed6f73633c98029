"""Time splits of a pandas interactions frame, shared by the dataset job and the models.

- `temporal_split`: the global rule (one cut time T for everybody); what the dataset job does
  in Spark, used to carve a validation split out of a training split.
- `per_user_later_split`: each user's later movies held out, as the served-quality
  measurement holds back each user's later interactions (jobs.train.served_quality).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from contracts.names import ITEM_COL, TIME_COL, USER_COL

COLD_COL = "cold"
DEFAULT_TEST_FRACTION = 0.2


def temporal_split(
    frame: pd.DataFrame,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    holdout_days: float | None = None,
    user_col: str = USER_COL,
    item_col: str = ITEM_COL,
    time_col: str = TIME_COL,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The global rule on a pandas frame: (train, test, cold) split at one cutoff time T.

    T is the value at position floor((1 - test_fraction) * n) of the sorted event times (or
    newest - holdout_days). Used to carve a validation split out of a training split, so
    hyperparameters are chosen without looking at the test period.
    """
    if frame.empty:
        raise ValueError("cannot split an empty frame")
    times = pd.to_datetime(frame[time_col])
    if holdout_days is not None:
        cutoff = times.max() - pd.Timedelta(days=float(holdout_days))
    else:
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        ordered = np.sort(times.to_numpy())
        cutoff = pd.Timestamp(ordered[int(np.floor((1 - test_fraction) * len(ordered)))])
    after = (times >= cutoff).to_numpy()
    train, later = frame[~after], frame[after]
    warm = later[user_col].isin(train[user_col]) & later[item_col].isin(train[item_col])
    cold = later[~warm].assign(
        **{COLD_COL: np.where(later[~warm][user_col].isin(train[user_col]), "item", "user")}
    )
    return train, later[warm], cold


def per_user_later_split(
    frame: pd.DataFrame,
    fraction: float = 0.2,
    user_col: str = USER_COL,
    item_col: str = ITEM_COL,
    time_col: str = TIME_COL,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(earlier, later): per user with >= 2 interactions ordered by (time, movie), the last
    max(1, n - floor((1 - fraction) * n)) are `later`; users with one interaction stay whole.

    Other users' later events stay in `earlier`: a validation rule for choosing
    hyperparameters, never a test protocol (it would leak the future into training).
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    ordered = frame.sort_values([user_col, time_col, item_col], kind="stable")
    by_user = ordered.groupby(user_col, sort=False)
    n = by_user[item_col].transform("size").to_numpy()
    first_later = np.minimum(np.floor((1.0 - fraction) * n), n - 1)
    later = (n >= 2) & (by_user.cumcount().to_numpy() >= first_later)
    return ordered[~later], ordered[later]


def event_micros(time_col: str = TIME_COL):
    """Microseconds since the epoch of a TIMESTAMP or TIMESTAMP_NTZ column (session in UTC)."""
    from pyspark.sql import functions as F

    return F.unix_micros(F.col(time_col).cast("timestamp"))


def nth_time_spark(frame, position: int, time_col: str = TIME_COL) -> int:
    """The event time (microseconds) at 0-based `position` of the sorted times, exactly: an
    approximate quantile, then the few rows between it and the position (nothing big collected)."""
    from pyspark.sql import functions as F

    times = frame.select(event_micros(time_col).alias("t"))
    guess = int(times.approxQuantile("t", [(position + 0.5) / frame.count()], 1e-5)[0])
    below, at_most = times.agg(
        F.sum((F.col("t") < guess).cast("long")), F.sum((F.col("t") <= guess).cast("long"))
    ).first()
    if below <= position < at_most:
        return guess
    if position >= at_most:
        after = times.where(F.col("t") > guess).orderBy("t").limit(position - at_most + 1)
        return int(after.agg(F.max("t")).first()[0])
    before = times.where(F.col("t") < guess).orderBy(F.col("t").desc()).limit(below - position)
    return int(before.agg(F.min("t")).first()[0])


def temporal_split_spark(
    frame,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    user_col: str = USER_COL,
    item_col: str = ITEM_COL,
    time_col: str = TIME_COL,
):
    """temporal_split's (train, warm test) on a Spark DataFrame, at the same cutoff time T."""
    from pyspark.sql import functions as F

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n = frame.count()
    if n == 0:
        raise ValueError("cannot split an empty frame")
    cutoff = nth_time_spark(frame, int(np.floor((1 - test_fraction) * n)), time_col)
    after = event_micros(time_col) >= F.lit(cutoff)
    train, later = frame.where(~after), frame.where(after)
    warm = later.join(train.select(user_col).distinct(), user_col, "left_semi")
    return train, warm.join(train.select(item_col).distinct(), item_col, "left_semi")


def per_user_later_split_spark(
    frame,
    fraction: float = 0.2,
    user_col: str = USER_COL,
    item_col: str = ITEM_COL,
    time_col: str = TIME_COL,
):
    """per_user_later_split's (earlier, later) on a Spark DataFrame."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    user = Window.partitionBy(user_col)
    ordered = frame.withColumn(
        "_pos", F.row_number().over(user.orderBy(time_col, item_col)) - 1
    ).withColumn("_n", F.count("*").over(user))
    first_later = F.least(F.floor((1.0 - fraction) * F.col("_n")), F.col("_n") - 1)
    later = (F.col("_n") >= 2) & (F.col("_pos") >= first_later)
    flagged = ordered.withColumn("_later", later).drop("_pos", "_n")
    return (
        flagged.where(~F.col("_later")).drop("_later"),
        flagged.where(F.col("_later")).drop("_later"),
    )
