"""User-level outcomes of one experiment from the lake: the table the analysis reads.

An experiment's answers are the prediction-log records served while it ran (the log's time and
the experiment's start and end are both the servers' wall clock) under one of its variant names.
Stream lines are attributed to those answers exactly as the online evaluation does
(`jobs.online.evaluate.attribute`: same user, same list, else the user's nearest matched line)
and scored by `evaluate.hits` (a watch of a listed movie within `window_minutes`). Only lines
within the event-time span of the lines matched to the experiment count, so a user's lines from
before it (the same production list, say) are not taken for it.

A user attributed to two variants (possible only through content matching of identical lists)
is dropped and counted: randomisation put each user in one arm.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from contracts.names import (
    FIRST_SEEN_COL,
    HITS_COL,
    ITEM_COL,
    LISTS_COL,
    REQUESTS_COL,
    SERVED_LIST_COL,
    SOURCE_COL,
    TIME_COL,
    USER_COL,
    VARIANT_COL,
)
from jobs.online.experiment_analysis import OUTCOME_COLUMNS


def _names(exp: dict[str, Any]) -> list[str]:
    return [v.variant for v in exp["variants"]]


def users_so_far(exp: dict[str, Any], root: str | Path | None = None) -> dict[str, int]:
    """Distinct users each variant has answered while the experiment ran, per the ingested
    prediction log (Arrow, no Spark: `status` is a quick command)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from jobs.online import predictions

    parts = [b / predictions.TABLE for b in predictions.batch_dirs(root)]
    parts = [p for p in parts if p.exists()]
    if not parts:
        return {}
    data = ds.dataset([ds.dataset(str(p), format="parquet") for p in parts])
    stamp = pa.timestamp("ms", tz="UTC")
    where = (ds.field(TIME_COL) >= pa.scalar(exp["started_at"], stamp)) & ds.field(
        VARIANT_COL
    ).isin(_names(exp))
    if exp["ended_at"] is not None:
        where &= ds.field(TIME_COL) < pa.scalar(exp["ended_at"], stamp)
    table = data.to_table(columns=[USER_COL, VARIANT_COL], filter=where)
    counts = table.group_by(VARIANT_COL).aggregate([(USER_COL, "count_distinct")])
    return dict(
        zip(
            counts[VARIANT_COL].to_pylist(),
            pc.cast(counts[f"{USER_COL}_count_distinct"], pa.int64()).to_pylist(),
            strict=True,
        )
    )


def experiment_answers(predictions, exp: dict[str, Any]):
    """The prediction-log records served under the experiment's variants while it ran."""
    from pyspark.sql import functions as F

    started: datetime = exp["started_at"]
    keep = (F.col(TIME_COL) >= F.lit(started)) & F.col(VARIANT_COL).isin(_names(exp))
    if exp["ended_at"] is not None:
        keep &= F.col(TIME_COL) < F.lit(exp["ended_at"])
    return predictions.where(keep)


def outcome_frame(lines):
    """Scored lines (attribute + hits) → one row per (user, variant) with the outcome columns."""
    from pyspark.sql import functions as F

    return lines.groupBy(USER_COL, VARIANT_COL).agg(
        F.count(F.lit(1)).alias(REQUESTS_COL),
        F.count("hit").alias(LISTS_COL),
        F.coalesce(F.sum("hit"), F.lit(0)).alias(HITS_COL),
        F.min(TIME_COL).alias(FIRST_SEEN_COL),
    )


def user_outcomes(
    reco, watch, predictions, exp: dict[str, Any], window_minutes: int
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(outcome table, notes) of the experiment from Spark frames of the stream's reco and
    watch lines and the prediction log."""
    from pyspark.sql import functions as F

    from jobs.online import evaluate

    lines = evaluate.attribute(reco, experiment_answers(predictions, exp))
    lines = lines.where(F.col(VARIANT_COL).isin(_names(exp)))
    span = lines.where(F.col(SOURCE_COL).isNotNull()).agg(F.min(TIME_COL), F.max(TIME_COL)).first()
    if span[0] is None:
        return pd.DataFrame(columns=list(OUTCOME_COLUMNS)), {"span": None, "dropped_users": 0}
    lines = lines.where(F.col(TIME_COL).between(span[0], span[1]))
    scored = evaluate.hits(lines, watch.where(F.col(TIME_COL) >= span[0]), window_minutes)
    frame = outcome_frame(scored).toPandas()
    arms = frame.groupby(USER_COL)[VARIANT_COL].transform("nunique")
    notes = {
        "span": [span[0].isoformat(), span[1].isoformat()],
        "dropped_users": int(frame.loc[arms > 1, USER_COL].nunique()),
    }
    frame = frame[arms == 1].sort_values([VARIANT_COL, USER_COL], ignore_index=True)
    return frame[list(OUTCOME_COLUMNS)], notes


def lake_outcomes(
    spark, snapshots, batches, exp: dict[str, Any], window_minutes: int
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """`user_outcomes` read from accepted snapshot directories and prediction batches."""
    from jobs.online import evaluate
    from jobs.train.dataset import read_table

    reco = read_table(spark, snapshots, "reco_request", evaluate.RECO_COLUMNS + evaluate.RECO_KEY)
    answers = read_table(
        spark, batches, "predictions", [*evaluate.PREDICTION_COLUMNS, SERVED_LIST_COL]
    )
    if reco is None or answers is None:
        return pd.DataFrame(columns=list(OUTCOME_COLUMNS)), {"span": None, "dropped_users": 0}
    watch = read_table(spark, snapshots, "watch", [TIME_COL, USER_COL, ITEM_COL])
    if watch is None:
        watch = spark.createDataFrame(
            [], f"{TIME_COL} timestamp, {USER_COL} bigint, {ITEM_COL} string"
        )
    return user_outcomes(reco, watch, answers, exp, window_minutes)
