"""Batch scoring: top-20 unseen movies for every known user, in vectorised blocks inside Spark.

`score(model_dir, out_dir)` turns a saved model into a *scoring bundle* (plain .npy arrays,
memory-mapped by every partition: the item side is read once per Python worker, each
partition reads only its own users' rows), runs one Spark `mapInPandas` over ranges of user
rows, and writes Parquet `user_id bigint, items array<string>, n_items int, n_seen int`.

Per block of users, by the model's shape:
- factor models (`FactorModel`: svd_surprise, als_spark, …): one sgemm plus the tile-max
  selection of jobs.publish.topk (item bias folded into the product);
- any other `ArrayModel` (item_knn, popularity, …): the family's own block scorer
  (`score_block`, e.g. sparse neighbour aggregation) plus the same exact selection;
- any other Recommender: its `recommend(users)` on the whole block.
Never one call per (user, movie). A list shorter than k (a user who has seen almost
everything, a sparse kNN row) is completed from the training-popularity order, unseen.

`audit(out_dir)` checks on the Spark side, before anything reaches Postgres: one row per
known user, k distinct items each, none already seen (n_seen is recounted per row against
the seen CSR, independently of the selection code). `read_rows` streams the Parquet to
jobs.publish.publish.load_and_publish (COPY into a new table, its audit, the pointer switch).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from contracts import settings
from contracts.names import ITEM_COL, USER_COL, K
from jobs.publish import topk

log = logging.getLogger(__name__)

BUNDLE_DIR = "_bundle"
USERS_PER_TASK = 50_000  # user rows per Spark partition at scenario scale (1M users -> 20)
EXPLORATION_SEED = 20_16  # exploration draws: fixed, so scoring stays data-keyed
OUTPUT_SCHEMA = f"{USER_COL} bigint, items array<string>, n_items int, n_seen int"


def scored_dir(model_version: str) -> Path:
    """Where a model's scored lists are written (lake/scores/<model_version>), before the COPY."""
    return settings.load().lake_dir / "scores" / model_version


class ScoringError(RuntimeError):
    """Scoring could not produce a complete, valid top-k table; the message says why."""


@dataclass(frozen=True)
class ScoreResult:
    """Where the scored Parquet is and what it holds."""

    path: str
    n_users: int
    k: int
    family: str
    kind: str
    seconds: float


# ---------------------------------------------------------------- models and bundles
def load_model(path: str | Path):
    """Load any saved Recommender: its model.json names the family (jobs.models.families)."""
    from jobs.models import families

    path = Path(path)
    meta_file = path / "model.json"
    if not meta_file.exists():
        raise ScoringError(f"{path} is not a saved model (no model.json)")
    family = json.loads(meta_file.read_text()).get("family")
    try:
        return families.load(family, path)
    except ValueError as exc:
        raise ScoringError(f"cannot load {path}: {exc}") from exc


def scoring_kind(model: Any) -> str:
    """'factor' (sgemm + selection), 'block' (family's score_block + selection) or 'generic'."""
    from jobs.models.common import ArrayModel, FactorModel

    if isinstance(model, FactorModel):
        return "factor"
    if isinstance(model, ArrayModel):
        return "block"
    return "generic"


def prepare_bundle(model: Any, model_dir: str | Path, bundle_dir: str | Path) -> dict[str, Any]:
    """Write the arrays every partition needs as .npy (memory-mappable) plus bundle.json."""
    bundle_dir = Path(bundle_dir)
    bundle_dir.mkdir(parents=True, exist_ok=True)
    kind = scoring_kind(model)
    user_ids = np.asarray(model.known_users(), dtype=np.int64)
    meta: dict[str, Any] = {
        "kind": kind,
        "family": getattr(model, "family", type(model).__name__),
        "model_dir": str(Path(model_dir).resolve()),
        "n_users": int(len(user_ids)),
    }
    np.save(bundle_dir / "user_ids.npy", user_ids)
    if kind in ("factor", "block"):
        import scipy.sparse as sp

        seen = sp.csr_matrix(model.seen)
        if seen.shape[0] != len(user_ids):
            raise ScoringError(f"seen matrix has {seen.shape[0]} rows for {len(user_ids)} users")
        np.save(bundle_dir / "seen_indptr.npy", seen.indptr.astype(np.int64))
        np.save(bundle_dir / "seen_indices.npy", seen.indices.astype(np.int32))
        item_ids = np.asarray(model.item_ids).astype(str)
        np.save(bundle_dir / "item_ids.npy", item_ids)
        # Fallback order for short lists: most-interacted training items first (ties by index).
        counts = np.bincount(seen.indices, minlength=len(item_ids))
        np.save(bundle_dir / "fallback.npy", np.argsort(-counts, kind="stable").astype(np.int64))
        meta["n_items"] = int(len(item_ids))
        # Read once here so every worker uses the same value (EXPLORATION_SLOTS).
        meta["exploration_slots"] = settings.exploration_slots()
    if kind == "factor":
        user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        if not (np.isfinite(user_factors).all() and np.isfinite(item_factors).all()):
            raise ScoringError(f"model {model_dir} has NaN or infinite factors")
        np.save(bundle_dir / "user_factors.npy", user_factors)
        np.save(bundle_dir / "item_factors.npy", item_factors)
        np.save(bundle_dir / "item_bias.npy", np.asarray(model.item_bias, dtype=np.float32))
    (bundle_dir / "bundle.json").write_text(json.dumps(meta, indent=2))
    return meta


class BlockScorer:
    """One bundle opened in one Python worker: scores user rows [start, stop) in blocks."""

    def __init__(self, bundle_dir: str | Path, k: int = K) -> None:
        bundle_dir = Path(bundle_dir)
        self.meta = json.loads((bundle_dir / "bundle.json").read_text())
        self.k = k
        self.kind = self.meta["kind"]
        self.user_ids = np.load(bundle_dir / "user_ids.npy", mmap_mode="r")
        self.model = None
        self.factor = None
        if self.kind in ("factor", "block"):
            self.seen_indptr = np.load(bundle_dir / "seen_indptr.npy", mmap_mode="r")
            self.seen_indices = np.load(bundle_dir / "seen_indices.npy", mmap_mode="r")
            self.item_ids = np.load(bundle_dir / "item_ids.npy")
            self.fallback = np.load(bundle_dir / "fallback.npy")
            self.explore = int(self.meta.get("exploration_slots", 0))
        if self.kind == "factor":
            self.user_factors = np.load(bundle_dir / "user_factors.npy", mmap_mode="r")
            self.factor = topk.FactorTopK(
                np.load(bundle_dir / "item_factors.npy"),
                np.load(bundle_dir / "item_bias.npy"),
                k=k,
            )
        else:
            self.model = load_model(self.meta["model_dir"])

    def seen(self, start: int, stop: int) -> topk.SeenCSR:
        """Seen item indices of user rows [start, stop), re-based."""
        lo, hi = int(self.seen_indptr[start]), int(self.seen_indptr[stop])
        indptr = np.asarray(self.seen_indptr[start : stop + 1], dtype=np.int64) - lo
        return topk.SeenCSR(indptr, np.asarray(self.seen_indices[lo:hi], dtype=np.int64))

    def score_rows(self, start: int, stop: int) -> pd.DataFrame:
        """user_id, items (k movie IDs, best first), n_items, n_seen for rows [start, stop)."""
        users = np.asarray(self.user_ids[start:stop], dtype=np.int64)
        if self.kind == "generic":
            return self._generic(users)
        seen = self.seen(start, stop)
        if self.kind == "factor":
            items, _ = self.factor.top_k(np.asarray(self.user_factors[start:stop]), seen)
        else:
            items = self._dense_blocks(start, stop, seen)
        if (items < 0).any():
            items = topk.fill_from_ranking(items, self.fallback, seen)
        if self.explore:  # seeded by the row range: a rerun scores the same lists
            rng = np.random.default_rng([EXPLORATION_SEED, start])
            items = topk.explore_slots(items, len(self.item_ids), self.explore, rng, seen)
        return pd.DataFrame(
            {
                USER_COL: users,
                "items": list(np.where(items >= 0, self.item_ids[items.clip(0)], None)),
                "n_items": (items >= 0).sum(axis=1).astype(np.int32),
                "n_seen": count_seen(items, seen),
            }
        )

    def _dense_blocks(self, start: int, stop: int, seen: topk.SeenCSR) -> np.ndarray:
        """Family's score_block per block (e.g. sparse kNN aggregation), then exact selection."""
        n_items = len(self.item_ids)
        groups = max(self.k, min(topk.DEFAULT_GROUPS, n_items))
        depth = -(-n_items // groups)
        out = np.full((stop - start, self.k), -1, dtype=np.int64)
        # float64: block scorers (popularity tie-breaks, kNN sums) need more than 24 bits.
        values = np.full((stop - start, self.k), -np.inf, dtype=np.float64)
        for lo in range(start, stop, topk.DEFAULT_BLOCK):
            hi = min(stop, lo + topk.DEFAULT_BLOCK)
            raw = np.asarray(self.model.score_block(np.arange(lo, hi)), dtype=np.float64)
            scores = np.full((hi - lo, groups * depth), -np.inf, dtype=np.float64)
            scores[:, :n_items] = np.where(np.isfinite(raw), raw, -np.inf)
            topk.exclude_seen(scores, seen.rows(lo - start, hi - start), n_items)
            topk.select_top_k(
                scores,
                self.k,
                groups,
                out[lo - start : hi - start],
                values[lo - start : hi - start],
            )
        return out

    def _generic(self, users: np.ndarray) -> pd.DataFrame:
        recs = self.model.recommend(users, k=self.k, exclude_seen=True)
        recs = recs.sort_values([USER_COL, "rank"], kind="stable")
        lists = recs.groupby(USER_COL, sort=False)[ITEM_COL].agg(lambda s: [str(x) for x in s])
        lists = lists.reindex(users)
        lists = lists.where(lists.notna(), pd.Series([[]] * len(users), index=lists.index))
        return pd.DataFrame(
            {
                USER_COL: users,
                "items": list(lists),
                "n_items": np.fromiter(map(len, lists), dtype=np.int32, count=len(users)),
                # A generic model has no seen matrix here; the recommender promised to exclude.
                "n_seen": np.zeros(len(users), dtype=np.int32),
            }
        )


def count_seen(items: np.ndarray, seen: topk.SeenCSR) -> np.ndarray:
    """Per row, how many listed items are in that row's seen set (must be 0): a recount."""
    b, k = items.shape
    if seen.indices.size == 0:
        return np.zeros(b, dtype=np.int32)
    width = int(max(items.max(initial=0), seen.indices.max()) + 1)
    seen_keys = np.unique(seen.row_ids().astype(np.int64) * width + seen.indices)
    keys = np.arange(b, dtype=np.int64)[:, None] * width + items
    hit = np.isin(keys, seen_keys) & (items >= 0)
    return hit.sum(axis=1).astype(np.int32)


_SCORERS: dict[tuple[str, int], BlockScorer] = {}


def _scorer(bundle_dir: str, k: int) -> BlockScorer:
    """The worker's BlockScorer for a bundle, opened once per Python worker process."""
    key = (bundle_dir, k)
    if key not in _SCORERS:
        _SCORERS.clear()
        _SCORERS[key] = BlockScorer(bundle_dir, k)
    return _SCORERS[key]


def score_tasks(bundle_dir: str, n_users: int, users_per_task: int, k: int, step: int = 5_000):
    """The mapInPandas function: each input row is a task number -> its users' scored rows."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from threadpoolctl import threadpool_limits

        scorer = _scorer(bundle_dir, k)
        # One BLAS thread per Spark task: the tasks themselves fill the cores.
        with threadpool_limits(1):
            for batch in batches:
                for task in batch["id"]:
                    start = int(task) * users_per_task
                    stop = min(n_users, start + users_per_task)
                    # Sub-ranges keep each pandas batch (and the worker's memory) bounded.
                    for lo in range(start, stop, step):
                        yield scorer.score_rows(lo, min(stop, lo + step))

    return run


def score(
    model_dir: str | Path,
    out_dir: str | Path,
    k: int = K,
    users_per_task: int = USERS_PER_TASK,
    spark=None,
) -> ScoreResult:
    """Score every known user of the model at `model_dir`; write Parquet to `out_dir`."""
    began = time.monotonic()
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    model = load_model(model_dir)
    bundle_dir = out_dir.parent / f"{out_dir.name}{BUNDLE_DIR}"
    if bundle_dir.exists():
        shutil.rmtree(bundle_dir)
    meta = prepare_bundle(model, model_dir, bundle_dir)
    del model
    n_users = meta["n_users"]
    if n_users == 0:
        raise ScoringError(f"model {model_dir} knows no users: nothing to score")
    if spark is None:
        from jobs.spark import get_spark

        spark = get_spark("score")
    n_tasks = -(-n_users // users_per_task)
    # One row (task number) per partition: each Spark task scores one contiguous user range.
    tasks = spark.range(0, n_tasks, 1, n_tasks)
    run = score_tasks(str(bundle_dir.resolve()), n_users, users_per_task, k)
    tasks.mapInPandas(run, OUTPUT_SCHEMA).write.mode("overwrite").parquet(str(out_dir))
    result = ScoreResult(
        path=str(out_dir),
        n_users=n_users,
        k=k,
        family=meta["family"],
        kind=meta["kind"],
        seconds=round(time.monotonic() - began, 3),
    )
    (out_dir / "_score.json").write_text(json.dumps(asdict(result), indent=2))
    log.info(
        "scored %d users (%s, %s) in %.1f s -> %s",
        n_users,
        result.family,
        result.kind,
        result.seconds,
        out_dir,
    )
    return result


# ---------------------------------------------------------------- audit and read back
def audit(out_dir: str | Path, expected_users: int | None = None, k: int = K, spark=None) -> dict:
    """Spark-side audit of the scored Parquet; raises ScoringError naming every failed check."""
    from pyspark.sql import functions as F

    if spark is None:
        from jobs.spark import get_spark

        spark = get_spark("score-audit")
    frame = spark.read.parquet(str(out_dir))
    row = frame.agg(
        F.count("*").alias("rows"),
        F.countDistinct(USER_COL).alias("users"),
        F.sum(F.when(F.size(F.array_distinct("items")) != k, 1).otherwise(0)).alias("bad_len"),
        F.sum(F.when(F.exists("items", lambda x: x.isNull()), 1).otherwise(0)).alias("nulls"),
        F.sum("n_seen").alias("seen"),
    ).first()
    checks = {
        "rows": int(row["rows"]),
        "users": int(row["users"]),
        "rows_without_k_distinct_items": int(row["bad_len"] or 0),
        "rows_with_missing_items": int(row["nulls"] or 0),
        "already_seen_items": int(row["seen"] or 0),
    }
    problems = []
    if checks["rows"] != checks["users"]:
        problems.append(f"{checks['rows'] - checks['users']} duplicate user rows")
    if expected_users is not None and checks["users"] != expected_users:
        problems.append(f"{checks['users']} users scored, {expected_users} known")
    for name in ("rows_without_k_distinct_items", "rows_with_missing_items", "already_seen_items"):
        if checks[name]:
            problems.append(f"{checks[name]} {name.replace('_', ' ')}")
    if problems:
        raise ScoringError(f"audit of {out_dir} failed: " + "; ".join(problems))
    return checks


def read_rows(out_dir: str | Path, batch_rows: int = 65_536) -> Iterator[tuple[int, str]]:
    """The scored Parquet as (user_id, 'id1,…,id20') pairs, streamed batch by batch."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    dataset = ds.dataset(str(out_dir), format="parquet")
    for batch in dataset.to_batches(columns=[USER_COL, "items"], batch_size=batch_rows):
        users = batch.column(USER_COL).to_pylist()
        joined = pc.binary_join(batch.column("items"), ",").to_pylist()
        yield from zip(users, joined, strict=True)


def main(argv: list[str] | None = None) -> None:
    """`python -m jobs.publish.score --model DIR --out DIR [--k 20]` prints the result as JSON."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--model", required=True, help="saved model directory")
    parser.add_argument("--out", required=True, help="output Parquet directory")
    parser.add_argument("--k", type=int, default=K)
    parser.add_argument("--users-per-task", type=int, default=USERS_PER_TASK)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    result = score(args.model, args.out, k=args.k, users_per_task=args.users_per_task)
    audit(result.path, result.n_users, result.k)
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
