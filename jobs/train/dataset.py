"""Training dataset job (Spark): snapshots -> per-(user, movie) interactions -> time-based split.

Input: snapshot directories of the lake, each holding Parquet tables `watch` (event_time,
user_id, movie_id, minute) and/or `rate` (event_time, user_id, movie_id, rating 1..5),
partitioned by event_date. Output, under one dataset directory:
  train/, test/      Parquet, one row per (user_id, movie_id) with the columns of COLUMNS
  test_cold/         post-cutoff interactions of cold users/movies (global split), + `cold`
  manifest.json      snapshots used (ids, their manifests: offsets, files), window, counts, rule
The DAG (jobs.pipeline.build_dataset) and the CLI (`python -m jobs.train.dataset`) both build
through build_from_lake: the accepted lake snapshots and the catalogue's runtimes.

Rules (also written into the manifest):
- Window: only events with event_time >= newest_event - window_days, where newest_event is the
  newest event in the input (never the wall clock), so a replayed old log behaves like live data.
- Interaction of (user, movie): minutes_watched = distinct minutes watched; fraction_watched =
  min(1, minutes_watched / runtime), runtime from the catalogue when given, else the largest
  minute anyone watched of that movie + 1; rating = the user's latest rating (null if none);
  strength = fraction_watched + rating / 5 (0 < strength <= 2); event_time = the last event of
  the pair, first_time = its first.
- Split `global` (default): one cutoff time T for everybody, the (1 - test_fraction) quantile
  of the interactions' event_time (or newest_event - holdout_days when that is given). Train =
  interactions with event_time < T; test = interactions with event_time >= T of users AND
  movies that have training history; the other post-T interactions (cold users, then cold
  movies) go to test_cold/ with a `cold` column and are counted in the manifest, never scored.
  So nothing after T reaches training (max train time < T <= min test time), every model is
  measured on the same test users and movies, and each user's test events come after all of
  that user's training events. A pair's features come only from its own events, and its
  event_time is its last event, so a pair with any event at or after T is not in train.
- Evaluation protocol (manifest `evaluation`): `global` (the split above) when its test part
  has at least `min_test_users` warm users; otherwise `rolling`: cuts T_1 < … < T_n at the
  event-time quantiles ROLLING_FIRST_QUANTILE + (1 - ROLLING_FIRST_QUANTILE)·i/n; fold i
  trains on event_time < T_i and tests warm users/movies with T_i <= event_time < T_(i+1),
  so no fold trains on anything at or after its own test window. Folds are cut from the
  window's interactions at load time (`load_folds`).
- Split `per_user` (the older rule, kept as an option): per user with at least
  `min_user_interactions` interactions, ordered by (event_time, movie_id), the last
  max(1, floor(test_fraction * n)) are test (max train time <= min test time per user, but
  other users' later events are in train). Users with fewer interactions are train only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from contracts import settings
from contracts.names import (
    ITEM_COL,
    MINUTE_COL,
    RATING_COL,
    STRENGTH_COL,
    TIME_COL,
    USER_COL,
)
from jobs.files import replace_dir
from jobs.train.splits import (  # noqa: F401 - temporal_split is part of this module's API
    COLD_COL,
    DEFAULT_TEST_FRACTION,
    temporal_split,
)

log = logging.getLogger(__name__)

DEFAULT_WINDOW_DAYS: float | None = None  # all history (docs/models.md: the window rule)
DEFAULT_MIN_USER_INTERACTIONS = 5
SPLITS = ("global", "per_user")
DEFAULT_SPLIT = "global"
CUTOFF_RELATIVE_ERROR = 1e-5  # approxQuantile rank error of the global cutoff
# Evaluation protocol: the global cut when it leaves enough warm test users for a decision,
# else rolling cuts pooled (docs/models.md, "Evaluation protocol").
DEFAULT_MIN_TEST_USERS = 500
ROLLING_FOLDS = 6
ROLLING_FIRST_QUANTILE = 0.4
PROTOCOLS = ("global", "rolling", "per_user")
COLUMNS = [
    USER_COL,
    ITEM_COL,
    RATING_COL,
    STRENGTH_COL,
    "minutes_watched",
    "fraction_watched",
    "first_time",
    TIME_COL,
]
# Feature columns a side may lack (no watch or no rate events), as typed nulls.
FEATURE_TYPES = [
    ("minutes_watched", "bigint"),
    ("fraction_watched", "double"),
    (RATING_COL, "double"),
    ("w_first", "timestamp"),
    ("w_last", "timestamp"),
    ("r_first", "timestamp"),
    ("r_last", "timestamp"),
]
# The manifest's counts (all integers).
COUNTS = (
    "interactions",
    "train",
    "test",
    "test_cold_user",
    "test_cold_item",
    "users",
    "movies",
    "test_users",
    "rated",
)


def split_rule(
    test_fraction: float,
    min_user_interactions: int,
    split: str = "per_user",
    holdout_days: float | None = None,
) -> str:
    """The split rule in words, as the manifest records it."""
    if split == "global":
        if holdout_days is not None:
            cutoff = f"T = newest event - {holdout_days} days"
        else:
            cutoff = f"T = the {1 - test_fraction:g} quantile of {TIME_COL}"
        return (
            f"global temporal: {cutoff}; train = {TIME_COL} < T; test = {TIME_COL} >= T of users "
            "and movies with training history; other post-T rows in test_cold"
        )
    return (
        f"per user with >= {min_user_interactions} interactions ordered by ({TIME_COL}, "
        f"{ITEM_COL}): the last max(1, floor({test_fraction} * n)) are test; others train only"
    )


def snapshot_info(path: Path) -> dict[str, Any]:
    """What the manifest records of one snapshot: id, its own manifest (offsets...), files."""
    info: dict[str, Any] = {"snapshot_id": path.name, "path": str(path)}
    own = path / "manifest.json"
    if own.exists():
        info["manifest"] = json.loads(own.read_text())
        info["snapshot_id"] = info["manifest"].get("snapshot_id", path.name)
    info["files"] = sorted(
        str(p.relative_to(path)) for t in ("watch", "rate") for p in (path / t).rglob("*.parquet")
    )
    return info


def read_table(spark, snapshots: Sequence[Path], table: str, columns: list[str]):
    """Union of one table over the snapshots that have it (None when none has it)."""
    paths = [str(s / table) for s in snapshots if (s / table).exists()]
    if not paths:
        return None
    union = None
    for path in paths:
        frame = spark.read.parquet(path)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"table {table!r} at {path} lacks columns {missing}")
        frame = frame.select(*columns)
        union = frame if union is None else union.unionByName(frame)
    return union


def catalog_runtimes() -> pd.DataFrame | None:
    """movie_id, runtime (minutes) from the Postgres catalogue `movies`, None if unavailable."""
    try:
        from sqlalchemy import text

        from contracts import db

        with db.engine().connect() as conn:
            frame = pd.read_sql(
                text("SELECT movie_id, runtime FROM movies WHERE runtime > 0"), conn
            )
    except Exception as exc:  # noqa: BLE001 - a missing catalogue is a designed fallback
        log.warning("no catalogue runtimes (%s); fraction watched uses the max minute seen", exc)
        return None
    return frame


def dataset_id(newest: datetime, snapshots: Sequence[Path], params: dict[str, Any]) -> str:
    """`ds-<YYYYmmddHHMMSS of newest event>-<hash8 of inputs and parameters>`."""
    key = json.dumps({"snapshots": [str(s) for s in snapshots], **params}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"ds-{newest:%Y%m%d%H%M%S}-{digest}"


@dataclass(frozen=True)
class Rules:
    """The window, split and evaluation parameters of one build (all recorded in the manifest)."""

    window_days: float | None
    test_fraction: float
    min_user_interactions: int
    split: str
    holdout_days: float | None
    min_test_users: int

    def id_params(self) -> dict[str, Any]:
        """The parameters hashed into the dataset id."""
        params = {
            "window_days": self.window_days,
            "test_fraction": self.test_fraction,
            "min_user_interactions": self.min_user_interactions,
        }
        if self.split != "per_user":  # keeps the ids of datasets built with the older rule
            params.update(
                split=self.split, holdout_days=self.holdout_days, min_test_users=self.min_test_users
            )
        return params


def build_dataset(
    snapshots: Sequence[str | Path],
    out: str | Path | None = None,
    window_days: float | None = DEFAULT_WINDOW_DAYS,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    min_user_interactions: int = DEFAULT_MIN_USER_INTERACTIONS,
    runtimes: pd.DataFrame | None = None,
    spark=None,
    split: str = DEFAULT_SPLIT,
    holdout_days: float | None = None,
    min_test_users: int = DEFAULT_MIN_TEST_USERS,
    exclusion: str | Path | None = None,
) -> Path:
    """Build train/test(/test_cold) Parquet + manifest.json from snapshots; return the directory.

    `exclusion`: a spam detection directory (jobs/train/detect.py) whose flagged accounts'
    events are dropped before anything else; the manifest records it under `exclusion`.

    `out` defaults to settings.lake_dir/datasets/<dataset_id>. Rerunning replaces the output
    atomically (written aside, then swapped in), so a crash never leaves a half dataset.
    """
    from jobs.spark import get_spark

    rules = Rules(
        window_days=window_days,
        test_fraction=test_fraction,
        min_user_interactions=min_user_interactions,
        split=split,
        holdout_days=holdout_days,
        min_test_users=min_test_users,
    )
    snaps = check_arguments(snapshots, rules)
    spark = spark or get_spark("dataset")
    watch, rate = drop_flagged(spark, read_events(spark, snaps), exclusion)
    newest = newest_event(watch, rate)
    start = window_start(newest, window_days)
    watch, rate = apply_window(watch, start), apply_window(rate, start)
    sessions, runtime_source = watch_sessions(spark, watch, runtimes)
    table = interaction_table(sessions, latest_ratings(rate))
    table = table.cache()  # read twice: the cutoff quantile, then the labels
    labelled, cutoff = label(table, newest, rules)
    labelled = labelled.cache()
    out = Path(out) if out else default_out(newest, snaps, rules, exclusion)
    tmp = out.with_name(f".{out.name}.tmp")
    write_parts(labelled, tmp, parallelism=max(1, spark.sparkContext.defaultParallelism))
    counts, part_times = count_parts(labelled)
    evaluation = evaluation_plan(table, split, counts["test_users"], min_test_users)
    labelled.unpersist()
    table.unpersist()
    times = {"newest": newest, "start": start, "cutoff": cutoff, **part_times}
    manifest = manifest_for(
        out, snaps, rules, times=times, counts=counts, evaluation=evaluation, source=runtime_source
    )
    manifest["exclusion"] = exclusion_record(exclusion)
    move_into_place(tmp, out, manifest)
    log.info("dataset %s: %s", out, counts)
    return out


def check_arguments(snapshots: Sequence[str | Path], rules: Rules) -> list[Path]:
    """The snapshot directories, after a clear error for any argument that cannot work."""
    if not 0 < rules.test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {rules.test_fraction}")
    if rules.split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {rules.split!r}")
    holdout = rules.holdout_days
    if holdout is not None and (rules.split != "global" or float(holdout) <= 0):
        raise ValueError(f"holdout_days={holdout} needs split='global' and a positive value")
    snaps = [Path(s) for s in snapshots]
    if not snaps:
        raise ValueError("no snapshots given: nothing to build a dataset from")
    for s in snaps:
        if not s.is_dir():
            raise ValueError(f"snapshot directory {s} does not exist")
    return snaps


def read_events(spark, snaps: Sequence[Path]):
    """(watch, rate) event frames over the snapshots; either is None when no snapshot has it."""
    watch = read_table(spark, snaps, "watch", [TIME_COL, USER_COL, ITEM_COL, MINUTE_COL])
    rate = read_table(spark, snaps, "rate", [TIME_COL, USER_COL, ITEM_COL, RATING_COL])
    if watch is None and rate is None:
        raise ValueError(f"none of {len(snaps)} snapshots has a watch or rate table")
    return watch, rate


def drop_flagged(spark, events: tuple, exclusion: str | Path | None) -> tuple:
    """(watch, rate) without the events of the accounts the detection flagged."""
    if exclusion is None:
        return events
    from jobs.train import detect

    users = detect.flagged_users(exclusion)
    if not users:
        return events
    flagged = spark.createDataFrame([(u,) for u in users], f"{USER_COL} long")
    return tuple(
        None if e is None else e.join(flagged.hint("broadcast"), USER_COL, "left_anti")
        for e in events
    )


def exclusion_record(exclusion: str | Path | None) -> dict[str, Any] | None:
    """The manifest's `exclusion`: detector version, flagged count, where the list is."""
    if exclusion is None:
        return None
    from jobs.train import detect

    return detect.exclusion_record(exclusion)


def newest_event(watch, rate) -> datetime:
    """The newest event time of the input: where windows and holdouts are measured from."""
    from pyspark.sql import functions as F

    times = [t.agg(F.max(TIME_COL)).first()[0] for t in (watch, rate) if t is not None]
    times = [t for t in times if t is not None]
    if not times:
        raise ValueError("the snapshots hold no events")
    return max(times)


def window_start(newest: datetime, window_days: float | None) -> datetime | None:
    """First event time inside the window (None: all history)."""
    if window_days is None:
        return None
    return newest - pd.Timedelta(days=float(window_days)).to_pytimedelta()


def apply_window(events, start: datetime | None):
    """The events at or after `start` (all of them without a start; None stays None)."""
    from pyspark.sql import functions as F

    if events is None or start is None:
        return events
    return events.where(F.col(TIME_COL) >= F.lit(start))


def movie_runtimes(spark, watch, runtimes: pd.DataFrame | None):
    """(movie_id, rt) of every watched movie, and the rule in words: the catalogue's runtime
    when given, else the largest minute anyone watched + 1."""
    from pyspark.sql import functions as F

    lengths = watch.groupBy(ITEM_COL).agg((F.max(MINUTE_COL) + 1).alias("seen_runtime"))
    source = "max minute seen + 1"
    if runtimes is not None and len(runtimes):
        catalog = spark.createDataFrame(
            runtimes[[ITEM_COL, "runtime"]].astype({ITEM_COL: str, "runtime": float})
        )
        lengths = lengths.join(catalog, ITEM_COL, "left")
        source = "catalogue runtime, else max minute seen + 1"
    else:
        lengths = lengths.withColumn("runtime", F.lit(None).cast("double"))
    runtime = F.coalesce(F.col("runtime"), F.col("seen_runtime").cast("double"))
    return lengths.select(ITEM_COL, runtime.alias("rt")), source


def watch_sessions(spark, watch, runtimes: pd.DataFrame | None):
    """(per (user, movie): minutes_watched, fraction_watched, w_first, w_last; the runtime
    rule in words). (None, "none …") without watch events."""
    from pyspark.sql import functions as F

    if watch is None:
        return None, "none (no watch events)"
    lengths, source = movie_runtimes(spark, watch, runtimes)
    sessions = watch.groupBy(USER_COL, ITEM_COL).agg(
        F.countDistinct(MINUTE_COL).alias("minutes_watched"),
        F.min(TIME_COL).alias("w_first"),
        F.max(TIME_COL).alias("w_last"),
    )
    sessions = sessions.join(lengths, ITEM_COL, "left")
    fraction = F.least(F.col("minutes_watched") / F.col("rt"), F.lit(1.0))
    return sessions.withColumn("fraction_watched", fraction).drop("rt"), source


def latest_ratings(rate):
    """Per (user, movie): the latest rating, r_first, r_last (None without rate events)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if rate is None:
        return None
    latest = Window.partitionBy(USER_COL, ITEM_COL).orderBy(F.col(TIME_COL).desc())
    return (
        rate.withColumn("_n", F.row_number().over(latest))
        .groupBy(USER_COL, ITEM_COL)
        .agg(
            F.max(F.when(F.col("_n") == 1, F.col(RATING_COL))).cast("double").alias(RATING_COL),
            F.min(TIME_COL).alias("r_first"),
            F.max(TIME_COL).alias("r_last"),
        )
    )


def interaction_table(sessions, ratings):
    """One row per (user, movie) with the columns of COLUMNS, from sessions and/or ratings."""
    from pyspark.sql import functions as F

    parts = [p for p in (sessions, ratings) if p is not None]
    keys = [USER_COL, ITEM_COL]
    joined = parts[0] if len(parts) == 1 else parts[0].join(parts[1], keys, "full_outer")
    for name, kind in FEATURE_TYPES:
        if name not in joined.columns:
            joined = joined.withColumn(name, F.lit(None).cast(kind))
    return joined.select(
        F.col(USER_COL).cast("long").alias(USER_COL),
        F.col(ITEM_COL).cast("string").alias(ITEM_COL),
        F.col(RATING_COL),
        (
            F.coalesce("fraction_watched", F.lit(0.0))
            + F.coalesce(F.col(RATING_COL) / 5.0, F.lit(0.0))
        ).alias(STRENGTH_COL),
        F.coalesce("minutes_watched", F.lit(0)).cast("int").alias("minutes_watched"),
        F.coalesce("fraction_watched", F.lit(0.0)).alias("fraction_watched"),
        F.least("w_first", "r_first").alias("first_time"),
        F.greatest("w_last", "r_last").alias(TIME_COL),
    )


def label(interactions, newest: datetime, rules: Rules):
    """(interactions with `_part` by the rules' split, the global cutoff T or None)."""
    if rules.split == "global":
        return label_global(interactions, newest, rules.test_fraction, rules.holdout_days)
    return label_per_user(interactions, rules.test_fraction, rules.min_user_interactions), None


def default_out(
    newest: datetime, snaps: Sequence[Path], rules: Rules, exclusion: str | Path | None = None
) -> Path:
    """settings.lake_dir/datasets/<dataset_id> (the exclusion's id hashed in when there is one)."""
    params = rules.id_params()
    if exclusion is not None:
        params["exclusion"] = Path(exclusion).name
    return settings.load().lake_dir / "datasets" / dataset_id(newest, snaps, params)


def write_parts(labelled, tmp: Path, parallelism: int) -> None:
    """train/, test/ and test_cold/ (with its `cold` column) as Parquet under `tmp`, afresh."""
    from pyspark.sql import functions as F

    shutil.rmtree(tmp, ignore_errors=True)
    for part in ("train", "test"):
        rows = labelled.where(F.col("_part") == part).select(*COLUMNS)
        rows.coalesce(parallelism).write.parquet(str(tmp / part))
    cold = labelled.where(F.col("_part").startswith("cold_"))
    cold = cold.select(*COLUMNS, F.substring("_part", 6, 10).alias(COLD_COL))
    cold.coalesce(1).write.parquet(str(tmp / "test_cold"))


def count_parts(labelled) -> tuple[dict[str, int], dict[str, datetime | None]]:
    """(the manifest's counts, the times it reports: oldest, train_newest, test_oldest)."""
    from pyspark.sql import functions as F

    part = F.col("_part")
    row = labelled.agg(
        F.count("*").alias("interactions"),
        F.sum((part == "test").cast("int")).alias("test"),
        F.sum((part == "train").cast("int")).alias("train"),
        F.sum((part == "cold_user").cast("int")).alias("test_cold_user"),
        F.sum((part == "cold_item").cast("int")).alias("test_cold_item"),
        F.countDistinct(USER_COL).alias("users"),
        F.countDistinct(ITEM_COL).alias("movies"),
        F.countDistinct(F.when(part == "test", F.col(USER_COL))).alias("test_users"),
        F.max(F.when(part == "train", F.col(TIME_COL))).alias("train_newest"),
        F.min(F.when(part == "test", F.col(TIME_COL))).alias("test_oldest"),
        F.sum(F.col(RATING_COL).isNotNull().cast("int")).alias("rated"),
        F.min(TIME_COL).alias("oldest"),
    ).first()
    counts = {k: int(row[k] or 0) for k in COUNTS}
    return counts, {k: row[k] for k in ("oldest", "train_newest", "test_oldest")}


def manifest_for(
    out: Path,
    snaps: Sequence[Path],
    rules: Rules,
    *,
    times: dict[str, datetime | None],
    counts: dict[str, int],
    evaluation: dict[str, Any],
    source: str,
) -> dict[str, Any]:
    """manifest.json of the dataset at `out`: inputs, window, split, evaluation, counts.

    `times`: newest (event), start (of the window), cutoff, oldest, train_newest, test_oldest;
    `source`: the runtime rule in words.
    """
    return {
        "dataset_id": out.name,
        "snapshots": [snapshot_info(s) for s in snaps],
        "window": {
            "days": rules.window_days,
            "start": iso(times["start"]),
            "newest_event": iso(times["newest"]),
            "oldest_interaction": iso(times["oldest"]),
            "measured_from": "newest event in the input, not the wall clock",
        },
        "split": {
            "window_days": rules.window_days,
            "test_fraction": rules.test_fraction,
            "min_user_interactions": rules.min_user_interactions,
            "kind": rules.split,
            "holdout_days": rules.holdout_days,
            "cutoff": iso(times["cutoff"]),
            "train_newest": iso(times["train_newest"]),
            "test_oldest": iso(times["test_oldest"]),
            "rule": split_rule(
                rules.test_fraction, rules.min_user_interactions, rules.split, rules.holdout_days
            ),
        },
        "evaluation": evaluation,
        "strength": "fraction_watched + rating / 5",
        "runtime_source": source,
        "counts": counts,
        "columns": COLUMNS,
        "built_at": datetime.now(UTC).isoformat(),
    }


def move_into_place(tmp: Path, out: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest last into `tmp`, then make it `out` in one atomic step."""
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    replace_dir(tmp, out)


def build_from_lake(
    window_days: float | None = DEFAULT_WINDOW_DAYS,
    with_catalog: bool = True,
    snapshots: Sequence[str | Path] | None = None,
    **options: Any,
) -> Path:
    """The dataset the DAG and the CLI build: the accepted lake snapshots (unless `snapshots`
    are given) with the catalogue's runtimes (unless `with_catalog` is False); `options` are
    build_dataset's other keywords."""
    chosen = snapshots or default_snapshots()
    runtimes = catalog_runtimes() if with_catalog else None
    return build_dataset(chosen, window_days=window_days, runtimes=runtimes, **options)


def iso(value: datetime | None) -> str | None:
    """ISO text of a timestamp, None for None."""
    return value.isoformat() if value is not None else None


def label_per_user(interactions, test_fraction: float, min_user_interactions: int):
    """`_part` = train | test by the per-user rule (the last floor(f * n) of each user)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order = Window.partitionBy(USER_COL).orderBy(TIME_COL, ITEM_COL)
    n = F.count("*").over(Window.partitionBy(USER_COL))
    n_test = F.when(
        n >= min_user_interactions, F.greatest(F.lit(1), F.floor(n * test_fraction).cast("int"))
    ).otherwise(0)
    is_test = F.row_number().over(order) > n - n_test
    return interactions.withColumn("_part", F.when(is_test, "test").otherwise("train"))


def label_global(interactions, newest: datetime, test_fraction: float, holdout_days: float | None):
    """(`_part` = train | test | cold_user | cold_item by one cutoff T, T as a datetime)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if holdout_days is not None:
        cutoff = newest - pd.Timedelta(days=float(holdout_days)).to_pytimedelta()
    else:
        # Quantile in microseconds (works for TIMESTAMP and TIMESTAMP_NTZ columns); T is then
        # the first event time at or after it, a value of the column itself.
        micros = F.unix_micros(F.col(TIME_COL).cast("timestamp"))
        values = interactions.select(micros.alias("t"))
        quantile = values.approxQuantile("t", [1.0 - test_fraction], CUTOFF_RELATIVE_ERROR)
        if not quantile:
            raise ValueError("no interactions to split")
        cutoff = interactions.where(micros >= F.lit(quantile[0])).agg(F.min(TIME_COL)).first()[0]
    before = (F.col(TIME_COL) < F.lit(cutoff)).cast("int")
    user_warm = F.max(before).over(Window.partitionBy(USER_COL)) == 1
    item_warm = F.max(before).over(Window.partitionBy(ITEM_COL)) == 1
    part = (
        F.when(before == 1, "train")
        .when(~user_warm, "cold_user")
        .when(~item_warm, "cold_item")
        .otherwise("test")
    )
    return interactions.withColumn("_part", part), cutoff


def evaluation_plan(interactions, split: str, test_users: int, min_test_users: int) -> dict:
    """The manifest's `evaluation`: which protocol, why, and the rolling cut times if any."""
    plan: dict[str, Any] = {
        "protocol": split,
        "min_test_users": min_test_users,
        "global_test_users": test_users,
        "cuts": [],
    }
    if split != "global":
        plan["reason"] = f"the {split} split was asked for"
        return plan
    if test_users >= min_test_users:
        plan["reason"] = f"the global cut leaves {test_users} warm test users (>= {min_test_users})"
        return plan
    plan["protocol"] = "rolling"
    plan["reason"] = (
        f"the global cut leaves {test_users} warm test users (< {min_test_users}): "
        f"{ROLLING_FOLDS} rolling cuts pooled"
    )
    plan["cuts"] = [iso(t) for t in rolling_cuts(interactions)]
    return plan


def rolling_cuts(interactions, folds: int = ROLLING_FOLDS) -> list[datetime]:
    """Distinct cut times at evenly spaced event-time quantiles from ROLLING_FIRST_QUANTILE."""
    from pyspark.sql import functions as F

    step = (1.0 - ROLLING_FIRST_QUANTILE) / folds
    quantiles = [ROLLING_FIRST_QUANTILE + i * step for i in range(folds)]
    micros = F.unix_micros(F.col(TIME_COL).cast("timestamp"))
    values = interactions.select(micros.alias("t"))
    cuts = []
    for q in values.approxQuantile("t", quantiles, CUTOFF_RELATIVE_ERROR):
        first = interactions.where(micros >= F.lit(q)).agg(F.min(TIME_COL)).first()[0]
        if first is not None and first not in cuts:
            cuts.append(first)
    return sorted(cuts)


def rolling_folds(
    frame: pd.DataFrame, cuts: Sequence[Any], time_col: str = TIME_COL
) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """(train, test) per cut: train = before T_i; test = warm rows in [T_i, T_(i+1))."""
    times = pd.to_datetime(frame[time_col])
    bounds = [pd.Timestamp(c) for c in cuts] + [None]
    folds = []
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        train = frame[(times < start).to_numpy()]
        window = (times >= start) if end is None else (times >= start) & (times < end)
        later = frame[window.to_numpy()]
        warm = later[USER_COL].isin(train[USER_COL]) & later[ITEM_COL].isin(train[ITEM_COL])
        if len(train) and warm.any():
            folds.append((train, later[warm]))
    return folds


def load_interactions(dataset_path: str | Path) -> pd.DataFrame:
    """Every interaction of the dataset's window (train + test + test_cold): what a refit uses."""
    train, test = load_split(dataset_path)
    cold = load_cold(dataset_path).drop(columns=[COLD_COL])
    parts = [f for f in (train, test, cold) if len(f)]
    frame = pd.concat(parts, ignore_index=True)
    frame[USER_COL] = frame[USER_COL].astype(np.int64)
    frame[ITEM_COL] = frame[ITEM_COL].astype(str)
    return frame


def load_folds(dataset_path: str | Path) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """The (train, test) folds of the dataset's evaluation protocol (one for global)."""
    plan = read_manifest(dataset_path).get("evaluation") or {"protocol": "global"}
    if plan["protocol"] != "rolling":
        return [load_split(dataset_path)]
    return rolling_folds(load_interactions(dataset_path), plan["cuts"])


def read_interactions(spark, dataset_path: str | Path, parts: Sequence[str] = ("train", "test")):
    """The dataset's Parquet `parts` as one Spark DataFrame of COLUMNS (training at scale)."""
    from functools import reduce

    from pyspark.sql import functions as F

    path = Path(dataset_path)
    frames = [
        spark.read.parquet(str(path / part)).select(*COLUMNS)
        for part in parts
        if any((path / part).glob("*.parquet"))
    ]
    frame = reduce(lambda a, b: a.unionByName(b), frames)
    return frame.withColumn(USER_COL, F.col(USER_COL).cast("long"))


def load_interactions_spark(spark, dataset_path: str | Path):
    """load_interactions as a Spark DataFrame: train + test + test_cold, nothing on the driver."""
    return read_interactions(spark, dataset_path, ("train", "test", "test_cold"))


def load_folds_spark(spark, dataset_path: str | Path) -> list[tuple[Any, Any]]:
    """load_folds as Spark DataFrames: the (train, test) parts, or the rolling folds."""
    from pyspark.sql import functions as F

    plan = read_manifest(dataset_path).get("evaluation") or {"protocol": "global"}
    if plan["protocol"] != "rolling":
        parts = [read_interactions(spark, dataset_path, (part,)) for part in ("train", "test")]
        return [(parts[0], parts[1])]
    frame = load_interactions_spark(spark, dataset_path)
    bounds = [pd.Timestamp(c).to_pydatetime() for c in plan["cuts"]] + [None]
    folds = []
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        train = frame.where(F.col(TIME_COL) < F.lit(start))
        later = frame.where(F.col(TIME_COL) >= F.lit(start))
        if end is not None:
            later = later.where(F.col(TIME_COL) < F.lit(end))
        warm = later.join(train.select(USER_COL).distinct(), USER_COL, "left_semi").join(
            train.select(ITEM_COL).distinct(), ITEM_COL, "left_semi"
        )
        if not train.isEmpty() and not warm.isEmpty():
            folds.append((train, warm))
    return folds


def read_manifest(dataset_path: str | Path) -> dict[str, Any]:
    """The manifest.json of a dataset directory."""
    return json.loads((Path(dataset_path) / "manifest.json").read_text())


def load_split(dataset_path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) pandas frames of a dataset directory, with normalised dtypes."""
    path = Path(dataset_path)
    if not (path / "manifest.json").exists():
        raise FileNotFoundError(f"{path} is not a dataset (no manifest.json)")
    frames = []
    for name in ("train", "test"):
        frame = pd.read_parquet(path / name)
        frame[USER_COL] = frame[USER_COL].astype(np.int64)
        frame[ITEM_COL] = frame[ITEM_COL].astype(str)
        frames.append(frame)
    return frames[0], frames[1]


def load_cold(dataset_path: str | Path) -> pd.DataFrame:
    """Post-cutoff interactions of cold users/movies (column `cold`: user | item), maybe empty."""
    path = Path(dataset_path) / "test_cold"
    files = sorted(path.glob("*.parquet")) if path.exists() else []
    if not files:
        return pd.DataFrame(columns=[*COLUMNS, COLD_COL])
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def default_snapshots() -> list[Path]:
    """Accepted snapshots from the lake (jobs.ingest.lake), as directories."""
    try:
        from jobs.ingest import lake
    except ImportError as exc:
        raise SystemExit(
            "jobs.ingest.lake is not available: pass --snapshot PATH explicitly"
        ) from exc
    return [Path(getattr(s, "path", s)) for s in lake.accepted_snapshots()]


def arg_parser() -> argparse.ArgumentParser:
    """The command line of `python -m jobs.train.dataset`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="dataset directory to write")
    parser.add_argument(
        "--snapshot",
        type=Path,
        action="append",
        default=None,
        help="snapshot directory (repeat); default: accepted lake snapshots",
    )
    parser.add_argument(
        "--window-days",
        type=float,
        default=0,
        help="days back from the newest event (default 0 = all history)",
    )
    parser.add_argument("--test-fraction", type=float, default=DEFAULT_TEST_FRACTION)
    parser.add_argument("--min-user-interactions", type=int, default=DEFAULT_MIN_USER_INTERACTIONS)
    parser.add_argument("--split", choices=SPLITS, default=DEFAULT_SPLIT)
    parser.add_argument(
        "--holdout-days", type=float, default=None, help="global split: test = last N days"
    )
    parser.add_argument("--min-test-users", type=int, default=DEFAULT_MIN_TEST_USERS)
    parser.add_argument("--no-catalog", action="store_true", help="skip catalogue runtimes")
    parser.add_argument(
        "--exclusion", type=Path, default=None, help="spam detection directory to exclude"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> Path:
    """Build a dataset as the DAG does (build_from_lake), with the options given; print its path."""
    args = arg_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    path = build_from_lake(
        window_days=args.window_days or None,
        with_catalog=not args.no_catalog,
        snapshots=args.snapshot,
        out=args.out,
        test_fraction=args.test_fraction,
        min_user_interactions=args.min_user_interactions,
        split=args.split,
        holdout_days=args.holdout_days,
        min_test_users=args.min_test_users,
        exclusion=args.exclusion,
    )
    print(path)
    return path


if __name__ == "__main__":
    main(sys.argv[1:])
