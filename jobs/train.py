"""Train one model family on a dataset, measure it, save the artifact, register a candidate.

`train(dataset_path, family, params) -> model_version`. Fitting runs in this process; families
that need Spark (als_spark, item_knn with engine=spark) get the shared session from
jobs.spark.get_spark, so `spark-submit jobs/train.py …` and `python -m jobs.train …` both work.
The artifact lands in settings.models_dir/<model_version>/ (written aside, hashed, renamed).

Measurements stored with the offline metrics (the report defines them the same way):
- fit_seconds: wall seconds of model.fit(train) (time.perf_counter), including Spark work.
- recommend_users_per_second: users / wall seconds of one model.recommend(block, k=20) call
  on the first min(2048, known users) known users, sorted by ID, after one warm-up call.
- disk_bytes: total bytes of the files model.save() writes.
- memory_bytes: sum of .nbytes of the numpy arrays (and CSR data/indices/indptr) the fitted
  model holds: what a scoring process must keep in RAM.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jobs import dataset, evaluate, registry, settings
from jobs.models import families
from jobs.models.base import Recommender

log = logging.getLogger(__name__)

THROUGHPUT_BLOCK = 2048


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    """`k=v` strings to a dict; values parsed as JSON when they are JSON (numbers, bools, null)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"hyperparameter {pair!r} is not of the form name=value")
        name, raw = pair.split("=", 1)
        try:
            params[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[name.strip()] = raw
    return params


def fit_timed(
    family: str, params: dict[str, Any], train: pd.DataFrame
) -> tuple[Recommender, float]:
    """A fitted model of `family` and the wall seconds fit() took."""
    model = families.create(family, **params)
    start = time.perf_counter()
    model.fit(train)
    return model, time.perf_counter() - start


def throughput(model: Recommender, k: int = 20, block: int = THROUGHPUT_BLOCK) -> float:
    """Users per second of one recommend() call on a block of known users (after a warm-up)."""
    users = np.sort(model.known_users())[:block]
    if len(users) == 0:
        return 0.0
    model.recommend(users[:16], k=k)
    start = time.perf_counter()
    model.recommend(users, k=k)
    return len(users) / max(time.perf_counter() - start, 1e-9)


def disk_bytes(path: Path) -> int:
    """Total size of the files under an artifact directory."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def memory_bytes(model: Recommender) -> int:
    """Bytes of the arrays the model holds (0 if the family does not report it)."""
    return int(getattr(model, "memory_bytes", lambda: 0)())


def train(
    dataset_path: str | Path,
    family: str,
    params: dict[str, Any] | None = None,
    k: int = 20,
    database_url: str | None = None,
    models_dir: str | Path | None = None,
    users_dim: pd.DataFrame | None = None,
) -> str:
    """Fit, evaluate, measure, save and register `family` on a dataset; return model_version."""
    params = dict(params or {})
    dataset_path = Path(dataset_path)
    manifest = dataset.read_manifest(dataset_path)
    train_df, test_df = dataset.load_split(dataset_path)
    log.info("training %s %s on %s (%d train rows)", family, params, dataset_path, len(train_df))
    model, fit_seconds = fit_timed(family, params, train_df)
    result = evaluate.evaluate(model, train_df, test_df, k=k, users_dim=users_dim)

    root = Path(models_dir) if models_dir else settings.load().models_dir
    tmp = root / f".tmp-{family}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(tmp)
    sha = registry.artifact_sha256(tmp)
    newest = pd.Timestamp(manifest["window"]["newest_event"]).to_pydatetime()
    version = registry.make_version(family, newest, sha, model.params, manifest["dataset_id"])
    final = root / version
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)

    measured = {
        "fit_seconds": fit_seconds,
        "recommend_users_per_second": throughput(model, k),
        "disk_bytes": disk_bytes(final),
        "memory_bytes": memory_bytes(model),
    }
    metrics = {**result["overall"], **measured, "k": k, "by_group": result["by_group"]}
    registry.register(
        version,
        family,
        model.params,
        metrics,
        manifest,
        dataset_path,
        final,
        sha,
        fit_seconds,
        data_newest_event=newest,
        database_url=database_url,
    )
    log.info("registered %s: ndcg@%d=%.4f", version, k, metrics.get(f"ndcg_at_{k}", float("nan")))
    return version


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="dataset directory")
    parser.add_argument("--family", required=True, choices=sorted(families.FAMILIES))
    parser.add_argument("--param", action="append", default=[], help="hyperparameter name=value")
    parser.add_argument("--k", type=int, default=20)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    version = train(
        args.dataset,
        args.family,
        parse_params(args.param),
        k=args.k,
        users_dim=evaluate.load_users_dim(),
    )
    print(version)
    return version


if __name__ == "__main__":
    main(sys.argv[1:])
