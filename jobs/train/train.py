"""Train one model family on a dataset, measure it, save the artifact, register a candidate.

`train(dataset_path, family, params) -> model_version`. Fitting runs in this process; families
that need Spark (als_spark, item_knn with engine=spark) get the shared session from
jobs.spark.get_spark, so `spark-submit jobs/train/train.py …` and `python -m jobs.train.train …`
both work.
At scale (more interactions in the dataset than settings.train_spark_rows()) the folds and the
refit's data are read from the dataset's Parquet as Spark DataFrames, the families fit from
them (jobs.models.spark_input) and evaluate() measures with jobs.train.spark_metrics: the driver
never holds an interactions-sized pandas frame.
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

from contracts import settings
from contracts.names import ITEM_COL, TIME_COL, USER_COL, K
from jobs.files import replace_dir
from jobs.models import families, spark_input
from jobs.models.base import Recommender
from jobs.train import dataset, evaluate, registry

log = logging.getLogger(__name__)

THROUGHPUT_BLOCK = 2048


def parse_hyperparameters(raw: str | dict | None) -> dict[str, dict[str, Any]]:
    """{family: {param: value}} from a dict or its JSON text (ValueError saying why)."""
    if raw in (None, ""):
        return {}
    value = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ValueError(f'hyperparameters must be JSON {{"family": {{"param": value}}}}: {raw!r}')
    return value


def get_spark(name: str):
    """The shared Spark session (imported here: small datasets never start Spark)."""
    from jobs.spark import get_spark as session

    return session(name)


def fit_timed(family: str, params: dict[str, Any], train) -> tuple[Recommender, float]:
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


def at_scale(manifest: dict[str, Any]) -> bool:
    """Whether the dataset is trained in Spark: more interactions than TRAIN_SPARK_ROWS."""
    return manifest.get("counts", {}).get("interactions", 0) > settings.train_spark_rows()


def all_interactions(dataset_path: str | Path):
    """Every interaction of the dataset's window (what a refit uses): a Spark DataFrame at
    scale, else a pandas frame."""
    if at_scale(dataset.read_manifest(dataset_path)):
        return dataset.load_interactions_spark(get_spark("train"), dataset_path)
    return dataset.load_interactions(dataset_path)


def trained_on(frame, dataset_id: str, part: str) -> dict[str, Any]:
    """Provenance of a fit: which part of which dataset, and how much data that was."""
    if spark_input.is_spark(frame):
        from pyspark.sql import functions as F

        row = frame.agg(
            F.count("*"), F.countDistinct(USER_COL), F.countDistinct(ITEM_COL), F.max(TIME_COL)
        ).first()
        return {"dataset_id": dataset_id, "part": part, "rows": int(row[0]),
                "users": int(row[1]), "movies": int(row[2]),
                "newest_event": str(pd.Timestamp(row[3]))}  # fmt: skip
    return {
        "dataset_id": dataset_id,
        "part": part,
        "rows": int(len(frame)),
        "users": int(frame[USER_COL].nunique()),
        "movies": int(frame[ITEM_COL].nunique()),
        "newest_event": str(pd.to_datetime(frame[TIME_COL]).max()),
    }


def fit_folds(
    family: str,
    params: dict[str, Any],
    folds: Sequence[tuple[pd.DataFrame, pd.DataFrame]],
    k: int,
    users_dim: pd.DataFrame | None,
) -> tuple[Recommender, float, dict[str, Any]]:
    """Fit and evaluate on every fold; (last fold's model, its fit seconds, pooled result)."""
    if not folds:
        raise ValueError("the dataset has no evaluation fold with warm test users")
    results = []
    for i, (train_df, test_df) in enumerate(folds):
        log.info("%s fold %d/%d", family, i + 1, len(folds))
        model, fit_seconds = fit_timed(family, params, train_df)
        results.append(evaluate.evaluate(model, train_df, test_df, k=k, users_dim=users_dim))
    return model, fit_seconds, evaluate.pool(results, k)


def save_artifact(model: Recommender, root: Path, version_of) -> tuple[str, Path, str]:
    """Save aside, hash, name (version_of(sha) -> version) and swap in; (version, path, sha).

    The version names the bytes, so an existing directory of that version that still hashes
    to `sha` is the same artifact (a retried task): it is kept and the new copy dropped.
    """
    tmp = root / f".tmp-{model.family}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(tmp)
    sha = registry.artifact_sha256(tmp)
    version = version_of(sha)
    final = root / version
    if final.exists() and registry.artifact_sha256(final) == sha:
        shutil.rmtree(tmp)
    else:
        replace_dir(tmp, final)
    return version, final, sha


def measurements(model: Recommender, fit_seconds: float, path: Path, k: int) -> dict[str, Any]:
    """What running the model costs: fit time, scoring throughput, disk and memory."""
    return {
        "fit_seconds": fit_seconds,
        "recommend_users_per_second": throughput(model, k),
        "disk_bytes": disk_bytes(path),
        "memory_bytes": memory_bytes(model),
    }


def save_and_register(
    model: Recommender,
    fit_seconds: float,
    fitted_on: tuple[pd.DataFrame, str],
    dataset_path: Path,
    metrics: dict[str, Any],
    database_url: str | None = None,
    models_dir: str | Path | None = None,
    evaluated_as: str | None = None,
) -> str:
    """Save the artifact (aside, hashed, renamed), measure it and register it; its version.

    `fitted_on` = (the frame the model was fitted on, which part of the dataset that is).
    """
    manifest = dataset.read_manifest(dataset_path)
    root = Path(models_dir) if models_dir else settings.load().models_dir
    newest = pd.Timestamp(manifest["window"]["newest_event"]).to_pydatetime()
    data_key = manifest["dataset_id"] + ("-all" if evaluated_as else "")
    version, final, sha = save_artifact(
        model,
        root,
        lambda sha: registry.make_version(model.family, newest, sha, model.params, data_key),
    )
    frame, part = fitted_on
    registry.register(
        version,
        model.family,
        model.params,
        {**metrics, **measurements(model, fit_seconds, final, K), "k": K},
        manifest,
        dataset_path,
        final,
        sha,
        fit_seconds,
        data_newest_event=newest,
        database_url=database_url,
        evaluated_as=evaluated_as,
        trained_on=trained_on(frame, manifest["dataset_id"], part),
    )
    return version


def train(
    dataset_path: str | Path,
    family: str,
    params: dict[str, Any] | None = None,
    database_url: str | None = None,
    models_dir: str | Path | None = None,
    users_dim: pd.DataFrame | None = None,
) -> str:
    """Fit and evaluate `family` by the dataset's protocol, save, register; the model_version.

    Above settings.train_spark_rows() rated interactions a family with a Spark counterpart
    (svd_surprise) is trained as that family (families.at_scale).

    The saved artifact is the model of the (last) evaluation fold: the one whose numbers the
    registry holds. Per-user scores go to evaluate.per_user_path for the gate's bootstrap.
    """
    dataset_path = Path(dataset_path)
    manifest = dataset.read_manifest(dataset_path)
    family, params = families.at_scale(
        family, params or {}, manifest.get("counts", {}).get("rated", 0)
    )
    protocol = (manifest.get("evaluation") or {}).get("protocol")
    folds = (
        dataset.load_folds_spark(get_spark("train"), dataset_path)
        if at_scale(manifest)
        else dataset.load_folds(dataset_path)
    )
    log.info("training %s %s on %s (%d folds)", family, params, dataset_path, len(folds))
    model, fit_seconds, result = fit_folds(family, params, folds, K, users_dim)
    metrics = {**result["overall"], "protocol": protocol, "by_group": result["by_group"]}
    version = save_and_register(
        model,
        fit_seconds,
        (folds[-1][0], f"{protocol} evaluation fit"),
        dataset_path,
        metrics,
        database_url,
        models_dir,
    )
    per_user = evaluate.per_user_path(dataset_path, version)
    per_user.parent.mkdir(parents=True, exist_ok=True)
    result["per_user"].to_parquet(per_user, index=False)
    log.info("registered %s: ndcg@%d=%.4f", version, K, metrics.get(f"ndcg_at_{K}", float("nan")))
    return version


def refit(
    dataset_path: str | Path,
    evaluated_version: str,
    database_url: str | None = None,
    models_dir: str | Path | None = None,
) -> str:
    """Refit an evaluated model's family with its chosen hyperparameters on every interaction
    of the dataset's window (select, then refit); register it linked to the evaluated one."""
    dataset_path = Path(dataset_path)
    evaluated = registry.get(evaluated_version, database_url)
    chosen = families.load(evaluated["family"], evaluated["artifact_path"]).fitted_params()
    everything = all_interactions(dataset_path)
    log.info("refitting %s %s on all interactions", evaluated["family"], chosen)
    model, fit_seconds = fit_timed(evaluated["family"], chosen, everything)
    offline = {
        key: value
        for key, value in (evaluated["metrics"] or {}).items()
        if key not in ("by_group", "fit_seconds", "recommend_users_per_second")
    }
    version = save_and_register(
        model,
        fit_seconds,
        (everything, "all interactions in the window"),
        dataset_path,
        {"offline_from": evaluated_version, "offline": offline},
        database_url,
        models_dir,
        evaluated_as=evaluated_version,
    )
    log.info("refit %s -> %s in %.1f s", evaluated_version, version, fit_seconds)
    return version


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="dataset directory")
    parser.add_argument("--family", required=True, choices=sorted(families.FAMILIES))
    parser.add_argument(
        "--hyperparameters", default="", help='JSON, e.g. {"item_knn": {"neighbours": 100}}'
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    version = train(
        args.dataset,
        args.family,
        parse_hyperparameters(args.hyperparameters).get(args.family, {}),
        users_dim=evaluate.load_users_dim(),
    )
    print(version)
    return version


if __name__ == "__main__":
    main(sys.argv[1:])
