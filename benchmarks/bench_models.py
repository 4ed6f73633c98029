"""Model families on the real MovieTweetings 100k sample: accuracy, fit time, throughput, size.

Protocol (docs/models.md): the dataset job's GLOBAL temporal split (train = before the cutoff T
at the 0.8 quantile of event time; test = after T, users and movies with training history).
Hyperparameters are chosen on a VALIDATION split carved from the training period by the same
rule (jobs.train.dataset.temporal_split), never on test; the chosen setting is then fitted on the
whole training split REPEATS times (median fit seconds) and measured once on test. The hybrid
family chooses its own blend on such a validation split inside fit().

Prints one table: NDCG@20 (and its ratio to the 30-day popularity the pipeline uses),
P@20, R@20, MAP@20, catalogue coverage, popularity bias, RMSE for rating models, median fit
seconds, median users/s of recommend() on a 2048-user block (REPEATS calls after a warm-up),
bytes written by save(), bytes of the arrays held in memory. Then a paired bootstrap 95%
interval of the NDCG@20 difference best-family minus each popularity, and Surprise SVD
through our pipeline vs Surprise run directly on the same split (RMSE).
Definitions: jobs/train/report.py DEFINITIONS. `--split per_user` reruns on the older rule.
Skips with a message when the sample is absent.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

SAMPLE = Path("/work/shared/data/movietweetings-100k/ratings.dat")
REPEATS = 3
BLOCK = 2048
BOOTSTRAP = 2000
ALS = {"rank": 32, "max_iter": 10, "reg_param": 0.1}
# (label, family, candidate settings: the first is the default, the best on validation wins)
MODELS = [
    ("popularity 30d (pipeline default)", "popularity", [{"window_days": 30}]),
    (
        "popularity (window tuned)",
        "popularity",
        [{"window_days": d} for d in (1, 3, 7, 14, 30, None)],
    ),
    ("svd_surprise", "svd_surprise", [{}]),
    ("als_spark explicit", "als_spark", [ALS]),
    (
        "als_spark implicit",
        "als_spark",
        [{**ALS, "implicit_prefs": True, "alpha": a} for a in (1.0, 10.0, 40.0)],
    ),
    (
        "item_knn",
        "item_knn",
        [{"neighbours": m, "shrink": s} for m, s in ((50, 10.0), (200, 50.0), (200, 200.0))],
    ),
    ("ease", "ease", [{"reg": r, "max_items": 20000} for r in (200.0, 1000.0, 3000.0)]),
    ("hybrid (auto blend)", "hybrid", [{}]),
]


def surprise_direct_rmse(train, test, params: dict) -> float:
    """Surprise's own fit/test/accuracy.rmse on the same rated train/test rows."""
    from surprise import SVD, Dataset, Reader, accuracy

    rated = train[train.rating.notna()]
    data = Dataset.load_from_df(
        rated[["user_id", "movie_id", "rating"]], Reader(rating_scale=(1, 5))
    )
    algo = SVD(random_state=params.get("random_state", 42))
    algo.fit(data.build_full_trainset())
    held = test[test.rating.notna()]
    testset = list(zip(held.user_id, held.movie_id, held.rating, strict=True))
    return accuracy.rmse(algo.test(testset), verbose=False)


def movietweetings_split(root: Path, split: str = "global", spark=None):
    """Snapshot -> dataset (all history, the given split rule) -> (path, train, test)."""
    from jobs.train import dataset
    from tests.support import movietweetings

    snap = movietweetings.rate_snapshot(SAMPLE, root / "mt-snapshot")
    path = dataset.build_dataset(
        [snap], root / f"mt-dataset-{split}", window_days=None, split=split, spark=spark
    )
    return path, *dataset.load_split(path)


def tune(family: str, candidates: list[dict], train: pd.DataFrame) -> tuple[dict, list]:
    """The candidate with the best NDCG@20 on a validation split of `train` (+ all scores)."""
    from jobs.train import dataset, evaluate
    from jobs.train.train import fit_timed

    if len(candidates) == 1:
        return candidates[0], []
    fit_part, val, _ = dataset.temporal_split(train, dataset.DEFAULT_TEST_FRACTION)
    scores = []
    for params in candidates:
        model, _ = fit_timed(family, params, fit_part)
        scores.append(evaluate.evaluate(model, fit_part, val)["overall"]["ndcg_at_20"])
    return candidates[int(np.argmax(scores))], scores


def measure(family: str, params: dict, train, test, out: Path) -> dict:
    """Fit REPEATS times (median seconds), then accuracy, throughput and size of the last fit."""
    from jobs.train import evaluate, metrics
    from jobs.train.train import disk_bytes, fit_timed

    fits, model = [], None
    for _ in range(REPEATS):
        model, seconds = fit_timed(family, params, train)
        fits.append(seconds)
    users = np.sort(model.known_users())[:BLOCK]
    model.recommend(users[:16])
    rates = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        model.recommend(users, k=20)
        rates.append(len(users) / (time.perf_counter() - start))
    test_users = np.unique(test.user_id.to_numpy(np.int64))
    recs = evaluate.recommend_all(model, test_users, 20)
    result = evaluate.evaluate(model, train, test, recommendations=recs)["overall"]
    per_user = metrics.per_user_ranking(test, recs, 20).set_index("user_id")["ndcg"]
    saved = model.save(out)
    return {
        **result,
        "params": params,
        "chosen": {
            k: getattr(model, k)
            for k in ("blend", "half_life_days", "history_half_life_days")
            if hasattr(model, k)
        },
        "per_user_ndcg": per_user,
        "fit_s": statistics.median(fits),
        "users_s": statistics.median(rates),
        "disk_mb": disk_bytes(saved) / 1e6,
        "mem_mb": model.memory_bytes() / 1e6,
    }


def paired_interval(a: pd.Series, b: pd.Series, seed: int = 0) -> tuple[float, float, float]:
    """Mean of a - b over the same users and its 95% paired-bootstrap interval."""
    diff = (a - b.reindex(a.index)).to_numpy()
    rng = np.random.default_rng(seed)
    means = np.array([diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(BOOTSTRAP)])
    return float(diff.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("global", "per_user"), default="global")
    args = parser.parse_args(argv)
    if not SAMPLE.exists():
        print(f"skipped: MovieTweetings sample not found at {SAMPLE}")
        return 0
    from jobs.train import dataset

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path, train, test = movietweetings_split(root, args.split)
        split = dataset.read_manifest(path)["split"]
        counts = dataset.read_manifest(path)["counts"]
        print(
            f"dataset ({split['rule']}; cutoff {split.get('cutoff')}): {len(train)} train / "
            f"{len(test)} test interactions, {test.user_id.nunique()} test users; not scored: "
            f"{counts.get('test_cold_user', 0)} cold-user, {counts.get('test_cold_item', 0)} "
            "cold-movie interactions",
            flush=True,
        )
        rows = []
        for label, family, candidates in MODELS:
            params, scores = tune(family, candidates, train)
            if scores:
                tried = ", ".join(f"{c}: {s:.4f}" for c, s in zip(candidates, scores, strict=True))
                print(f"  {label}: validation NDCG@20 {tried} -> {params}", flush=True)
            rows.append((label, measure(family, params, train, test, root / f"m{len(rows)}")))
            print(f"  measured {label}", flush=True)
        pop = rows[0][1]["ndcg_at_20"]
        header = (
            f"{'model':<34}{'NDCG@20':>8}{'vs pop':>7}{'P@20':>7}{'R@20':>7}{'MAP@20':>7}"
            f"{'cover':>7}{'popbias':>8}{'RMSE':>7}{'fit s':>7}{'users/s':>9}{'disk MB':>8}"
            f"{'mem MB':>8}"
        )
        print(header)
        print("-" * len(header))
        for label, r in rows:
            rmse = f"{r['rmse']:.4f}" if r.get("rmse") is not None else "-"
            print(
                f"{label:<34}{r['ndcg_at_20']:>8.4f}{r['ndcg_at_20'] / pop:>7.2f}"
                f"{r['precision_at_20']:>7.4f}{r['recall_at_20']:>7.4f}{r['map_at_20']:>7.4f}"
                f"{r['catalog_coverage']:>7.3f}{r['popularity_bias']:>8.3f}{rmse:>7}"
                f"{r['fit_s']:>7.2f}{r['users_s']:>9.0f}{r['disk_mb']:>8.2f}{r['mem_mb']:>8.2f}"
            )
        for label, r in rows:
            extra = f" chosen {r['chosen']}" if r["chosen"] else ""
            print(f"  {label}: params {r['params']}{extra}")
        best_label, best = max(
            ((lb, r) for lb, r in rows if not lb.startswith("popularity")),
            key=lambda x: x[1]["ndcg_at_20"],
        )
        for label, r in rows:
            if label.startswith("popularity"):
                mean, lo, hi = paired_interval(best["per_user_ndcg"], r["per_user_ndcg"])
                print(
                    f"NDCG@20 {best_label} - {label}: {mean:+.4f} "
                    f"(95% paired bootstrap over test users: {lo:+.4f} .. {hi:+.4f})"
                )
        direct = surprise_direct_rmse(train, test, {})
        ours = dict(rows)["svd_surprise"]["rmse"]
        print(
            f"Surprise SVD RMSE: pipeline {ours:.4f}, Surprise direct {direct:.4f}, "
            f"difference {abs(ours - direct):.4f} (fit/users/s: median of {REPEATS})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
