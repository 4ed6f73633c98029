"""Online evaluation: what clients saw and what users did next, per hour, model version, variant.

docs/monitoring.md defines each metric (the metric, the data used, how it is computed). In
short, over the stream's `recommendation request` lines of an event-time hour:

- availability: share of lines with status 200 answered within `deadline_ms` (800 ms);
- latency p50/p95/p99: exact percentiles of the client-measured response time of all lines;
- personalised share: of the lines matched to a served prediction, the share whose source was
  the model (not the popularity list or the in-process cache);
- online accuracy: of the served lists (status 200, non-empty), the share after which the
  user has a watch line of one of the listed movies within `window_minutes`; a Wilson 95%
  interval and the number of lists go with it.

Attribution: a line with a list is matched to the prediction-log record of the same user
with the same list (the latest one when several match); a line without a list (an error or
a timeout) takes the attribution of the same user's nearest matched line in the evaluated
range (earlier first), else none (model version and variant ``""``: no answer reached us).
Rows exist per (hour, model_version, variant), per (hour, '*', variant) and (hour, '*', '*').
Time is event time from the stream, never the wall clock: the newest event bounds each run.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from contracts.names import (
    ITEM_COL,
    MODEL_VERSION_COL,
    OFFSET_COL,
    PARTITION_COL,
    SERVED_LIST_COL,
    SOURCE_COL,
    TIME_COL,
    USER_COL,
    VARIANT_COL,
)

log = logging.getLogger(__name__)

ALL = "*"  # a rolled-up model version or variant
NONE = ""  # no variant (no experiment ran), or no answer to attribute the line to
HOUR_COL = "hour"
DEADLINE_MS = 800
WINDOW_MINUTES = 60
Z95 = 1.959963984540054
RECO_COLUMNS = [TIME_COL, USER_COL, "status", "result", "response_time_ms"]
RECO_KEY = [PARTITION_COL, OFFSET_COL]
PREDICTION_COLUMNS = [TIME_COL, USER_COL, MODEL_VERSION_COL, VARIANT_COL, SOURCE_COL]
METRIC_COLUMNS = (
    "requests",
    "ok_requests",
    "availability",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "answers",
    "personalised",
    "personalised_share",
    "lists",
    "hits",
    "online_accuracy",
    "accuracy_low",
    "accuracy_high",
)


@dataclass(frozen=True)
class Window:
    """The event-time hours evaluated, [start, end), and the follow-up window for accuracy."""

    start: datetime
    end: datetime
    window_minutes: int = WINDOW_MINUTES
    deadline_ms: int = DEADLINE_MS

    @property
    def follow_up(self) -> timedelta:
        return timedelta(minutes=self.window_minutes)


def wilson(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion hits/n (nan, nan when n is 0)."""
    if n <= 0:
        return math.nan, math.nan
    p = hits / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def hours_to_evaluate(newest: datetime, hours: int) -> tuple[datetime, datetime]:
    """[start, end): the `hours` event-time hours up to and including the newest event's."""
    last = newest.replace(minute=0, second=0, microsecond=0)
    return last - timedelta(hours=hours - 1), last + timedelta(hours=1)


# ------------------------------------------------------------------ attribution
def attribute(reco, predictions):
    """Stream reco lines with the model version, variant and source that answered them."""
    from pyspark.sql import Window as W
    from pyspark.sql import functions as F

    served = (
        predictions.select(
            USER_COL,
            F.concat_ws(",", SERVED_LIST_COL).alias("list_key"),
            F.struct(
                F.col(MODEL_VERSION_COL),
                F.coalesce(F.col(VARIANT_COL), F.lit(NONE)).alias(VARIANT_COL),
                F.col(SOURCE_COL),
            ).alias("answer"),
            F.col(TIME_COL).alias("served_at"),
        )
        .groupBy(USER_COL, "list_key")  # one answer per (user, list): the latest
        .agg(F.max_by("answer", "served_at").alias("answer"))
    )
    lines = reco.withColumn("list_key", F.when(F.size("result") > 0, F.concat_ws(",", "result")))
    matched = lines.join(served, [USER_COL, "list_key"], "left")
    by_user = W.partitionBy(USER_COL).orderBy(TIME_COL, *RECO_KEY)
    before = F.last("answer", ignorenulls=True).over(
        by_user.rowsBetween(W.unboundedPreceding, W.currentRow)
    )
    after = F.first("answer", ignorenulls=True).over(
        by_user.rowsBetween(W.currentRow, W.unboundedFollowing)
    )
    nearest = F.coalesce(F.col("answer"), before, after)
    return matched.select(
        *[c for c in matched.columns if c not in ("answer", "list_key")],
        F.coalesce(nearest[MODEL_VERSION_COL], F.lit(NONE)).alias(MODEL_VERSION_COL),
        F.coalesce(nearest[VARIANT_COL], F.lit(NONE)).alias(VARIANT_COL),
        F.col("answer")[SOURCE_COL].alias(SOURCE_COL),  # only the line's own answer counts
    )


def listed_then_watched(lines, watch, window_minutes: int):
    """(reco key, user, movie, served, watched) of every watch line of a movie listed to the
    same user (status 200) within `window_minutes` after that list was served: the one
    definition of "watched because listed" (online accuracy, jobs/online/feedback.py)."""
    from pyspark.sql import functions as F

    lists = lines.where((F.col("status") == 200) & (F.size("result") > 0))
    listed = lists.select(
        *RECO_KEY, USER_COL, F.col(TIME_COL).alias("served"), F.explode("result").alias(ITEM_COL)
    )
    watched = watch.select(USER_COL, ITEM_COL, F.col(TIME_COL).alias("watched"))
    follow = F.expr(f"INTERVAL {int(window_minutes)} MINUTES")
    return listed.join(watched, [USER_COL, ITEM_COL]).where(
        (F.col("watched") >= F.col("served")) & (F.col("watched") <= F.col("served") + follow)
    )


def hits(lines, watch, window_minutes: int):
    """Served lists (status 200, non-empty) with `hit`: a watch line of a listed movie by the
    same user within `window_minutes` after the list was served."""
    from pyspark.sql import functions as F

    found = (
        listed_then_watched(lines, watch, window_minutes)
        .select(*RECO_KEY)
        .distinct()
        .withColumn("hit", F.lit(1))
    )
    return lines.join(found, RECO_KEY, "left").withColumn(
        "hit",
        F.when((F.col("status") == 200) & (F.size("result") > 0), F.coalesce("hit", F.lit(0))),
    )


# ------------------------------------------------------------------ aggregation
def aggregate(lines, deadline_ms: int = DEADLINE_MS):
    """Per (hour, model_version, variant), (hour, '*', variant) and (hour, '*', '*'): counts,
    shares and exact latency percentiles (Spark rows; the interval is added in metrics())."""
    from pyspark.sql import functions as F

    ok = (F.col("status") == 200) & (F.col("response_time_ms") <= deadline_ms)
    answered = F.col(SOURCE_COL).isNotNull()
    grouped = (
        lines.withColumn(HOUR_COL, F.date_trunc("hour", TIME_COL))
        .rollup(HOUR_COL, VARIANT_COL, MODEL_VERSION_COL)
        .agg(
            F.grouping_id().alias("level"),
            F.count(F.lit(1)).alias("requests"),
            F.sum(ok.cast("long")).alias("ok_requests"),
            F.expr("percentile(response_time_ms, array(0.5, 0.95, 0.99))").alias("latency"),
            F.sum(answered.cast("long")).alias("answers"),
            F.sum((F.col(SOURCE_COL) == "model").cast("long")).alias("personalised"),
            F.count("hit").alias("lists"),
            F.sum("hit").alias("hits"),
        )
    )
    # level: 0 = all three columns, 1 = model version rolled up, 3 = both; 7 = grand total.
    return grouped.where(F.col("level").isin(0, 1, 3)).select(
        HOUR_COL,
        F.when(F.col("level") == 0, F.col(MODEL_VERSION_COL))
        .otherwise(F.lit(ALL))
        .alias(MODEL_VERSION_COL),
        F.when(F.col("level") <= 1, F.col(VARIANT_COL)).otherwise(F.lit(ALL)).alias(VARIANT_COL),
        "requests",
        "ok_requests",
        F.col("latency")[0].alias("latency_p50_ms"),
        F.col("latency")[1].alias("latency_p95_ms"),
        F.col("latency")[2].alias("latency_p99_ms"),
        "answers",
        F.coalesce(F.col("personalised"), F.lit(0)).alias("personalised"),
        "lists",
        F.coalesce(F.col("hits"), F.lit(0)).alias("hits"),
    )


def metrics(reco, watch, predictions, window: Window, newest: datetime) -> list[dict[str, Any]]:
    """The rows to store for the window's hours (reco lines, watch lines and predictions as
    Spark frames; `newest` is the newest event time seen, which says whether each hour's
    follow-up window is complete)."""
    from pyspark.sql import functions as F

    in_hours = (F.col(TIME_COL) >= F.lit(window.start)) & (F.col(TIME_COL) < F.lit(window.end))
    lines = attribute(reco.where(in_hours), predictions)
    watch = watch.where(
        (F.col(TIME_COL) >= F.lit(window.start))
        & (F.col(TIME_COL) <= F.lit(window.end + window.follow_up))
    )
    lines = hits(lines, watch, window.window_minutes)
    rows = [r.asDict() for r in aggregate(lines, window.deadline_ms).collect()]
    for row in rows:
        _finish(row, window, newest)
    return sorted(rows, key=lambda r: (r[HOUR_COL], r[MODEL_VERSION_COL], r[VARIANT_COL]))


def _finish(row: dict[str, Any], window: Window, newest: datetime) -> None:
    """Shares, the Wilson interval and completeness of one aggregated row, in place."""
    row["availability"] = row["ok_requests"] / row["requests"] if row["requests"] else None
    row["personalised_share"] = row["personalised"] / row["answers"] if row["answers"] else None
    row["online_accuracy"] = row["hits"] / row["lists"] if row["lists"] else None
    low, high = wilson(row["hits"], row["lists"])
    row["accuracy_low"] = None if math.isnan(low) else low
    row["accuracy_high"] = None if math.isnan(high) else high
    row["window_minutes"] = window.window_minutes
    row["deadline_ms"] = window.deadline_ms
    hour_end = row[HOUR_COL] + timedelta(hours=1)
    row["complete"] = newest >= hour_end + window.follow_up


# ------------------------------------------------------------------ the lake and Postgres
def _empty_predictions(spark):
    return spark.createDataFrame(
        [],
        f"{TIME_COL} timestamp, {USER_COL} bigint, {MODEL_VERSION_COL} string, "
        f"{VARIANT_COL} string, {SOURCE_COL} string, {SERVED_LIST_COL} array<string>",
    )


def newest_event(spark, snapshots) -> datetime | None:
    """The newest event time among the snapshots' watch and reco lines (the run's 'now')."""
    from pyspark.sql import functions as F

    from jobs.train.dataset import read_table

    found = []
    for table in ("watch", "reco_request"):
        frame = read_table(spark, snapshots, table, [TIME_COL])
        if frame is not None:
            found.append(frame.agg(F.max(TIME_COL)).first()[0])
    found = [t for t in found if t is not None]
    return max(found) if found else None


def evaluate_lake(
    spark,
    snapshots,
    prediction_batches,
    hours: int = 6,
    window_minutes: int = WINDOW_MINUTES,
    deadline_ms: int = DEADLINE_MS,
) -> tuple[Window | None, list[dict[str, Any]]]:
    """The last `hours` event-time hours of the snapshots, evaluated; (window, rows)."""
    from jobs.train.dataset import read_table

    newest = newest_event(spark, snapshots)
    reco = read_table(spark, snapshots, "reco_request", RECO_COLUMNS + RECO_KEY)
    if newest is None or reco is None:
        return None, []
    start, end = hours_to_evaluate(newest, hours)
    window = Window(start, end, window_minutes, deadline_ms)
    watch = read_table(spark, snapshots, "watch", [TIME_COL, USER_COL, ITEM_COL])
    if watch is None:
        watch = spark.createDataFrame(
            [], f"{TIME_COL} timestamp, {USER_COL} bigint, {ITEM_COL} string"
        )
    predictions = read_table(
        spark, prediction_batches, "predictions", [*PREDICTION_COLUMNS, SERVED_LIST_COL]
    )
    if predictions is None:
        predictions = _empty_predictions(spark)
    return window, metrics(reco, watch, predictions, window, newest)


def store(window: Window, rows: list[dict[str, Any]], database_url: str | None = None) -> int:
    """Replace the window's hours in online_metrics with `rows` in one transaction; the count."""
    from psycopg2.extras import execute_batch

    from contracts import db

    conn = db.connect(database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                db.read_sql("online/clear_hours.sql"), {"start": window.start, "end": window.end}
            )
            execute_batch(cur, db.read_sql("online/upsert_metrics.sql"), rows)
    finally:
        conn.close()
    return len(rows)


def run(
    hours: int = 6,
    window_minutes: int = WINDOW_MINUTES,
    database_url: str | None = None,
    predictions_hours: float = 72.0,
) -> str | None:
    """Evaluate the last `hours` event-time hours of the accepted snapshots and replace them in
    online_metrics; the hours as `start/end` (None: no accepted snapshot with events yet).

    Only snapshots reaching into those hours are read, and only the prediction batches of the
    last `predictions_hours` of the log's own clock.
    """
    from jobs.ingest import lake
    from jobs.online import predictions
    from jobs.spark import get_spark

    refs = lake.accepted_snapshots(database_url=database_url)
    newest = max((r.max_event_time for r in refs if r.max_event_time), default=None)
    if newest is None:
        log.info("no accepted snapshot with events: nothing to evaluate")
        return None
    start, _end = hours_to_evaluate(newest, hours)
    wanted = [r.path for r in refs if r.max_event_time and r.max_event_time >= start]
    batches = predictions.batch_dirs(recent_hours=predictions_hours)
    spark = get_spark("online_evaluation", shuffle_partitions=4)
    window, rows = evaluate_lake(spark, wanted, batches, hours, window_minutes)
    if window is None:
        return None
    stored = store(window, rows, database_url)
    span = f"{window.start.isoformat()}/{window.end.isoformat()}"
    log.info("online metrics for %s: %d rows from %d snapshots", span, stored, len(wanted))
    return span


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=int, default=6, help="event-time hours to (re)compute")
    parser.add_argument("--window-minutes", type=int, default=WINDOW_MINUTES)
    parser.add_argument("--predictions-hours", type=float, default=72.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    span = run(args.hours, args.window_minutes, predictions_hours=args.predictions_hours)
    print(json.dumps({"hours": span}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
