"""Batch-scoring benchmark at scenario scale: 1M users x 27k movies, random factors of rank 64.

One run prints one table (medians of --repeats runs) of:
- the top-20 kernel in users/s on all cores (one process per core, one BLAS thread each, the
  way Spark tasks run it), for: the matrix products alone (the bound), the full jobs.publish.topk
  pipeline (product + seen exclusion + top-20), and the plain `argpartition` baseline;
- the whole Spark job, jobs.publish.score.score(): 1M users -> Parquet, plus its Spark-side audit;
- Spark ALS `recommendForAllUsers(20)` on the very same factors (an ALSModel whose factor
  tables are ours), on a user sample, extrapolated; top-20 lists compared on that sample;
- COPY + audit + publish of the 1M scored rows through jobs.publish.publish (then rolled back).

`python -m benchmarks.bench_scoring [--users 1000000] [--items 27000] [--rank 64]`
Memory stays around 2-3 GB: factors 256 MB, histories ~100 MB, one score block per process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from jobs.publish import topk
from tests.support.topk_reference import argpartition_top_k

_STATE: dict = {}


# ------------------------------------------------------------------ synthetic model
def synthetic(n_users: int, n_items: int, rank: int, mean_seen: int, seed: int = 0) -> dict:
    """Random factors (+ item bias) and random histories (CSR), like a trained model's state."""
    rng = np.random.default_rng(seed)
    scale = 1.0 / np.sqrt(rank)
    user_factors = (rng.standard_normal((n_users, rank), dtype=np.float32) * scale).astype(
        np.float32
    )
    item_factors = rng.standard_normal((n_items, rank), dtype=np.float32)
    item_bias = (rng.standard_normal(n_items) * 0.1).astype(np.float32)
    sizes = rng.poisson(mean_seen, n_users).clip(0, n_items - 20)
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(sizes, out=indptr[1:])
    # Random histories, duplicates within a row are harmless for exclusion.
    indices = rng.integers(0, n_items, int(indptr[-1]), dtype=np.int32)
    return {
        "user_factors": user_factors,
        "item_factors": item_factors,
        "item_bias": item_bias,
        "indptr": indptr,
        "indices": indices,
    }


# ------------------------------------------------------------------ kernel, per process
def _init(data: dict, bias: bool, exclude: bool) -> None:
    from threadpoolctl import threadpool_limits

    _STATE["limits"] = threadpool_limits(1)
    _STATE["data"] = data
    _STATE["exclude"] = exclude
    _STATE["scorer"] = topk.FactorTopK(data["item_factors"], data["item_bias"] if bias else None)


def _run(job: tuple[str, int, int]) -> float:
    """Score users [start, stop) in `mode`; return seconds."""
    mode, start, stop = job
    data, scorer = _STATE["data"], _STATE["scorer"]
    block = scorer.block
    seen_all = topk.SeenCSR(data["indptr"], data["indices"])
    began = time.perf_counter()
    for lo in range(start, stop, block):
        hi = min(stop, lo + block)
        users = data["user_factors"][lo:hi]
        seen = seen_all.rows(lo, hi) if _STATE["exclude"] else None
        if mode == "product":
            scorer.scores(users)
        elif mode == "topk":
            scorer.top_k(users, seen)
        elif mode == "argpartition":
            scores = scorer.scores(users)
            if seen is not None:
                topk.exclude_seen(scores, seen, scorer.n_items)
            argpartition_top_k(scores, scorer.k)
    return time.perf_counter() - began


def kernel_rates(data, n_users, workers, repeats, bias=True, exclude=True) -> dict[str, float]:
    """Median users/s of each mode over `repeats`, `workers` processes on disjoint user ranges."""
    ctx = get_context("fork")
    edges = np.linspace(0, n_users, workers + 1).astype(int)
    rates: dict[str, list[float]] = {"product": [], "topk": [], "argpartition": []}
    with ProcessPoolExecutor(workers, ctx, initializer=_init, initargs=(data, bias, exclude)) as ex:
        list(ex.map(_run, [("topk", 0, 512)] * workers))  # warm up: buffers, page faults
        for _ in range(repeats):
            for mode in rates:
                jobs = [(mode, int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]
                began = time.perf_counter()
                list(ex.map(_run, jobs))
                rates[mode].append(n_users / (time.perf_counter() - began))
    return {mode: statistics.median(values) for mode, values in rates.items()}


# ------------------------------------------------------------------ Spark ALS on our factors
def als_model_dir(spark, root: Path, user_factors: np.ndarray, item_factors: np.ndarray) -> Path:
    """An ALSModel directory whose userFactors/itemFactors are exactly ours (ids = row index)."""
    from pyspark.ml.recommendation import ALS

    tiny = spark.createDataFrame([(0, 0, 1.0), (1, 1, 1.0)], ["user", "item", "rating"])
    path = root / "als"
    ALS(rank=2, maxIter=1, seed=0).fit(tiny).write().overwrite().save(str(path))
    meta_file = next((path / "metadata").glob("part-*"))
    meta = json.loads(meta_file.read_text())
    meta["rank"] = int(user_factors.shape[1])
    meta_file.write_text(json.dumps(meta))
    for crc in (path / "metadata").glob(".*.crc"):
        crc.unlink()
    schema = "id int, features array<float>"
    for name, factors in (("userFactors", user_factors), ("itemFactors", item_factors)):
        shutil.rmtree(path / name)
        rows = [(i, factors[i].tolist()) for i in range(len(factors))]
        spark.createDataFrame(rows, schema).repartition(4).write.parquet(str(path / name))
    return path


def als_rate(spark, data: dict, sample: int, workers: int, root: Path) -> dict:
    """recommendForAllUsers(20) on a user sample vs jobs.publish.topk, same factors, no bias."""
    from pyspark.ml.recommendation import ALSModel

    users = data["user_factors"][:sample]
    path = als_model_dir(spark, root, users, data["item_factors"])
    model = ALSModel.load(str(path))
    began = time.perf_counter()
    recs = model.recommendForAllUsers(20).collect()
    als_seconds = time.perf_counter() - began
    ours, _ = topk.FactorTopK(data["item_factors"]).top_k(users)
    identical, near_ties = 0, 0
    for row in recs:
        theirs = [r["item"] for r in row["recommendations"]]
        mine = ours[row["user"]].tolist()
        if theirs == mine:
            identical += 1
        else:
            # Count mismatches that are only float rounding between two equal-looking scores.
            s = users[row["user"]] @ data["item_factors"][list(set(theirs) ^ set(mine))].T
            near_ties += bool(len(s) == 0 or np.ptp(s) < 1e-5)
    sub = {k: (v[: sample + 1] if k == "indptr" else v) for k, v in data.items()}
    ours_rate = kernel_rates(sub, sample, workers, 1, bias=False, exclude=False)["topk"]
    return {
        "sample": sample,
        "als_users_per_s": sample / als_seconds,
        "ours_users_per_s": ours_rate,
        "identical": identical,
        "compared": len(recs),
        "rounding_ties": near_ties,
    }


# ------------------------------------------------------------------ Spark job + publish
def catalogue(n_items: int) -> list[str]:
    """Synthetic movie IDs in the movielog slug format."""
    return [f"movie+{i:05d}+2000" for i in range(n_items)]


def save_model(data: dict, n_items: int, path: Path) -> Path:
    """The synthetic state saved as a svd_surprise model (what jobs.publish.score reads)."""
    import scipy.sparse as sp

    from jobs.models.svd_surprise import SurpriseSVD

    n_users = len(data["user_factors"])
    model = SurpriseSVD()
    model.user_ids = np.arange(1, n_users + 1, dtype=np.int64)
    model.item_ids = np.array(catalogue(n_items))
    model.user_factors = data["user_factors"]
    model.item_factors = data["item_factors"]
    model.user_bias = np.zeros(n_users)
    model.item_bias = data["item_bias"].astype(np.float64)
    seen = sp.csr_matrix(
        (np.ones(len(data["indices"]), dtype=np.float32), data["indices"], data["indptr"]),
        shape=(n_users, n_items),
    )
    seen.sum_duplicates()
    model.seen = seen
    return model.save(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=27_000)
    parser.add_argument("--rank", type=int, default=64)
    parser.add_argument("--mean-seen", type=int, default=40)
    parser.add_argument(
        "--kernel-users",
        type=int,
        default=200_000,
        help="users per kernel timing run (rates are per second)",
    )
    parser.add_argument("--als-sample", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument("--skip-publish", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

    rows: list[tuple[str, str, str]] = []
    data = synthetic(args.users, args.items, args.rank, args.mean_seen)
    n = min(args.kernel_users, args.users)
    rates = kernel_rates(data, n, args.workers, args.repeats)
    bound, ours, naive = rates["product"], rates["topk"], rates["argpartition"]
    rows += [
        ("matrix-product bound (products only)", f"{bound:,.0f} users/s", ""),
        (
            "jobs.publish.topk: product + exclusion + top-20",
            f"{ours:,.0f} users/s",
            f"{ours / bound:.2f} of bound (target >= 0.5)",
        ),
        (
            "naive: product + exclusion + argpartition",
            f"{naive:,.0f} users/s",
            f"{naive / bound:.2f} of bound; jobs.publish.topk is {ours / naive:.1f}x",
        ),
        ("  -> 1M users, kernel only", f"{1_000_000 / ours:,.1f} s", ""),
    ]
    root = Path(tempfile.mkdtemp(prefix="bench-scoring-"))
    try:
        if not args.skip_spark:
            from jobs.publish import score
            from jobs.spark import get_spark

            spark = get_spark("bench-scoring", driver_memory="3g")
            als = als_rate(spark, data, args.als_sample, args.workers, root)
            rows.append(
                (
                    f"Spark ALS recommendForAllUsers(20), {als['sample']:,} users",
                    f"{als['als_users_per_s']:,.0f} users/s",
                    "jobs.publish.topk (same: no bias/exclusion) "
                    f"{als['ours_users_per_s']:,.0f} users/s = "
                    f"{als['ours_users_per_s'] / als['als_users_per_s']:.1f}x (target >= 10x)",
                )
            )
            rows.append(
                (
                    "  identical top-20 lists vs ALS",
                    f"{als['identical']:,}/{als['compared']:,}",
                    f"{als['rounding_ties']} differ only by float rounding of tied scores",
                )
            )
            model_dir = save_model(data, args.items, root / "model")
            del data
            began = time.perf_counter()
            result = score.score(model_dir, root / "scored", spark=spark)
            job = time.perf_counter() - began
            began = time.perf_counter()
            score.audit(result.path, expected_users=result.n_users, spark=spark)
            audit_s = time.perf_counter() - began
            rows.append(
                (
                    f"Spark job jobs.publish.score, {result.n_users:,} users -> Parquet",
                    f"{job:,.1f} s",
                    f"{result.n_users / job:,.0f} users/s end to end (bundle + tasks + write)",
                )
            )
            rows.append(("  Spark-side audit (rows, distinct, seen)", f"{audit_s:,.1f} s", ""))
            if not args.skip_publish:
                rows += publish_rows(result.path, result.n_users, catalogue(args.items))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print_table(rows, args)


def publish_rows(path: str, n_users: int, catalog: list[str]) -> list[tuple[str, str, str]]:
    """Time COPY into a new table, the audit (+ attach) and the pointer switch; then roll back."""
    from jobs.publish import publish, score

    version = f"bench-{uuid.uuid4().hex[:10]}"
    began = time.perf_counter()
    publish.load_recommendations(score.read_rows(path), version, "bench", total=n_users)
    copy_s = time.perf_counter() - began
    publish.audit(version, expected_users=n_users, catalog=catalog)
    audit_s = time.perf_counter() - began - copy_s
    publish.publish(version)
    total = time.perf_counter() - began
    publish.rollback()  # serve what was served before the benchmark
    drop_version(version)
    rows = [
        (f"COPY {n_users:,} rows (jobs.publish.publish)", f"{copy_s:,.1f} s", ""),
        ("  audit (incl. catalogue check) + attach", f"{audit_s:,.1f} s", ""),
        ("  COPY + audit + publish", f"{total:,.1f} s", "target <= 60 s; rolled back after"),
    ]
    return rows


def drop_version(version: str) -> None:
    """Remove the benchmark's version: restore the previous pointer, detach, drop, retire."""
    import psycopg2
    from psycopg2 import sql

    from contracts import settings
    from jobs.publish import publish

    conn = psycopg2.connect(settings.load().database_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            # After rollback() the bench version is "previous": give that slot back.
            cur.execute(
                "UPDATE serving_pointer SET previous_reco_version = NULL "
                "WHERE previous_reco_version = %s",
                (version,),
            )
            table = publish.table_name(version)
            cur.execute(
                sql.SQL("ALTER TABLE recommendations DETACH PARTITION {}").format(
                    sql.Identifier(table)
                )
            )
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
            cur.execute(
                "UPDATE reco_versions SET status = 'retired' WHERE reco_version = %s", (version,)
            )
    finally:
        conn.close()


def print_table(rows: list[tuple[str, str, str]], args) -> None:
    title = (
        f"batch scoring: {args.users:,} users x {args.items:,} movies, rank {args.rank}, "
        f"{args.workers} processes x 1 BLAS thread, medians of {args.repeats}"
    )
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    print(title)
    print("-" * len(title))
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>{value_width}}  {note}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
