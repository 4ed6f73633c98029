"""Feedback loops measured from telemetry: concentration, watched-because-listed, coverage.

Per event-time day and per model version (plus '*', all versions), from the stream's
`recommendation request` and `watch` lines and the serving prediction log:

- exposure: every movie slot of the served lists (status 200) of the day; its concentration
  over the catalogue (Gini; share of the slots that go to the top 1% of movies) and its
  coverage (distinct served movies / catalogue);
- watching: watch starts (the first watch line of a (user, movie) in a day); their Gini and
  top-1% share over the catalogue;
- recommended share: of those watch starts, the share of a movie listed to that user within
  `window_minutes` before (jobs.online.evaluate.listed_then_watched, the online-accuracy hit).

A list is attributed to a model version as online evaluation does (jobs.online.evaluate.attribute);
a watch start to the version of the user's latest list at or before it ("" when none). The
catalogue is every movie seen in the data read (watched, rated or served), constant across days,
so a day on which fewer movies are touched shows as more concentrated, not as a smaller
catalogue. Per model version, `versions` holds its coverage over its whole serving life: the
catalogue coverage across retraining cycles. docs/responsible-ml.md ("Feedback loops") says why
these measures and what they do not say.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from contracts.names import ITEM_COL, MODEL_VERSION_COL, TIME_COL, USER_COL
from jobs.online import evaluate

log = logging.getLogger(__name__)

DAY_COL = "day"
COUNT_COL = "n"
FROM_REC_COL = "from_rec"
ALL = evaluate.ALL
TOP_FRACTION = 0.01
WINDOW_MINUTES = evaluate.WINDOW_MINUTES
SECTION = "feedback_loops"  # reports_dir/responsible/<SECTION>/ (jobs.online.responsible_site)
JSON_FILE = "report.json"
HTML_FILE = "report.html"
PLOT_FILE = "feedback.png"


# ------------------------------------------------------------------ pure measures
def gini(counts) -> float:
    """Gini coefficient of non-negative counts (0: all equal; (n-1)/n: all on one); nan if empty
    or all zero."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = len(x), x.sum()
    if n == 0 or total <= 0:
        return math.nan
    ranks = np.arange(1, n + 1)
    return float(2.0 * (ranks * x).sum() / (n * total) - (n + 1) / n)


def top_share(counts, fraction: float = TOP_FRACTION) -> float:
    """Share of the total held by the ceil(fraction * n) largest counts (at least one); nan if
    empty or all zero."""
    x = np.asarray(counts, dtype=np.float64)
    total = x.sum()
    if len(x) == 0 or total <= 0:
        return math.nan
    top = max(1, math.ceil(fraction * len(x)))
    return float(np.sort(x)[-top:].sum() / total)


def over_catalogue(counts: pd.Series, catalogue_size: int) -> np.ndarray:
    """Counts per movie padded with zeros for the catalogue's untouched movies."""
    values = counts.to_numpy(dtype=np.float64)
    missing = max(0, catalogue_size - len(values))
    return np.concatenate([values, np.zeros(missing)])


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else value


def group_row(exposure: pd.DataFrame, watches: pd.DataFrame, catalogue_size: int) -> dict:
    """The measures of one (day, model version): exposure (movie_id, n) and watch starts
    (movie_id, n, from_rec) of that group."""
    slots = exposure.groupby(ITEM_COL)[COUNT_COL].sum()
    watched = watches.groupby(ITEM_COL)[COUNT_COL].sum()
    n_watches = int(watched.sum())
    rec_watches = int(watches[FROM_REC_COL].sum())
    exposure_counts = over_catalogue(slots[slots > 0], catalogue_size)
    watch_counts = over_catalogue(watched[watched > 0], catalogue_size)
    return {
        "slots": int(slots.sum()),
        "served_movies": int((slots > 0).sum()),
        "exposure_gini": _finite(gini(exposure_counts)),
        "exposure_top1_share": _finite(top_share(exposure_counts)),
        "coverage": _ratio(int((slots > 0).sum()), catalogue_size),
        "watches": n_watches,
        "watched_movies": int((watched > 0).sum()),
        "watch_gini": _finite(gini(watch_counts)),
        "watch_top1_share": _finite(top_share(watch_counts)),
        "rec_watches": rec_watches,
        "rec_share": _ratio(rec_watches, n_watches),
    }


def summarise(exposure: pd.DataFrame, watches: pd.DataFrame, catalogue_size: int) -> list[dict]:
    """Rows per (day, model version) and (day, '*'): exposure rows are (day, model_version,
    movie_id, n) slot counts; watch rows (day, model_version, movie_id, n, from_rec) counts of
    watch starts and of those that followed a listing."""
    keys = [DAY_COL, MODEL_VERSION_COL]
    groups = set(map(tuple, exposure[keys].drop_duplicates().to_numpy().tolist()))
    groups |= set(map(tuple, watches[keys].drop_duplicates().to_numpy().tolist()))
    groups |= {(day, ALL) for day, _ in groups}
    rows = []
    for day, version in sorted(groups):
        pick_e = exposure[DAY_COL] == day
        pick_w = watches[DAY_COL] == day
        if version != ALL:
            pick_e &= exposure[MODEL_VERSION_COL] == version
            pick_w &= watches[MODEL_VERSION_COL] == version
        row = {DAY_COL: str(day), MODEL_VERSION_COL: version}
        row.update(group_row(exposure[pick_e], watches[pick_w], catalogue_size))
        rows.append(row)
    return rows


def relabel_days(frame: pd.DataFrame, periods: Mapping[str, Any]) -> pd.DataFrame:
    """A count frame with each day ('YYYY-MM-DD') replaced by its period in `periods` (e.g. a
    retraining cycle) and days outside every period dropped: summarise() then pools periods."""
    out = frame.copy()
    out[DAY_COL] = out[DAY_COL].astype(str).map(periods)
    return out[out[DAY_COL].notna()]


def version_coverage(exposure: pd.DataFrame, catalogue_size: int) -> list[dict]:
    """Per model version over its serving life: first and last day, slots, distinct movies
    served and coverage of the catalogue (the coverage across retraining cycles)."""
    out = []
    for version, group in exposure.groupby(MODEL_VERSION_COL, sort=True):
        served = group.loc[group[COUNT_COL] > 0, ITEM_COL].nunique()
        out.append(
            {
                MODEL_VERSION_COL: version,
                "first_day": str(group[DAY_COL].min()),
                "last_day": str(group[DAY_COL].max()),
                "slots": int(group[COUNT_COL].sum()),
                "served_movies": int(served),
                "coverage": _ratio(int(served), catalogue_size),
            }
        )
    return sorted(out, key=lambda r: (r["first_day"], r[MODEL_VERSION_COL]))


# ------------------------------------------------------------------ Spark: telemetry -> counts
def watch_starts(watch):
    """The first watch line of each (user, movie) per event-time day: one watch start."""
    from pyspark.sql import functions as F

    return watch.groupBy(USER_COL, ITEM_COL, F.to_date(TIME_COL).alias(DAY_COL)).agg(
        F.min(TIME_COL).alias(TIME_COL)
    )


def label_watches(lines, starts, window_minutes: int):
    """Watch starts with the model version of the user's latest list at or before them and
    from_rec (1: the movie was listed to the user within `window_minutes` before)."""
    from pyspark.sql import Window as W
    from pyspark.sql import functions as F

    matched = (
        evaluate.listed_then_watched(lines, starts, window_minutes)
        .select(USER_COL, ITEM_COL, F.col("watched").alias(TIME_COL))
        .distinct()
        .withColumn(FROM_REC_COL, F.lit(1))
    )
    served = lines.select(
        USER_COL, TIME_COL, F.lit(None).cast("string").alias(ITEM_COL), MODEL_VERSION_COL,
        F.lit(0).alias("kind"),
    )  # fmt: skip
    watched = starts.select(
        USER_COL, TIME_COL, ITEM_COL, F.lit(None).cast("string").alias(MODEL_VERSION_COL),
        F.lit(1).alias("kind"),
    )  # fmt: skip
    by_user = (
        W.partitionBy(USER_COL)
        .orderBy(TIME_COL, "kind")  # a list served in the same second comes first
        .rowsBetween(W.unboundedPreceding, W.currentRow)
    )
    latest = F.last(MODEL_VERSION_COL, ignorenulls=True).over(by_user)
    labelled = (
        served.unionByName(watched)
        .withColumn("latest", latest)
        .where(F.col("kind") == 1)
        .select(
            USER_COL,
            ITEM_COL,
            TIME_COL,
            F.to_date(TIME_COL).alias(DAY_COL),
            F.coalesce("latest", F.lit(evaluate.NONE)).alias(MODEL_VERSION_COL),
        )
    )
    return labelled.join(matched, [USER_COL, ITEM_COL, TIME_COL], "left").fillna(0, [FROM_REC_COL])


def counts(lines, watch, window_minutes: int = WINDOW_MINUTES) -> tuple[pd.DataFrame, ...]:
    """(exposure, watches) count frames for summarise() from attributed reco lines and watch
    lines (Spark frames); small: one row per (day, model version, movie)."""
    from pyspark.sql import functions as F

    ok = lines.where((F.col("status") == 200) & (F.size("result") > 0))
    exposure = (
        ok.select(
            F.to_date(TIME_COL).alias(DAY_COL),
            MODEL_VERSION_COL,
            F.explode("result").alias(ITEM_COL),
        )
        .groupBy(DAY_COL, MODEL_VERSION_COL, ITEM_COL)
        .agg(F.count(F.lit(1)).alias(COUNT_COL))
    )
    watches = (
        label_watches(lines, watch_starts(watch), window_minutes)
        .groupBy(DAY_COL, MODEL_VERSION_COL, ITEM_COL)
        .agg(F.count(F.lit(1)).alias(COUNT_COL), F.sum(FROM_REC_COL).alias(FROM_REC_COL))
    )
    columns = {
        "exposure": [DAY_COL, MODEL_VERSION_COL, ITEM_COL, COUNT_COL],
        "watches": [DAY_COL, MODEL_VERSION_COL, ITEM_COL, COUNT_COL, FROM_REC_COL],
    }
    out = []
    for name, frame in (("exposure", exposure), ("watches", watches)):
        pdf = frame.toPandas()
        out.append(pdf if len(pdf) else pd.DataFrame(columns=columns[name]))
    return tuple(out)


def catalogue_size(spark, snapshots, lines) -> int:
    """Distinct movies watched, rated or served in the data read."""
    from pyspark.sql import functions as F

    from jobs.train.dataset import read_table

    frames = [lines.select(F.explode("result").alias(ITEM_COL))]
    for table in ("watch", "rate"):
        frame = read_table(spark, snapshots, table, [ITEM_COL])
        if frame is not None:
            frames.append(frame)
    union = frames[0]
    for frame in frames[1:]:
        union = union.unionByName(frame)
    return int(union.distinct().count())


def count_frames(
    spark,
    snapshots,
    prediction_batches,
    days: int = 28,
    window_minutes: int = WINDOW_MINUTES,
    catalogue: int | None = None,
) -> dict[str, Any] | None:
    """The count frames of the last `days` event-time days of the snapshots: {"exposure",
    "watches" (pandas, for summarise), "catalogue", "start", "end"}; None without data.
    `catalogue`: the catalogue's size when known (default: the movies in the data read)."""
    from pyspark.sql import functions as F

    from jobs.train.dataset import read_table

    newest = evaluate.newest_event(spark, snapshots)
    reco = read_table(spark, snapshots, "reco_request", evaluate.RECO_COLUMNS + evaluate.RECO_KEY)
    watch = read_table(spark, snapshots, "watch", [TIME_COL, USER_COL, ITEM_COL])
    if newest is None or reco is None or watch is None:
        return None
    end = datetime.combine(newest.date() + timedelta(days=1), datetime.min.time())
    start = end - timedelta(days=days)
    predictions = read_table(
        spark,
        prediction_batches,
        "predictions",
        [*evaluate.PREDICTION_COLUMNS, evaluate.SERVED_LIST_COL],
    )
    if predictions is None:
        predictions = evaluate._empty_predictions(spark)
    in_days = (F.col(TIME_COL) >= F.lit(start)) & (F.col(TIME_COL) < F.lit(end))
    lines = evaluate.attribute(reco.where(in_days), predictions).cache()
    catalogue = catalogue or catalogue_size(spark, snapshots, lines)
    exposure, watches = counts(lines, watch.where(in_days), window_minutes)
    lines.unpersist()
    return {
        "exposure": exposure,
        "watches": watches,
        "catalogue": catalogue,
        "start": start.isoformat(),
        "end": end.isoformat(),
    }


def measure_lake(
    spark, snapshots, prediction_batches, days: int = 28, window_minutes: int = WINDOW_MINUTES
) -> dict[str, Any]:
    """The feedback measures of the last `days` event-time days of the snapshots: {"rows",
    "versions", "catalogue", "start", "end", "window_minutes"} (rows empty without data)."""
    frames = count_frames(spark, snapshots, prediction_batches, days, window_minutes)
    if frames is None:
        return {"rows": [], "versions": [], "catalogue": 0}
    catalogue = frames["catalogue"]
    return {
        "start": frames["start"],
        "end": frames["end"],
        "window_minutes": window_minutes,
        "catalogue": catalogue,
        "rows": summarise(frames["exposure"], frames["watches"], catalogue),
        "versions": version_coverage(frames["exposure"], catalogue),
    }


# ------------------------------------------------------------------ outputs
def write(result: dict[str, Any], out_dir: str | Path) -> Path:
    """report.json, the plot and report.html (plot + tables) in `out_dir`; the JSON's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot(result["rows"], out_dir / PLOT_FILE)
    for name, text in (
        (HTML_FILE, report_html(result)),
        (JSON_FILE, json.dumps(result, indent=2, default=str)),
    ):
        tmp = out_dir / f"{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out_dir / name)  # readers never see half a file
    return out_dir / JSON_FILE


def report_html(result: dict[str, Any]) -> str:
    """The section page: what is measured, the plot, the daily rows and the versions."""
    import html

    days = [r for r in result["rows"] if r[MODEL_VERSION_COL] == ALL]
    day_cols = ("watches", "watch_gini", "watch_top1_share", "exposure_gini", "coverage",
                "rec_share")  # fmt: skip
    version_cols = ("first_day", "last_day", "slots", "served_movies", "coverage")

    def table(rows: list[dict], key: str, cols: tuple[str, ...]) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in (key, *cols))
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c)))}</td>" for c in (key, *cols))
            + "</tr>"
            for r in rows
        )  # fmt: skip
        return f"<table><tr>{head}</tr>{body}</table>"

    span = f"{result.get('start', '?')} to {result.get('end', '?')}"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Feedback loops</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;"
        "text-align:right}</style></head><body><h1>Feedback loops</h1>"
        f"<p>Event-time days {html.escape(span)}; catalogue {result.get('catalogue', 0)} "
        f"movies; a watch counts as recommended when the movie was listed to the user within "
        f"{result.get('window_minutes', WINDOW_MINUTES)} minutes before "
        "(jobs/online/feedback.py; docs/responsible-ml.md, Feedback loops).</p>"
        f"<img src='{PLOT_FILE}' alt='feedback-loop measures per day'>"
        "<h2>Per day, all model versions</h2>" + table(days, DAY_COL, day_cols)
        + "<h2>Coverage per model version over its serving life</h2>"
        + table(result.get("versions", []), MODEL_VERSION_COL, version_cols)
        + "</body></html>"
    )  # fmt: skip


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def plot(rows: list[dict], path: str | Path, title: str = "Feedback-loop measures per day") -> Path:
    """Four panels over event-time days (all versions): Gini of exposure and of watching,
    top-1% share of watching, recommended share of watches and catalogue coverage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = [r for r in rows if r[MODEL_VERSION_COL] == ALL]
    x = [r[DAY_COL] for r in days]
    fig, axes = plt.subplots(2, 2, figsize=(10, 6), sharex=True)
    panels = [
        (axes[0][0], "Gini", [("exposure_gini", "exposure"), ("watch_gini", "watching")]),
        (axes[0][1], "top-1% share", [("exposure_top1_share", "exposure"),
                                      ("watch_top1_share", "watching")]),
        (axes[1][0], "share of watches", [("rec_share", "listed within the window")]),
        (axes[1][1], "catalogue coverage", [("coverage", "served that day")]),
    ]  # fmt: skip
    for ax, label, series in panels:
        for key, name in series:
            ax.plot(x, [_nan(r[key]) for r in days], marker="o", label=name)
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.tick_params(axis="x", rotation=45, labelsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def run(
    days: int = 28,
    window_minutes: int = WINDOW_MINUTES,
    database_url: str | None = None,
    out_dir: str | Path | None = None,
) -> str | None:
    """Measure the last `days` event-time days of the accepted snapshots and write the report
    (default reports_dir/responsible/feedback_loops/); the JSON's path (None: no data yet)."""
    from jobs.ingest import lake
    from jobs.online import predictions
    from jobs.spark import get_spark

    refs = lake.accepted_snapshots(database_url=database_url)
    newest = max((r.max_event_time for r in refs if r.max_event_time), default=None)
    if newest is None:
        log.info("no accepted snapshot with events: no feedback measures")
        return None
    since = newest - timedelta(days=days + 1)
    wanted = [r.path for r in refs if r.max_event_time and r.max_event_time >= since]
    spark = get_spark("feedback_loops", shuffle_partitions=4)
    result = measure_lake(spark, wanted, predictions.batch_dirs(), days, window_minutes)
    if out_dir is None:
        from jobs.online import responsible_site

        out_dir = responsible_site.section_dir(SECTION)
    path = write(result, out_dir)
    log.info("feedback measures of %d days -> %s", len(result["rows"]), path)
    return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=28, help="event-time days to measure")
    parser.add_argument("--window-minutes", type=int, default=WINDOW_MINUTES)
    parser.add_argument(
        "--out", type=Path, help="directory (default reports_dir/responsible/feedback_loops)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    print(json.dumps({"path": run(args.days, args.window_minutes, out_dir=args.out)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
