"""Fairness measures of docs/responsible-ml.md, offline for a published model and online from
telemetry, checked against the requirements' thresholds (contracts/settings.py).

Quality of service by group (the model requirement): for each grouping (age band, gender,
history band), the mean per-user quality of each group with at least `min_users` units, and
`ratio` = worst group / best group. Offline the quality is NDCG@20 on the evaluation's test
units (the per-user scores the gate reads); online it is the online accuracy of the served
lists (a watch of a listed movie within the window, jobs.online.evaluate.hits), per group of
the users who got them.

Catalogue exposure (the system requirement): of every slot of the served lists, the share
that holds a long-tail movie (outside the head: the most-interacted movies that together take
`head_share` of the training interactions, or unseen there) and the share that holds a new
movie (first interaction within `new_days` before the training data's newest event, or unseen
there). Offline the lists are the published top-20 of every known user; online the lists
clients got.

    python -m jobs.online.fairness [--days 1]
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from contracts import settings
from contracts.names import ITEM_COL, MODEL_VERSION_COL, SERVED_LIST_COL, TIME_COL, USER_COL

log = logging.getLogger(__name__)

GROUPINGS = ("age", "gender", "history")
PROTECTED = ("age", "gender")  # history length is a service group, judged with its own ratio
UNKNOWN = "unknown"  # a label never judged: nobody decided which group those users are in
HEAD_SHARE = 0.8
OFFLINE, ONLINE = "offline", "online"
SECTION = "fairness"  # reports_dir/responsible/<SECTION>/


@dataclass(frozen=True)
class Limits:
    """The requirements' thresholds, as contracts.settings reads them."""

    min_group_ratio: float
    min_history_ratio: float
    min_group_users: int
    min_long_tail_share: float
    min_new_movie_share: float
    new_movie_days: float

    @classmethod
    def load(cls) -> Limits:
        """The thresholds from the environment (contracts.settings)."""
        return cls(
            settings.fairness_min_group_ratio(),
            settings.fairness_min_history_ratio(),
            settings.fairness_min_group_users(),
            settings.fairness_min_long_tail_share(),
            settings.fairness_min_new_movie_share(),
            settings.fairness_new_movie_days(),
        )

    def ratio_for(self, grouping: str) -> float:
        """The least worst/best ratio allowed for a grouping."""
        return self.min_history_ratio if grouping == "history" else self.min_group_ratio


# ------------------------------------------------------------------ quality of service by group
def group_quality(
    units: pd.DataFrame, value_col: str, grouping: str, min_units: int, min_ratio: float
) -> dict[str, Any]:
    """Mean `value_col` per label of `grouping`, with the worst/best ratio of the groups that
    have at least `min_units` rows (the unknown label is shown, never judged)."""
    stats = units.groupby(grouping, observed=True)[value_col].agg(["mean", "size"])
    groups = {
        str(label): {"units": int(row["size"]), "value": float(row["mean"])}
        for label, row in stats.iterrows()
    }
    judged = {
        label: g["value"]
        for label, g in groups.items()
        if g["units"] >= min_units and label != UNKNOWN
    }
    out: dict[str, Any] = {"groups": groups, "limit": min_ratio, "min_units": min_units}
    if len(judged) < 2:
        return {**out, "best": None, "worst": None, "ratio": None, "met": None}
    best, worst = max(judged, key=judged.get), min(judged, key=judged.get)
    ratio = judged[worst] / judged[best] if judged[best] > 0 else 1.0
    return {**out, "best": best, "worst": worst, "ratio": ratio, "met": bool(ratio >= min_ratio)}


def quality_by_group(units: pd.DataFrame, value_col: str, limits: Limits) -> dict[str, Any]:
    """group_quality for every grouping the units carry."""
    return {
        g: group_quality(units, value_col, g, limits.min_group_users, limits.ratio_for(g))
        for g in GROUPINGS
        if g in units
    }


# ------------------------------------------------------------------ catalogue exposure
def head_movies(interactions: pd.DataFrame, head_share: float = HEAD_SHARE) -> set[str]:
    """The most-interacted movies that together take `head_share` of the interactions (the
    movie that crosses the share belongs to the head)."""
    counts = interactions[ITEM_COL].astype(str).value_counts()
    if counts.empty:
        return set()
    cumulative = counts.cumsum() / counts.sum()
    inside = int(np.searchsorted(cumulative.to_numpy(), head_share, side="left")) + 1
    return set(counts.index[:inside])


def new_movies(interactions: pd.DataFrame, days: float) -> tuple[set[str], set[str]]:
    """(movies first seen within `days` before the newest event, every movie seen)."""
    first = interactions.groupby(interactions[ITEM_COL].astype(str))["first_time"].min()
    if first.empty:
        return set(), set()
    cutoff = interactions[TIME_COL].max() - pd.Timedelta(days=days)
    return set(first.index[first >= cutoff]), set(first.index)


def exposure(
    slots: Iterable[str], head: set[str], new: set[str], known: set[str], limits: Limits
) -> dict[str, Any]:
    """Long-tail and new-movie shares of the served slots, each against its threshold; a movie
    the training data never saw counts as both tail and new."""
    items = pd.Series(list(slots), dtype=str)
    if items.empty:
        return {"slots": 0, "movies": 0, "long_tail_share": None, "new_movie_share": None}
    unseen = ~items.isin(known)
    tail = float((~items.isin(head) | unseen).mean())
    fresh = float((items.isin(new) | unseen).mean())
    return {
        "slots": int(len(items)),
        "movies": int(items.nunique()),
        "long_tail_share": tail,
        "long_tail_limit": limits.min_long_tail_share,
        "long_tail_met": bool(tail >= limits.min_long_tail_share),
        "new_movie_share": fresh,
        "new_movie_limit": limits.min_new_movie_share,
        "new_movie_met": bool(fresh >= limits.min_new_movie_share),
    }


def catalogue(interactions: pd.DataFrame, limits: Limits) -> tuple[set[str], set[str], set[str]]:
    """(head, new, known) movies of a model's training interactions."""
    new, known = new_movies(interactions, limits.new_movie_days)
    return head_movies(interactions), new, known


# ------------------------------------------------------------------ verdicts
def violations(result: Mapping[str, Any]) -> list[str]:
    """The requirements a result breaks, each as one sentence with its numbers."""
    found = []
    for grouping, q in result.get("quality", {}).items():
        if q.get("met") is False:
            found.append(
                f"{result['source']} quality by {grouping}: {q['worst']} / {q['best']} = "
                f"{q['ratio']:.3f} < {q['limit']}"
            )
    ex = result.get("exposure") or {}
    for kind in ("long_tail", "new_movie"):
        if ex.get(f"{kind}_met") is False:
            found.append(
                f"{result['source']} {kind.replace('_', '-')} share {ex[f'{kind}_share']:.3f} "
                f"< {ex[f'{kind}_limit']}"
            )
    return found


def history_band(counts: pd.Series) -> pd.Series:
    """History band per user from interaction counts (jobs.train.evaluate's bands)."""
    from jobs.train.evaluate import HISTORY_BANDS, band

    return band(counts, HISTORY_BANDS)


def user_groups(
    users: pd.Series, users_dim: pd.DataFrame | None, history: pd.Series
) -> pd.DataFrame:
    """Per user: age band, gender (unknown without the dimension) and history band."""
    from jobs.train.evaluate import age_band

    index = pd.Index(users.unique(), name=USER_COL)
    dim = (
        users_dim.drop_duplicates(USER_COL).set_index(USER_COL).reindex(index)
        if users_dim is not None and len(users_dim)
        else pd.DataFrame(index=index, columns=["age", "gender"])
    )
    ages = pd.to_numeric(dim["age"], errors="coerce")
    frame = pd.DataFrame(
        {
            "age": age_band(ages).where(ages.notna().to_numpy(), UNKNOWN).to_numpy(),
            "gender": dim["gender"].fillna(UNKNOWN).astype(str).to_numpy(),
            "history": history_band(history.reindex(index, fill_value=0)).to_numpy(),
        },
        index=index,
    )
    return frame.reset_index()


# ------------------------------------------------------------------ offline
def offline_result(
    model_version: str,
    per_user: pd.DataFrame | None,
    served_lists: pd.DataFrame | None,
    interactions: pd.DataFrame,
    limits: Limits,
) -> dict[str, Any]:
    """Offline measures of one model: NDCG@20 by group on its evaluation's test units, and the
    exposure of its published lists (user_id, items)."""
    quality = {} if per_user is None else quality_by_group(per_user, "ndcg", limits)
    slots: list[str] = []
    if served_lists is not None:
        slots = [str(m) for items in served_lists[SERVED_LIST_COL] for m in items]
    result = {
        "source": OFFLINE,
        "model_version": model_version,
        "measure": "ndcg_at_20 by group; exposure of the published top-20 lists",
        "users": None if per_user is None else int(per_user[USER_COL].nunique()),
        "quality": quality,
        "exposure": exposure(slots, *catalogue(interactions, limits), limits),
    }
    result["violations"] = violations(result)
    return result


def gate_fairness(per_user: pd.DataFrame | None, limits: Limits | None = None) -> dict[str, Any]:
    """What the gate records: quality by group of the candidate's per-user scores, violations."""
    limits = limits or Limits.load()
    result = {
        "source": OFFLINE,
        "quality": {} if per_user is None else quality_by_group(per_user, "ndcg", limits),
    }
    return {"quality": result["quality"], "violations": violations(result)}


# ------------------------------------------------------------------ online
def online_result(
    lines: pd.DataFrame,
    groups: pd.DataFrame,
    catalogue_sets: tuple[set[str], set[str], set[str]],
    limits: Limits,
    model_version: str,
    window: tuple[datetime, datetime],
) -> dict[str, Any]:
    """Online measures from served lists (user_id, hit, items): accuracy by group of the users
    who got them, exposure of every served slot."""
    lists = lines[lines["hit"].notna()]
    units = lists[[USER_COL, "hit"]].merge(groups, on=USER_COL, how="left").fillna(UNKNOWN)
    units["hit"] = units["hit"].astype(float)
    slots = [str(m) for items in lists[SERVED_LIST_COL] for m in items]
    result = {
        "source": ONLINE,
        "model_version": model_version,
        "measure": "online accuracy (list followed by a watch of a listed movie) by group; "
        "exposure of the served lists",
        "window": [window[0].isoformat(), window[1].isoformat()],
        "lists": int(len(lists)),
        "users": int(lists[USER_COL].nunique()),
        "quality": quality_by_group(units, "hit", limits),
        "exposure": exposure(slots, *catalogue_sets, limits),
    }
    result["violations"] = violations(result)
    return result


def served_lines(spark, snapshots, batches, start: datetime, end: datetime, window_minutes: int):
    """Stream recommendation lines of [start, end) with model version, hit and served list
    (attributed and scored as the online evaluation does); pandas."""
    from pyspark.sql import functions as F

    from jobs.online import evaluate
    from jobs.train.dataset import read_table

    reco = read_table(spark, snapshots, "reco_request", evaluate.RECO_COLUMNS + evaluate.RECO_KEY)
    answers = read_table(
        spark, batches, "predictions", [*evaluate.PREDICTION_COLUMNS, SERVED_LIST_COL]
    )
    if reco is None:
        return pd.DataFrame(columns=[USER_COL, MODEL_VERSION_COL, "hit", SERVED_LIST_COL])
    if answers is None:
        answers = evaluate._empty_predictions(spark)
    watch = read_table(spark, snapshots, "watch", [TIME_COL, USER_COL, ITEM_COL])
    if watch is None:
        watch = spark.createDataFrame(
            [], f"{TIME_COL} timestamp, {USER_COL} bigint, {ITEM_COL} string"
        )
    in_window = (F.col(TIME_COL) >= F.lit(start)) & (F.col(TIME_COL) < F.lit(end))
    lines = evaluate.attribute(reco.where(in_window), answers)
    follow = end + timedelta(minutes=window_minutes)
    watch = watch.where((F.col(TIME_COL) >= F.lit(start)) & (F.col(TIME_COL) <= F.lit(follow)))
    scored = evaluate.hits(lines, watch, window_minutes)
    return scored.select(
        USER_COL, MODEL_VERSION_COL, "hit", F.col("result").alias(SERVED_LIST_COL)
    ).toPandas()


# ------------------------------------------------------------------ storage and monitoring
def store(result: Mapping[str, Any], window_end: datetime, database_url: str | None = None) -> None:
    """Upsert one result into Postgres fairness_measures (key: model, source, window end)."""
    from psycopg2.extras import Json

    from contracts import db

    conn = db.connect(database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                db.read_sql("responsible/upsert_fairness.sql"),
                {
                    "model_version": result["model_version"],
                    "source": result["source"],
                    "window_end": window_end,
                    "measures": Json(json.loads(json.dumps(result, default=str))),
                    "violations": len(result["violations"]),
                },
            )
    finally:
        conn.close()


def stored(model_version: str, database_url: str | None = None) -> list[dict[str, Any]]:
    """The newest stored result per source of one model (for its model card)."""
    from contracts import db

    conn = db.connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute(db.read_sql("responsible/latest_fairness.sql"), {"model": model_version})
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


def write_report(results: list[dict[str, Any]], out: Path) -> Path:
    """fairness report.json + report.html in `out`; the HTML path."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "report.html").write_text(report_html(results))
    return out / "report.html"


def report_html(results: list[dict[str, Any]]) -> str:
    """One table per result: groups with their values, the ratio and each verdict."""
    import html

    parts = []
    for r in results:
        head = f"{r['source']} · {r['model_version']}"
        if r.get("window"):
            head += f" · {r['window'][0]} – {r['window'][1]}"
        rows = []
        for grouping, q in r["quality"].items():
            cells = ", ".join(
                f"{html.escape(label)} {g['value']:.3f} (n={g['units']})"
                for label, g in q["groups"].items()
            )
            ratio = "not judged" if q["ratio"] is None else f"{q['ratio']:.3f}"
            rows.append(
                f"<tr><td>{grouping}</td><td>{cells}</td><td>{ratio}</td>"
                f"<td>≥ {q['limit']}</td><td>{verdict(q['met'])}</td></tr>"
            )
        ex = r["exposure"]
        for kind in ("long_tail", "new_movie"):
            share = ex.get(f"{kind}_share")
            rows.append(
                f"<tr><td>{kind.replace('_', '-')} share</td><td>{ex['slots']} slots, "
                f"{ex['movies']} movies</td><td>{'—' if share is None else f'{share:.3f}'}</td>"
                f"<td>≥ {ex.get(f'{kind}_limit', '—')}</td>"
                f"<td>{verdict(ex.get(f'{kind}_met'))}</td></tr>"
            )
        parts.append(
            f"<h2>{html.escape(head)}</h2><p>{html.escape(r['measure'])}</p><table>"
            "<tr><th>measure</th><th>groups</th><th>value</th><th>limit</th><th>met</th></tr>"
            + "".join(rows)
            + "</table>"
        )
    body = "".join(parts) or "<p>No published model to measure yet.</p>"
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>Fairness</title>'
        "<style>td,th{border:1px solid #ccc;padding:2px 6px}table{border-collapse:collapse}"
        '</style></head><body><p><a href="../index.html">Responsible ML</a></p>'
        "<h1>Fairness measures</h1><p>Requirements and definitions: docs/responsible-ml.md."
        f"</p>{body}</body></html>"
    )


def verdict(met: bool | None) -> str:
    """met / VIOLATED / not judged, for the HTML report."""
    return {True: "met", False: "<b>VIOLATED</b>", None: "not judged"}[met]


def samples(results: list[dict[str, Any]]) -> list:
    """Pushgateway samples: each ratio and share with its limit, and each requirement's verdict."""
    from contracts import metrics as m
    from jobs.monitoring import Sample

    out = []
    for r in results:
        version = m.ALL_LABEL if r["model_version"] == "*" else r["model_version"]
        base = {"source": r["source"], "model_version": version}
        for grouping, q in r["quality"].items():
            labels = {**base, "grouping": grouping}
            out.append(Sample(m.FAIRNESS_GROUP_RATIO, q["ratio"], labels))
            out.append(Sample(m.FAIRNESS_GROUP_RATIO_LIMIT, q["limit"], labels))
            met = None if q["met"] is None else float(q["met"])
            out.append(Sample(m.FAIRNESS_MET, met, {**base, "requirement": f"quality_{grouping}"}))
        ex = r["exposure"]
        for kind in ("long_tail", "new_movie"):
            labels = {**base, "kind": kind}
            out.append(Sample(m.EXPOSURE_SHARE, ex.get(f"{kind}_share"), labels))
            out.append(Sample(m.EXPOSURE_SHARE_LIMIT, ex.get(f"{kind}_limit"), labels))
            met = ex.get(f"{kind}_met")
            out.append(
                Sample(
                    m.FAIRNESS_MET,
                    None if met is None else float(met),
                    {**base, "requirement": f"exposure_{kind}"},
                )
            )
    return out


def push(results: list[dict[str, Any]], source: str) -> bool:
    """Push one source's results (a group per source, so offline and online runs don't clash)."""
    from contracts import metrics as m
    from jobs import monitoring

    return monitoring.report(f"{m.GROUP_FAIRNESS}_{source}", lambda: samples(results))


# ------------------------------------------------------------------ runs
def published_models(database_url: str | None = None) -> list[dict[str, Any]]:
    """Registry rows of every model that was ever published (production now, or retired)."""
    from jobs.train import registry

    rows = registry.list_versions(database_url=database_url)
    return [r for r in rows if r["status"] in ("production", "retired")]


def reports_out() -> Path:
    """reports_dir/responsible/fairness: where this section's HTML and JSON go."""
    from contracts import site

    return settings.load().reports_dir / site.RESPONSIBLE_DIR / SECTION


def model_inputs(row: Mapping[str, Any]) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """(per-user test scores of the evaluated twin, published lists) of a registry row."""
    from jobs.train import evaluate

    evaluated = row["evaluated_as"] or row["model_version"]
    path = evaluate.per_user_path(row["dataset_path"], evaluated)
    per_user = pd.read_parquet(path) if path.exists() else None
    scores = settings.load().lake_dir / "scores" / row["model_version"]
    lists = pd.read_parquet(scores, columns=[USER_COL, "items"]) if scores.exists() else None
    if lists is not None:
        lists = lists.rename(columns={"items": SERVED_LIST_COL})
    return per_user, lists


def run_offline(database_url: str | None = None, limits: Limits | None = None) -> str:
    """Offline measures of every published model: stored, pushed, reported; the JSON path."""
    from jobs.train import dataset

    limits = limits or Limits.load()
    results = []
    for row in published_models(database_url):
        per_user, lists = model_inputs(row)
        interactions = dataset.load_interactions(row["dataset_path"])
        result = offline_result(row["model_version"], per_user, lists, interactions, limits)
        store(result, row["data_newest_event"], database_url)
        results.append(result)
        for line in result["violations"]:
            log.warning("fairness requirement violated by %s: %s", row["model_version"], line)
    push(results, OFFLINE)
    out = reports_out()
    write_report(results + _previous(out, ONLINE), out)
    (out / f"{OFFLINE}.json").write_text(json.dumps(results, indent=2, default=str))
    return str(out / f"{OFFLINE}.json")


def _previous(out: Path, source: str) -> list[dict[str, Any]]:
    path = out / f"{source}.json"
    return json.loads(path.read_text()) if path.exists() else []


def run_online(
    days: float = 1.0,
    window_minutes: int = 60,
    database_url: str | None = None,
    limits: Limits | None = None,
) -> str | None:
    """Online measures of the last `days` of event time, per model version that served lists
    and for the whole traffic ('*'): stored, pushed, reported; the JSON path (None: no data)."""
    from jobs.ingest import lake
    from jobs.online import predictions
    from jobs.spark import get_spark
    from jobs.train import dataset, evaluate, registry

    limits = limits or Limits.load()
    prod = registry.production(database_url)
    refs = lake.accepted_snapshots(database_url=database_url)
    end = max((r.max_event_time for r in refs if r.max_event_time), default=None)
    if prod is None or end is None:
        log.info("no production model or no accepted snapshot: no online fairness measures")
        return None
    start = end - timedelta(days=days)
    wanted = [r.path for r in refs if r.max_event_time and r.max_event_time >= start]
    spark = get_spark("fairness_online", shuffle_partitions=4)
    lines = served_lines(
        spark, wanted, predictions.batch_dirs(), start, end + timedelta(microseconds=1),
        window_minutes,
    )  # fmt: skip
    interactions = dataset.load_interactions(prod["dataset_path"])
    history = interactions.groupby(USER_COL).size()
    groups = user_groups(lines[USER_COL], evaluate.load_users_dim(), history)
    sets = catalogue(interactions, limits)
    results = [online_result(lines, groups, sets, limits, "*", (start, end))]
    for version, part in lines.groupby(MODEL_VERSION_COL):
        if version:
            results.append(online_result(part, groups, sets, limits, str(version), (start, end)))
    for result in results:
        store(result, end, database_url)
    push(results, ONLINE)
    out = reports_out()
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{ONLINE}.json").write_text(json.dumps(results, indent=2, default=str))
    write_report(_previous(out, OFFLINE) + results, out)
    return str(out / f"{ONLINE}.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=1.0, help="event-time days measured online")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    print(json.dumps({"offline": run_offline(), "online": run_online(args.days)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
