"""Shadow report: how a shadow version's lists compare with what production served.

Reads the `predictions` lake table (answers logged while the shadow ran carry
`shadow_version` and `shadow_items`) and the accepted snapshots' stream. Over the answers whose
shadow had a list for the user (paired: production is measured on the same answers):

- overlap: mean Jaccard index of the served and the shadow list, mean number of shared items;
- would-have-hit rate: of the stream's served lists matched to such an answer (same user, same
  list, as jobs.online.evaluate.attribute matches them), the share after which the user watched
  a movie of the shadow's list within `window_minutes` (evaluate.hits, the online accuracy's
  hit, with the shadow's list in place of the served one); production's rate on the same lines
  beside it, both with Wilson 95% intervals;
- coverage: distinct listed items / catalogue (every movie watched in the stream or listed by
  either);
- popularity bias: mean popularity rank of the listed items (1 = the most watched movie of the
  stream; a movie never watched ranks after the last watched one). Lower means more popular.

Written to settings.reports_dir/shadow/<version>/ as report.html with shadow.png and its
report.json twin (docs/experiments.md, "Shadow deployment").

`python -m jobs.online.shadow_report --version RECO_VERSION [--window-minutes 60]`
"""

from __future__ import annotations

import argparse
import html
import json
import logging
from pathlib import Path
from typing import Any

from contracts import settings
from contracts.names import (
    ITEM_COL,
    SERVED_LIST_COL,
    SHADOW_LIST_COL,
    SHADOW_VERSION_COL,
    TIME_COL,
    USER_COL,
)

log = logging.getLogger(__name__)

ARMS = {"production": SERVED_LIST_COL, "shadow": SHADOW_LIST_COL}
DEFINITIONS = {
    "answers": "Answers logged while the shadow ran (shadow_version = this version).",
    "paired_answers": "Of those, answers for which the shadow had a list for the user: every "
    "figure below is computed on these, for production and shadow alike.",
    "mean_jaccard": "Mean over paired answers of |served ∩ shadow| / |served ∪ shadow|.",
    "mean_shared_items": "Mean number of movies in both lists.",
    "would_have_hit_rate": "Served lists in the stream matched to a paired answer after which "
    "the user watched a movie of the list within the window (production: the served list; "
    "shadow: the list it would have served); Wilson 95% interval. The user saw production's "
    "list, so the shadow's rate is biased towards the movies both lists share.",
    "coverage": "Distinct listed movies / catalogue (movies watched in the stream or listed).",
    "mean_popularity_rank": "Mean rank by stream watch count of the listed movies (1 = most "
    "watched; never watched = after the last): lower is more popularity-biased.",
}


def output_dir(version: str) -> Path:
    """Where the shadow report of reco version `version` lives."""
    return settings.load().reports_dir / "shadow" / version


# ------------------------------------------------------------------ reading
def shadow_answers(spark, batches, version: str):
    """(time, user, served list, shadow list) of the answers logged while `version` ran in
    shadow; None when no batch has any. Batches written before shadows existed lack the
    columns and hold none of them."""
    from pyspark.sql import functions as F

    from jobs.online import predictions

    union = None
    for batch in batches:
        path = Path(batch) / predictions.TABLE
        if not path.exists():
            continue
        frame = spark.read.parquet(str(path))
        if SHADOW_VERSION_COL not in frame.columns:
            continue
        frame = frame.where(F.col(SHADOW_VERSION_COL) == version).select(
            TIME_COL, USER_COL, SERVED_LIST_COL, SHADOW_LIST_COL
        )
        union = frame if union is None else union.unionByName(frame)
    return union


# ------------------------------------------------------------------ measures
def overlap(answers) -> dict[str, Any]:
    """Answers, paired answers, mean Jaccard and mean shared items of the paired ones."""
    from pyspark.sql import functions as F

    paired = F.col(SHADOW_LIST_COL).isNotNull()
    shared = F.size(F.array_intersect(SERVED_LIST_COL, SHADOW_LIST_COL))
    union = F.size(F.array_union(SERVED_LIST_COL, SHADOW_LIST_COL))
    row = answers.agg(
        F.count(F.lit(1)).alias("answers"),
        F.count(F.when(paired, 1)).alias("paired_answers"),
        F.avg(F.when(paired, shared / union)).alias("mean_jaccard"),
        F.avg(F.when(paired, shared)).alias("mean_shared_items"),
    ).first()
    return row.asDict()


def jaccard_histogram(answers, bins: int = 10) -> list[int]:
    """Paired answers per Jaccard bin [0, 0.1), …, [0.9, 1.0] (the chart's histogram)."""
    from pyspark.sql import functions as F

    shared = F.size(F.array_intersect(SERVED_LIST_COL, SHADOW_LIST_COL))
    union = F.size(F.array_union(SERVED_LIST_COL, SHADOW_LIST_COL))
    binned = F.least(F.floor(shared / union * bins), F.lit(bins - 1)).cast("int")
    rows = (
        answers.where(F.col(SHADOW_LIST_COL).isNotNull())
        .groupBy(binned.alias("bin"))
        .count()
        .collect()
    )
    counts = [0] * bins
    for row in rows:
        counts[row["bin"]] = row["count"]
    return counts


def popularity_ranks(watch):
    """(movie, rank) by stream watch count, 1 = most watched (ties by movie id); their count."""
    from pyspark.sql import Window as W
    from pyspark.sql import functions as F

    counts = watch.groupBy(ITEM_COL).count()
    ranked = counts.select(
        ITEM_COL, F.row_number().over(W.orderBy(F.desc("count"), ITEM_COL)).alias("rank")
    )
    return ranked, counts.count()


def list_measures(answers, watch) -> dict[str, dict[str, Any]]:
    """Per arm (production, shadow) over the paired answers: distinct items, coverage of the
    catalogue and mean popularity rank of the listed items; plus the catalogue size."""
    from pyspark.sql import functions as F

    paired = answers.where(F.col(SHADOW_LIST_COL).isNotNull())
    ranks, n_ranked = popularity_ranks(watch)
    listed = {arm: paired.select(F.explode(column).alias(ITEM_COL)) for arm, column in ARMS.items()}
    catalogue = watch.select(ITEM_COL)
    for frame in listed.values():
        catalogue = catalogue.unionByName(frame)
    size = catalogue.distinct().count()
    out: dict[str, dict[str, Any]] = {}
    for arm, frame in listed.items():
        rank = F.coalesce(F.col("rank"), F.lit(n_ranked + 1))
        row = (
            frame.join(ranks, ITEM_COL, "left")
            .agg(F.countDistinct(ITEM_COL).alias("distinct_items"), F.avg(rank).alias("rank"))
            .first()
        )
        out[arm] = {
            "distinct_items": int(row["distinct_items"]),
            "coverage": row["distinct_items"] / size if size else None,
            "mean_popularity_rank": row["rank"],
        }
    out["catalogue"] = {"movies": size, "ranked_by_watches": n_ranked}
    return out


def would_have_hit(reco, watch, answers, window_minutes: int) -> dict[str, dict[str, Any]]:
    """Per arm: served lists of the stream matched to a paired answer, hits within the window,
    the rate and its Wilson interval (evaluate.hits on the served or the shadow's list)."""
    from pyspark.sql import functions as F

    from jobs.online import evaluate

    keyed = (
        answers.where(F.col(SHADOW_LIST_COL).isNotNull())
        .select(
            USER_COL,
            F.concat_ws(",", SERVED_LIST_COL).alias("list_key"),
            SHADOW_LIST_COL,
            F.col(TIME_COL).alias("served_at"),
        )
        .groupBy(USER_COL, "list_key")  # one answer per (user, list): the latest
        .agg(F.max_by(SHADOW_LIST_COL, "served_at").alias(SHADOW_LIST_COL))
    )
    lines = (
        reco.where((F.col("status") == 200) & (F.size("result") > 0))
        .withColumn("list_key", F.concat_ws(",", "result"))
        .join(keyed, [USER_COL, "list_key"])
        .drop("list_key")
    )
    out = {}
    for arm, scored in (
        ("production", lines),
        ("shadow", lines.withColumn("result", F.col(SHADOW_LIST_COL))),
    ):
        row = (
            evaluate.hits(scored.drop(SHADOW_LIST_COL), watch, window_minutes)
            .agg(F.count("hit").alias("lists"), F.coalesce(F.sum("hit"), F.lit(0)).alias("hits"))
            .first()
        )
        lists, hits = int(row["lists"]), int(row["hits"])
        out[arm] = {
            "lists": lists,
            "hits": hits,
            "rate": hits / lists if lists else None,
            "rate_ci": list(evaluate.wilson(hits, lists)) if lists else [None, None],
        }
    return out


def measure(reco, watch, answers, window_minutes: int) -> dict[str, Any]:
    """Every figure of the report from Spark frames of the stream and the shadow's answers."""
    lists = list_measures(answers, watch)
    hit = would_have_hit(reco, watch, answers, window_minutes)
    arms = {arm: {**lists[arm], "would_have_hit": hit[arm]} for arm in ("production", "shadow")}
    return {
        "overlap": overlap(answers),
        "jaccard_histogram": jaccard_histogram(answers),
        "arms": arms,
        "catalogue": lists["catalogue"],
        "window_minutes": window_minutes,
    }


# ------------------------------------------------------------------ output
def chart(result: dict[str, Any], out: Path) -> str:
    """shadow.png: would-have-hit rates, coverage, popularity rank and the Jaccard histogram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = ["production", "shadow"]
    colours = ["steelblue", "darkorange"]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
    hits = [result["arms"][a]["would_have_hit"] for a in arms]
    rates = [h["rate"] or 0.0 for h in hits]
    pairs = zip(rates, hits, strict=True)
    bounds = [[b if b is not None else r for b in h["rate_ci"]] for r, h in pairs]
    errors = [[r - b[0] for r, b in zip(rates, bounds, strict=True)],
              [b[1] - r for r, b in zip(rates, bounds, strict=True)]]  # fmt: skip
    axes[0].bar(arms, rates, yerr=errors, capsize=6, color=colours)
    axes[0].set_title("(would-have-)hit rate, 95% interval")
    axes[1].bar(arms, [result["arms"][a]["coverage"] or 0.0 for a in arms], color=colours)
    axes[1].set_title("catalogue coverage")
    ranks = [result["arms"][a]["mean_popularity_rank"] or 0.0 for a in arms]
    axes[2].bar(arms, ranks, color=colours)
    axes[2].set_title("mean popularity rank (lower: more popular)")
    histogram = result["jaccard_histogram"]
    axes[3].bar([i / len(histogram) for i in range(len(histogram))], histogram,
                width=1 / len(histogram), align="edge", color="grey")  # fmt: skip
    axes[3].set_title(f"Jaccard(served, shadow), mean {result['overlap']['mean_jaccard'] or 0:.3f}")
    axes[3].set_xlabel("Jaccard index")
    fig.tight_layout()
    fig.savefig(out / "shadow.png", dpi=90)
    plt.close(fig)
    return "shadow.png"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def write_report(version: str, deployment: dict | None, result: dict[str, Any], out: Path) -> Path:
    """report.json, report.html and shadow.png into `out`; return `out`."""
    out.mkdir(parents=True, exist_ok=True)
    image = chart(result, out) if result["overlap"]["paired_answers"] else None
    report = {
        "shadow_version": version,
        "deployment": deployment,
        **result,
        "definitions": DEFINITIONS,
        "charts": [image] if image else [],
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
    rows = ""
    for arm in ("production", "shadow"):
        a = result["arms"][arm]
        hit = a["would_have_hit"]
        interval = f" [{hit['rate_ci'][0]:.4f}, {hit['rate_ci'][1]:.4f}]" if hit["lists"] else ""
        rows += (
            f"<tr><td>{arm}</td><td>{hit['lists']}</td><td>{hit['hits']}</td>"
            f"<td>{_fmt(hit['rate'])}{interval}</td><td>{a['distinct_items']}</td>"
            f"<td>{_fmt(a['coverage'])}</td><td>{_fmt(a['mean_popularity_rank'])}</td></tr>"
        )
    o = result["overlap"]
    defs = "".join(f"<dt>{k}</dt><dd>{html.escape(v)}</dd>" for k, v in DEFINITIONS.items())
    img = f'<p><img src="{image}" alt="{image}"></p>' if image else "<p>No paired answers.</p>"
    name = html.escape(version)
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Shadow {name}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 6px;font-size:12px}}dt{{font-weight:bold}}</style>
</head><body><h1>Shadow {name} vs production</h1>
<p>Deployment {_fmt(deployment or "unknown")}. Answers logged with this shadow {o["answers"]},
paired (the shadow had a list) {o["paired_answers"]}; mean Jaccard {_fmt(o["mean_jaccard"])},
mean shared items {_fmt(o["mean_shared_items"])} of each list; window
{result["window_minutes"]} min; catalogue {result["catalogue"]["movies"]} movies.
Machine-readable twin: report.json.</p>
<table><tr><th>arm</th><th>lists</th><th>hits</th><th>(would-have-)hit rate</th>
<th>distinct items</th><th>coverage</th><th>mean popularity rank</th></tr>{rows}</table>
{img}<h2>Definitions</h2><dl>{defs}</dl></body></html>"""
    (out / "report.html").write_text(page)
    return out


def empty_result(window_minutes: int) -> dict[str, Any]:
    """The report's figures when no answer was logged with the shadow."""
    none = {"lists": 0, "hits": 0, "rate": None, "rate_ci": [None, None]}
    arm = {"distinct_items": 0, "coverage": None, "mean_popularity_rank": None}
    return {
        "overlap": {
            "answers": 0,
            "paired_answers": 0,
            "mean_jaccard": None,
            "mean_shared_items": None,
        },  # fmt: skip
        "jaccard_histogram": [0] * 10,
        "arms": {a: {**arm, "would_have_hit": dict(none)} for a in ("production", "shadow")},
        "catalogue": {"movies": 0, "ranked_by_watches": 0},
        "window_minutes": window_minutes,
    }


def lake_result(spark, snapshots, batches, version: str, window_minutes: int) -> dict[str, Any]:
    """`measure` on accepted snapshot directories and prediction batches."""
    from jobs.online import evaluate
    from jobs.train.dataset import read_table

    answers = shadow_answers(spark, batches, version)
    reco = read_table(spark, snapshots, "reco_request", evaluate.RECO_COLUMNS + evaluate.RECO_KEY)
    if answers is None or reco is None:
        return empty_result(window_minutes)
    watch = read_table(spark, snapshots, "watch", [TIME_COL, USER_COL, ITEM_COL])
    if watch is None:
        watch = spark.createDataFrame(
            [], f"{TIME_COL} timestamp, {USER_COL} bigint, {ITEM_COL} string"
        )
    return measure(reco, watch, answers, window_minutes)


def run(
    version: str,
    window_minutes: int = 60,
    database_url: str | None = None,
    out_dir: str | Path | None = None,
) -> str:
    """Compare shadow `version` with production over the lake; write the report; its
    directory."""
    from jobs.ingest import lake
    from jobs.online import predictions
    from jobs.publish import experiments
    from jobs.spark import get_spark

    deployment = experiments.shadow_deployment(version, database_url)
    snapshots = [r.path for r in lake.accepted_snapshots(database_url=database_url)]
    spark = get_spark("shadow_report", shuffle_partitions=4)
    result = lake_result(spark, snapshots, predictions.batch_dirs(), version, window_minutes)
    out = write_report(
        version, deployment, result, Path(out_dir) if out_dir else output_dir(version)
    )
    log.info("shadow report for %s: %s", version, out)
    return str(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", required=True, help="the shadow's reco version")
    parser.add_argument("--window-minutes", type=int, default=60)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    out = run(args.version, args.window_minutes)
    report = json.loads((Path(out) / "report.json").read_text())
    for arm, figures in report["arms"].items():
        hit = figures["would_have_hit"]
        print(
            f"{arm:10} hit rate {hit['rate']} ({hit['hits']}/{hit['lists']}), coverage "
            f"{figures['coverage']}, mean popularity rank {figures['mean_popularity_rank']}"
        )
    print(f"mean Jaccard {report['overlap']['mean_jaccard']}")
    print(json.dumps({"report": str(Path(out) / "report.html")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
