"""The train-and-publish steps the DAG wires together, each taking and returning ids or paths.

build_dataset -> train_candidates -> evaluate_candidates (+ report) -> gate -> score ->
publish_scores -> refresh_popularity. Every step runs without Airflow
(`python -m jobs.pipeline all --families svd_surprise,item_knn`), is keyed on the data
(dataset id, model version), never on the wall clock, and is safe to rerun.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jobs import gate as gate_mod
from jobs import settings

log = logging.getLogger(__name__)

K = 20
METRIC = f"ndcg_at_{K}"
BASELINE = "popularity"
DEFAULT_FAMILIES = ("item_knn", "svd_surprise", "hybrid")
SCORES_FILE = "gate_scores.json"
DECISION_FILE = "gate_decision.json"


def run_dir(dataset_path: str | Path) -> Path:
    """This run's working directory: reports_dir/<dataset id> (data-keyed, rerun-safe)."""
    return settings.load().reports_dir / Path(dataset_path).name


# ------------------------------------------------------------------ 1. dataset
def build_dataset(window_days: float | None = None, dataset_path: str | None = None) -> str:
    """Dataset directory from the accepted snapshots (or `dataset_path` as given); its path."""
    from jobs import dataset

    if dataset_path:
        dataset.read_manifest(dataset_path)  # fails clearly when it is not a dataset
        return str(dataset_path)
    kwargs = {} if window_days is None else {"window_days": window_days or None}
    path = dataset.build_dataset(dataset.default_snapshots(), **kwargs)
    return str(path)


# ------------------------------------------------------------------ 2. train
def parse_hyperparameters(raw: str | dict | None) -> dict[str, dict[str, Any]]:
    """{family: {param: value}} from a dict or its JSON text (ValueError saying why)."""
    if raw in (None, ""):
        return {}
    value = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ValueError(f'hyperparameters must be JSON {{"family": {{"param": value}}}}: {raw!r}')
    return value


def train_family(dataset_path: str, family: str, hyperparameters: str | dict | None = None) -> str:
    """Train, evaluate and register one family on the dataset; its model version."""
    from jobs import evaluate, train

    params = parse_hyperparameters(hyperparameters).get(family, {})
    return train.train(dataset_path, family, params, k=K, users_dim=evaluate.load_users_dim())


def train_candidates(
    dataset_path: str,
    families: Sequence[str] = DEFAULT_FAMILIES,
    hyperparameters: str | dict | None = None,
) -> list[str]:
    """The popularity baseline plus every requested family, trained on the same dataset."""
    wanted = [BASELINE] + [f for f in families if f != BASELINE]
    return [train_family(dataset_path, family, hyperparameters) for family in wanted]


# ------------------------------------------------------------------ 3. evaluate + report
def production_score(dataset_path: str, database_url: str | None = None) -> tuple[str, float]:
    """(version, NDCG@20) of the production model re-measured on THIS dataset's held-out split."""
    from jobs import dataset, evaluate, registry
    from jobs.models import families

    row = registry.production(database_url)
    if row is None:
        return "", math.nan
    version = row["model_version"]
    metrics = row.get("metrics") or {}
    if str(row.get("dataset_path")) == str(dataset_path) and METRIC in metrics:
        return version, float(metrics[METRIC])
    model = families.load(row["family"], row["artifact_path"])
    train_df, test_df = dataset.load_split(dataset_path)
    result = evaluate.evaluate(model, train_df, test_df, k=K)
    return version, float(result["overall"].get(METRIC, math.nan))


def evaluate_candidates(
    dataset_path: str, versions: Sequence[str], database_url: str | None = None
) -> str:
    """Write gate_scores.json (every candidate, the baseline and production on the same split)
    and the model comparison report; return the run directory."""
    from jobs import registry, report

    out = run_dir(dataset_path)
    out.mkdir(parents=True, exist_ok=True)
    rows = [registry.get(v, database_url) for v in versions]
    scores = {}
    for row in rows:
        if str(row["dataset_path"]) != str(dataset_path):
            raise ValueError(f"{row['model_version']} was evaluated on another dataset")
        scores[row["model_version"]] = float((row["metrics"] or {}).get(METRIC, math.nan))
    baseline = [r["model_version"] for r in rows if r["family"] == BASELINE]
    if not baseline:
        raise ValueError("no popularity baseline among the run's models")
    production, prod_score = production_score(dataset_path, database_url)
    if production:
        scores.setdefault(production, prod_score)
    candidates = [r for r in rows if r["family"] != BASELINE]
    best = max(candidates, key=lambda r: _finite(scores[r["model_version"]]), default=None)
    summary = {
        "dataset": str(dataset_path),
        "metric": METRIC,
        "scores": scores,
        "popularity": baseline[0],
        "production": production or None,
        "candidate": best["model_version"] if best else None,
        "report": None,
    }
    try:
        summary["report"] = str(report.build_report(Path(dataset_path).name, rows, out))
    except Exception as exc:  # noqa: BLE001 - a broken chart must not block the gate; say so
        log.warning("model comparison report failed: %s", exc)
    (out / SCORES_FILE).write_text(json.dumps(summary, indent=2, default=str))
    log.info("evaluation on %s: %s", dataset_path, json.dumps(scores))
    return str(out)


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -math.inf


# ------------------------------------------------------------------ 4. gate
def gate(
    evaluation_dir: str, tolerance: float | None = None, database_url: str | None = None
) -> gate_mod.GateDecision:
    """Gate the run's best candidate; a rejection is recorded in the registry with its reason."""
    from jobs import registry

    summary = json.loads((Path(evaluation_dir) / SCORES_FILE).read_text())
    tol = gate_mod.tolerance_from_env() if tolerance is None else tolerance
    candidate = summary["candidate"]
    if candidate is None:
        raise ValueError(f"{evaluation_dir}: the run trained no candidate besides popularity")
    decision = gate_mod.decide_from_scores(
        candidate, summary["scores"], summary["popularity"], summary["production"], tol
    )
    (Path(evaluation_dir) / DECISION_FILE).write_text(decision.to_json())
    if decision.passed:
        log.info("gate PASSED %s: %s", candidate, decision.reason)
    else:
        registry.set_status(candidate, "rejected", decision.reason, database_url)
        log.warning("gate REJECTED %s: %s (production unchanged)", candidate, decision.reason)
    return decision


# ------------------------------------------------------------------ 5-7. score, publish, popular
def score_model(model_version: str, database_url: str | None = None) -> str:
    """Top-20 for every known user of `model_version`, audited in Spark; the Parquet path."""
    from jobs import registry, score

    row = registry.get(model_version, database_url)
    out = settings.load().lake_dir / "scores" / model_version
    result = score.score(row["artifact_path"], out)
    score.audit(result.path, expected_users=result.n_users)
    return result.path


def reco_version_for(model_version: str) -> str:
    """The served version of a model's lists (data-keyed: the model version names its data)."""
    return f"reco-{model_version}"


def publish_scores(scored_path: str, model_version: str, database_url: str | None = None) -> str:
    """COPY -> audit -> pointer switch, then mark the model production; the reco version."""
    import pyarrow.parquet as pq

    from jobs import publish, registry, score

    reco_version = reco_version_for(model_version)
    state = {v["reco_version"]: v["status"] for v in publish.status(database_url)["versions"]}
    n_users = pq.ParquetDataset(scored_path).read(columns=["user_id"]).num_rows
    if state.get(reco_version) in publish.ATTACHED:
        # A rerun: already loaded and audited; switch only if its rows are really there.
        served = _served_rows(reco_version, database_url)
        if served != n_users:
            raise RuntimeError(
                f"{reco_version} is {state[reco_version]} but holds {served} of {n_users} rows; "
                "retire it (python -m jobs.publish retire) and rerun"
            )
        publish.publish(reco_version, url=database_url)
    else:
        catalog = sorted(_catalog(model_version, database_url))
        score.load_and_publish(
            scored_path, reco_version, model_version, n_users, catalog, url=database_url
        )
    registry.set_status(model_version, "production", f"published as {reco_version}", database_url)
    log.info("published %s (%d users) for %s", reco_version, n_users, model_version)
    return reco_version


def _served_rows(reco_version: str, database_url: str | None) -> int:
    """Rows the recommendations table holds for `reco_version`."""
    import psycopg2

    conn = psycopg2.connect(database_url or settings.load().database_url)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM recommendations WHERE reco_version = %s", (reco_version,))
        count = cur.fetchone()[0]
    conn.close()
    return int(count)


def _catalog(model_version: str, database_url: str | None) -> set[str]:
    """Movie IDs the model may recommend: its training catalogue."""
    import numpy as np

    from jobs import registry

    row = registry.get(model_version, database_url)
    with np.load(Path(row["artifact_path"]) / "arrays.npz", allow_pickle=False) as npz:
        return set(npz["item_ids"].astype(str).tolist())


def refresh_popularity(dataset_path: str, database_url: str | None = None) -> str:
    """Publish the run's popularity baseline's top 20 as the fallback list; its version."""
    import pandas as pd

    from jobs import dataset, publish, registry
    from jobs.models import families

    manifest = dataset.read_manifest(dataset_path)
    window_end = pd.Timestamp(manifest["window"]["newest_event"]).to_pydatetime()
    baseline = json.loads((run_dir(dataset_path) / SCORES_FILE).read_text())["popularity"]
    row = registry.get(baseline, database_url)
    model = families.load(row["family"], row["artifact_path"])
    items = model.top(K)["movie_id"].astype(str).tolist()
    return publish.publish_popular(items, window_end, url=database_url)


# ------------------------------------------------------------------ command line
def run_all(
    families: Sequence[str] = DEFAULT_FAMILIES,
    hyperparameters: str | dict | None = None,
    window_days: float | None = None,
    dataset_path: str | None = None,
    tolerance: float | None = None,
) -> dict[str, Any]:
    """Every step in order, as the DAG runs them; a summary of ids and paths."""
    data = build_dataset(window_days, dataset_path)
    versions = train_candidates(data, families, hyperparameters)
    evaluation = evaluate_candidates(data, versions)
    decision = gate(evaluation, tolerance)
    out: dict[str, Any] = {"dataset": data, "models": versions, "gate": decision.reason}
    if decision.passed:
        scored = score_model(decision.candidate)
        out["reco_version"] = publish_scores(scored, decision.candidate)
    out["popular_version"] = refresh_popularity(data)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m jobs.pipeline all [--families a,b] [--hyperparameters JSON] [--dataset D]`."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("step", choices=["all"])
    parser.add_argument("--families", default=",".join(DEFAULT_FAMILIES))
    parser.add_argument("--hyperparameters", default="")
    parser.add_argument("--window-days", type=float, default=None)
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--tolerance", type=float, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    summary = run_all(
        families, args.hyperparameters, args.window_days, args.dataset, args.tolerance
    )
    print(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
