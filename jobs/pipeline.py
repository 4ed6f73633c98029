"""The train-and-publish steps the DAG wires together, each taking and returning ids or paths.

detect_spam -> build_dataset -> train_candidates -> evaluate_candidates (+ report) -> gate ->
refit -> score -> publish_scores -> refresh_popularity. Select, then refit: candidates are
chosen and gated on held-out data; what is scored and published is the gated configuration
refitted on every interaction of the window (jobs.train.train.refit), linked to its evaluated twin.
`stage_model` scores and stages (attaches, never serves) the lists of a model that an
experiment arm or a shadow names.
Every step runs without Airflow (`python -m jobs.pipeline all --families item_knn,hybrid`),
is keyed on the data (dataset id, model version), never on the wall clock, and is safe to
rerun.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from contracts import settings
from contracts.fallback import write_fallback
from contracts.names import METRIC, K
from jobs import monitoring
from jobs.train import gate as gate_mod

log = logging.getLogger(__name__)

BASELINE = "popularity"
DEFAULT_FAMILIES = ("item_knn", "svd_surprise", "hybrid")
SCORES_FILE = "gate_scores.json"
DECISION_FILE = "gate_decision.json"
# Airflow assets (names) whose events schedule train_and_publish besides its timetable.
DRIFT_ASSET = "movielog_drift"
ACCURACY_DROP_ASSET = "online_accuracy_drop"


def run_dir(dataset_path: str | Path) -> Path:
    """This run's working directory: reports_dir/<dataset id> (data-keyed, rerun-safe)."""
    return settings.load().reports_dir / Path(dataset_path).name


# ------------------------------------------------------------------ 0. ingest
class SnapshotRejected(RuntimeError):
    """Validation quarantined the snapshot: a retry cannot change the verdict."""


def ingest_snapshot(topic: str | None = None, max_lines: int | None = None) -> str | None:
    """The snapshot this run validates: one an earlier try wrote but never got judged (it
    failed after the rename, say at registration during a database outage), else a new one of
    the topic's unread offsets; its id (None when nothing new arrived).

    Without the first case a retried try would register the earlier snapshot, take the next
    one, and leave the earlier `ingested` forever: never validated, never trained on.
    """
    from jobs.ingest import lake, snapshot

    topic = topic or settings.load().kafka_topic
    newest = (lake.completed_snapshots(topic=topic) or [None])[-1]
    if newest is not None and lake.snapshot_row(newest["snapshot_id"]) is None:
        # A try renamed it into place and failed before registering it: register it now, so
        # this try judges it instead of taking the next range first.
        lake.register(newest, lake.snapshot_path(newest["snapshot_id"]))
    pending = lake.unjudged_snapshots(topic)
    if not pending:
        snapshot.ingest(topic=topic, max_lines=max_lines)
        pending = lake.unjudged_snapshots(topic)
    if len(pending) > 1:
        log.info(
            "%s: %d snapshots wait for validation; this run takes %s",
            topic,
            len(pending),
            pending[0],
        )
    return pending[0] if pending else None


def snapshot_ledger(topic: str | None = None) -> list[dict[str, Any]]:
    """Every complete snapshot of the topic, oldest first: its offsets per partition, lines
    read, rows + rejects written, and its status in Postgres (None: not registered). What the
    fault drills (ops/drill.py) account events with."""
    from jobs.ingest import lake

    ledger = []
    for manifest in lake.completed_snapshots(topic=topic or settings.load().kafka_topic):
        row = lake.snapshot_row(manifest["snapshot_id"])
        offsets = {int(part): (start, end) for part, (start, end) in manifest["offsets"].items()}
        ledger.append(
            {
                "snapshot_id": manifest["snapshot_id"],
                "offsets": offsets,
                "lines_read": manifest["lines_read"],
                "written": sum(manifest["row_counts"].values()),
                "status": row["status"] if row else None,
            }
        )
    return ledger


def validate_snapshot(snapshot_id: str | None) -> str | None:
    """Run the expectation suites on a snapshot (its status is set by mark_snapshot)."""
    from jobs.ingest import validate

    if snapshot_id is None:
        return None
    outcome = validate.validate_snapshot(snapshot_id)
    monitoring.report_validation(outcome)
    return str(outcome.snapshot_id)


def mark_snapshot(snapshot_id: str | None) -> str | None:
    """Accept the validated snapshot, or quarantine it and raise SnapshotRejected."""
    from jobs.ingest import validate

    if snapshot_id is None:
        log.info("no new offsets: nothing to mark")
        monitoring.report_snapshots()  # refreshed hourly all the same
        return None
    try:
        return validate.mark(snapshot_id)
    except validate.SnapshotQuarantined as exc:
        raise SnapshotRejected(str(exc)) from exc
    finally:
        monitoring.report_snapshots()


def build_data_docs() -> str:
    """Rebuild the Great Expectations Data Docs site; its index.html."""
    from jobs.ingest import validate

    return validate.build_docs()


def sync_catalog(api_url: str | None = None) -> str:
    """Fetch metadata of newly seen users and movies (optional: an absent API is recorded,
    not fatal); the dims directory."""
    from jobs.ingest import catalog

    return catalog.sync(api_url=api_url).dims_dir


# ------------------------------------------------------------------ 1. dataset
def detect_spam(dataset_path: str | None = None) -> str:
    """Flag rating-spam accounts over the accepted snapshots (jobs/train/detect.py); the
    detection directory, whose accounts build_dataset excludes ("" when `dataset_path` is
    given: that dataset is used as it was built)."""
    from jobs.train import dataset, detect

    if dataset_path:
        return ""
    return str(detect.run(dataset.default_snapshots()))


def build_dataset(
    window_days: float | None = None,
    dataset_path: str | None = None,
    detection: str | None = None,
) -> str:
    """Dataset directory from the accepted snapshots without the accounts `detection` flagged
    (or `dataset_path` as given); its path."""
    from jobs.train import dataset

    if dataset_path:
        dataset.read_manifest(dataset_path)  # fails clearly when it is not a dataset
        return str(dataset_path)
    kwargs: dict[str, Any] = {} if window_days is None else {"window_days": window_days or None}
    if detection:
        kwargs["exclusion"] = detection
    return str(dataset.build_from_lake(**kwargs))  # the CLI's path too


# ------------------------------------------------------------------ 2. train
def train_family(dataset_path: str, family: str, hyperparameters: str | dict | None = None) -> str:
    """Train, evaluate and register one family on the dataset; its model version."""
    from jobs.train import evaluate, train

    params = train.parse_hyperparameters(hyperparameters).get(family, {})
    return train.train(dataset_path, family, params, users_dim=evaluate.load_users_dim())


def train_candidates(
    dataset_path: str,
    families: Sequence[str] = DEFAULT_FAMILIES,
    hyperparameters: str | dict | None = None,
) -> list[str]:
    """The popularity baseline plus every requested family, trained on the same dataset."""
    wanted = [BASELINE] + [f for f in families if f != BASELINE]
    return [train_family(dataset_path, family, hyperparameters) for family in wanted]


# ------------------------------------------------------------------ 3. evaluate + report
def production_twin(
    dataset_path: str,
    rows: Sequence[dict[str, Any]],
    prod: dict[str, Any] | None,
    database_url: str | None = None,
) -> str | None:
    """The production model's configuration (family + hyperparameters) evaluated on THIS
    dataset's test units: a run's candidate with the same configuration, else trained now.

    The production artifact itself cannot be measured here: it was refitted on all data of an
    older window, which may include this dataset's test period.
    """
    from jobs.train import evaluate, train

    if prod is None:
        return None
    for row in rows:
        if row["family"] == prod["family"] and row["hyperparameters"] == prod["hyperparameters"]:
            return row["model_version"]
    log.info("re-measuring production's configuration %s on %s", prod["family"], dataset_path)
    return train.train(
        dataset_path,
        prod["family"],
        prod["hyperparameters"],
        database_url=database_url,
        users_dim=evaluate.load_users_dim(),
    )


def evaluate_candidates(
    dataset_path: str, versions: Sequence[str], database_url: str | None = None
) -> str:
    """Write gate_scores.json (candidates, the baseline and production's configuration on the
    same test units) and the model comparison report; return the run directory."""
    from jobs.train import dataset, registry, report

    out = run_dir(dataset_path)
    out.mkdir(parents=True, exist_ok=True)
    rows = [registry.get(v, database_url) for v in versions]
    for row in rows:
        if str(row["dataset_path"]) != str(dataset_path):
            raise ValueError(f"{row['model_version']} was evaluated on another dataset")
    baseline = [r["model_version"] for r in rows if r["family"] == BASELINE]
    if not baseline:
        raise ValueError("no popularity baseline among the run's models")
    production = registry.production(database_url)
    twin = production_twin(dataset_path, rows, production, database_url)
    if twin and twin not in versions:
        rows.append(registry.get(twin, database_url))
    scores = {r["model_version"]: float((r["metrics"] or {}).get(METRIC, math.nan)) for r in rows}
    candidates = [r for r in rows if r["family"] != BASELINE and r["model_version"] in versions]
    best = max(candidates, key=lambda r: _finite(scores[r["model_version"]]), default=None)
    summary = {
        "dataset": str(dataset_path),
        "metric": METRIC,
        "evaluation": dataset.read_manifest(dataset_path).get("evaluation"),
        "scores": scores,
        "users": {r["model_version"]: (r["metrics"] or {}).get("users") for r in rows},
        "popularity": baseline[0],
        "production": production["model_version"] if production else None,
        "production_config": twin,
        "candidate": best["model_version"] if best else None,
        "report": None,
    }
    try:
        summary["report"] = str(report.build_report(Path(dataset_path).name, rows, out, summary))
    except Exception as exc:  # noqa: BLE001 - a broken chart must not block the gate; say so
        log.warning("model comparison report failed: %s", exc)
    (out / SCORES_FILE).write_text(json.dumps(summary, indent=2, default=str))
    log.info("evaluation on %s: %s", dataset_path, json.dumps(scores))
    return str(out)


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -math.inf


# ------------------------------------------------------------------ 4. gate
def per_user_scores(dataset_path: str, version: str | None):
    """A model's per-user scores on the dataset's test units (None when there are none)."""
    import pandas as pd

    from jobs.train import evaluate

    if not version:
        return None
    path = evaluate.per_user_path(dataset_path, version)
    return pd.read_parquet(path) if path.exists() else None


def gate(
    evaluation_dir: str,
    tolerance: float | None = None,
    database_url: str | None = None,
    min_users: int | None = None,
) -> gate_mod.GateDecision:
    """Gate the run's best candidate (jobs.train.gate); a rejection is recorded in the registry."""
    from jobs.train import registry, report

    summary = json.loads((Path(evaluation_dir) / SCORES_FILE).read_text())
    candidate, data = summary["candidate"], summary["dataset"]
    if candidate is None:
        raise ValueError(f"{evaluation_dir}: the run trained no candidate besides popularity")
    decision = gate_mod.decide(
        candidate,
        per_user_scores(data, candidate),
        summary["popularity"],
        per_user_scores(data, summary["popularity"]),
        summary["production"],
        per_user_scores(data, summary["production_config"]),
        gate_mod.tolerance_from_env() if tolerance is None else tolerance,
        gate_mod.min_users_from_env() if min_users is None else min_users,
        fairness_mode=settings.fairness_gate_mode(),
    )
    (Path(evaluation_dir) / DECISION_FILE).write_text(decision.to_json())
    monitoring.report_gate(decision)
    if summary.get("report"):
        report.add_gate(summary["report"], asdict(decision))
    if decision.passed:
        log.info("gate PASSED %s: %s", candidate, decision.reason)
    else:
        registry.set_status(candidate, "rejected", decision.reason, database_url)
        log.warning("gate REJECTED %s: %s", candidate, decision.reason)
    return decision


# ------------------------------------------------------------------ 5. refit
def refit(dataset_path: str, evaluated_version: str, database_url: str | None = None) -> str:
    """The gated configuration refitted on every interaction of the window; its version."""
    from jobs.train import train

    return train.refit(dataset_path, evaluated_version, database_url)


# ------------------------------------------------------------------ 6-8. score, publish, popular
def score_model(model_version: str, database_url: str | None = None) -> str:
    """Top-20 for every known user of `model_version`, audited in Spark; the Parquet path."""
    from jobs.publish import score
    from jobs.train import registry

    row = registry.get(model_version, database_url)
    out = score.scored_dir(model_version)
    result = score.score(row["artifact_path"], out)
    score.audit(result.path, expected_users=result.n_users)
    return result.path


def reco_version_for(model_version: str) -> str:
    """The served version of a model's lists (data-keyed: the model version names its data)."""
    return f"reco-{model_version}"


def stage_scores(scored_path: str, model_version: str, database_url: str | None = None) -> str:
    """COPY -> audit of a scored directory, attached but not served (what publish, an experiment
    arm or a shadow reads); the reco version. A rerun finds it attached and checks its rows."""
    import pyarrow.parquet as pq

    from jobs.publish import publish

    reco_version = reco_version_for(model_version)
    state = {v["reco_version"]: v["status"] for v in publish.status(database_url)["versions"]}
    n_users = pq.ParquetDataset(scored_path).read(columns=["user_id"]).num_rows
    if state.get(reco_version) in publish.ATTACHED:
        # A rerun: already loaded and audited; go on only if its rows are really there.
        served = publish.served_rows(reco_version, database_url)
        if served != n_users:
            raise RuntimeError(
                f"{reco_version} is {state[reco_version]} but holds {served} of {n_users} rows; "
                "retire it (python -m jobs.publish.publish retire) and rerun"
            )
    else:
        catalog = sorted(_catalog(model_version, database_url))
        publish.load_and_publish(
            scored_path,
            reco_version,
            model_version,
            n_users,
            catalog,
            publish_now=False,
            url=database_url,
        )
    log.info("staged %s (%d users) for %s", reco_version, n_users, model_version)
    return reco_version


def publish_scores(scored_path: str, model_version: str, database_url: str | None = None) -> str:
    """COPY -> audit -> pointer switch, then mark the model production; the reco version."""
    from jobs.publish import publish
    from jobs.train import registry

    reco_version = stage_scores(scored_path, model_version, database_url)
    publish.publish(reco_version, url=database_url)
    registry.set_status(model_version, "production", f"published as {reco_version}", database_url)
    monitoring.report_model(database_url)
    log.info("published %s for %s", reco_version, model_version)
    return reco_version


def stage_model(model_version: str, database_url: str | None = None) -> str:
    """Lists for a registered model that an experiment arm or a shadow names: scored and staged
    (attached, never served) unless already attached; the reco version. Serving reads them at
    its next pointer refresh, with no restart."""
    from jobs.publish import publish

    reco_version = reco_version_for(model_version)
    if publish.version_status(reco_version, database_url) in publish.ATTACHED:
        return reco_version
    return stage_scores(score_model(model_version, database_url), model_version, database_url)


def _catalog(model_version: str, database_url: str | None) -> set[str]:
    """Movie IDs the model may recommend: its training catalogue."""
    import numpy as np

    from jobs.train import registry

    row = registry.get(model_version, database_url)
    with np.load(Path(row["artifact_path"]) / "arrays.npz", allow_pickle=False) as npz:
        return set(npz["item_ids"].astype(str).tolist())


def refresh_popularity(dataset_path: str, database_url: str | None = None) -> str:
    """Publish the fallback list: the baseline's configuration fitted on every interaction of
    the window (what unknown users get), in the database and in the server's fallback file;
    its version."""
    import pandas as pd

    from jobs.models import families
    from jobs.publish import publish
    from jobs.train import dataset, registry, train

    manifest = dataset.read_manifest(dataset_path)
    window_end = pd.Timestamp(manifest["window"]["newest_event"]).to_pydatetime()
    baseline = json.loads((run_dir(dataset_path) / SCORES_FILE).read_text())["popularity"]
    row = registry.get(baseline, database_url)
    model = families.create(row["family"], **row["hyperparameters"])
    model.fit(train.all_interactions(dataset_path))  # a Spark DataFrame at scale
    items = model.top(K)["movie_id"].astype(str).tolist()
    version = publish.publish_popular(
        items, window_end, url=database_url, baseline_version=baseline, dataset_path=dataset_path
    )
    # Shipped beside the server too: its answer if it ever starts while the database is down.
    write_fallback(settings.load().popular_fallback_file, version, publish.encode_items(items))
    return version


# ------------------------------------------------------------------ online evaluation
def ingest_predictions(log_dir: str | None = None) -> str | None:
    """Take the serving prediction log's sealed files into the lake table `predictions`, each
    exactly once (jobs/online/predictions.py); the new batch id (None: no new file)."""
    from jobs.online import predictions

    return predictions.ingest(log_dir or None).batch_id


def evaluate_online(
    hours: int = 6,
    window_minutes: int = 60,
    database_url: str | None = None,
    predictions_hours: float = 72.0,
) -> str | None:
    """Availability, latency, personalised share and online accuracy of the last `hours`
    event-time hours of the accepted snapshots, per model version and variant, replaced in
    Postgres `online_metrics` (jobs/online/evaluate.py); the hours evaluated as
    `start/end` (None: no accepted snapshot yet). Answers are looked up among the prediction
    batches of the last `predictions_hours` of the log's own clock."""
    from jobs.online import evaluate

    span = evaluate.run(hours, window_minutes, database_url, predictions_hours)
    monitoring.report_online(database_url)
    # Hourly, so the model's age survives a Pushgateway restart and follows a rollback.
    monitoring.report_model(database_url)
    return span


def build_status_page(database_url: str | None = None) -> str:
    """Regenerate the status page (HTML + plots, jobs/online/status_page.py) in
    settings.site_dir, which the reports site serves at /; the page's path."""
    from jobs.online import status_page

    return str(status_page.build(database_url=database_url))


# ------------------------------------------------------------------ retraining triggers
def retrain_on_drift(snapshot_id: str | None) -> str | None:
    """Why the accepted snapshot calls for retraining (jobs/train/triggers.py), or None."""
    from jobs.train import triggers

    reason = triggers.drift_reason(snapshot_id)
    if reason:
        log.warning("retraining triggered: %s", reason)
    return reason


def retrain_on_accuracy_drop() -> str | None:
    """Why the recent online accuracy calls for retraining (jobs/train/triggers.py), or None."""
    from jobs.train import triggers

    reason = triggers.accuracy_drop_reason()
    if reason:
        log.warning("retraining triggered: %s", reason)
    return reason


def experiment_report(name: str, window_minutes: int = 60, database_url: str | None = None) -> str:
    """Per-variant users, requests and online accuracy of experiment `name`, its tests and
    verdict, written as report.html + report.json (jobs/online/experiment_report.py); the
    report directory."""
    from jobs.online import experiment_report as report

    return report.run(name, window_minutes, database_url)


# ------------------------------------------------------------------ retention
def apply_retention(
    at: str | None = None, dry_run: bool = False, database_url: str | None = None
) -> str:
    """Remove reco tables, artifacts, datasets and prediction batches that the retention rule
    no longer keeps (jobs/publish/retention.py), counting RETENTION_DAYS back from `at` (ISO
    time, the run's data interval end; default now); one line saying what was removed."""
    from datetime import datetime

    from jobs.publish import retention

    when = datetime.fromisoformat(at) if at else None
    summary = retention.run(when, dry_run=dry_run, url=database_url)
    if summary["removed"] is None:
        removals = [line for line in summary["plan"] if line.startswith("remove")]
        return f"dry run: {len(removals)} items would be removed"
    return "removed " + ", ".join(f"{len(v)} {k}" for k, v in summary["removed"].items())


# ------------------------------------------------------------------ responsible ML (issue 16)
def fairness_offline(database_url: str | None = None) -> str:
    """Fairness measures of every published model on its evaluation and published lists
    (jobs/online/fairness.py): stored, pushed, reported; the JSON path."""
    from jobs.online import fairness

    return fairness.run_offline(database_url)


def fairness_online(
    days: float = 1.0, window_minutes: int = 60, database_url: str | None = None
) -> str | None:
    """Fairness measures of the last `days` of served traffic, per model version and overall
    (jobs/online/fairness.py); the JSON path (None: no production model or no telemetry)."""
    from jobs.online import fairness

    return fairness.run_online(days, window_minutes, database_url)


def model_cards(database_url: str | None = None) -> str:
    """A model card (HTML + JSON, path kept in the registry) for every published model
    (jobs/train/model_card.py); the cards' directory."""
    from jobs.train import model_card

    model_card.build_all(database_url)
    return str(model_card.cards_dir())


def responsible_index() -> str:
    """The Responsible ML index of the reports site (jobs/online/responsible_site.py), listing
    every analysis section and model card found; its path."""
    from jobs.online import responsible_site

    return responsible_site.build()


def feedback_loops(
    days: int = 28, window_minutes: int = 60, database_url: str | None = None
) -> str | None:
    """Feedback-loop measures of the last `days` event-time days of the stream and the
    prediction log (jobs/online/feedback.py: concentration of exposure and watching, the share
    of watches that followed a listing, coverage per model version), written as the
    feedback_loops section of the Responsible ML pages; the JSON path (None: no data yet)."""
    from jobs.online import feedback

    return feedback.run(days, window_minutes, database_url)


def security_report() -> str | None:
    """The newest rating-spam detection (train_and_publish's detect_spam) as the security
    section of the Responsible ML pages (jobs/online/security_report.py); the JSON path
    (None: no detection yet)."""
    from jobs.online import security_report

    return security_report.run()


def shadow_report(version: str, window_minutes: int = 60, database_url: str | None = None) -> str:
    """Shadow `version` against production over the prediction log and the stream: overlap,
    would-have-hit rate, coverage and popularity bias, written as report.html + report.json
    (jobs/online/shadow_report.py); the report directory."""
    from jobs.online import shadow_report as report

    return report.run(version, window_minutes, database_url)


# ------------------------------------------------------------------ command line
def stage_rows(task_id: str, value: Any) -> tuple[int | None, int | None]:
    """(rows in, rows out) of a finished task of the ingest or training DAG, from its return
    value (the scale run's table, ops/scenario.py)."""
    from jobs import scale

    return scale.stage_rows(task_id, value)


def dataset_counts(dataset_path: str) -> dict[str, int]:
    """The dataset manifest's counts (users, movies, interactions...), for the scale run."""
    from jobs.train import dataset

    return dataset.read_manifest(dataset_path)["counts"]


def run_all(
    families: Sequence[str] = DEFAULT_FAMILIES,
    hyperparameters: str | dict | None = None,
    window_days: float | None = None,
    dataset_path: str | None = None,
    tolerance: float | None = None,
) -> dict[str, Any]:
    """Every step in order, as the DAG runs them; a summary of ids, paths and step seconds."""
    seconds: dict[str, float] = {}

    def timed(step: str, function, *args):
        started = time.perf_counter()
        result = function(*args)
        seconds[step] = round(time.perf_counter() - started, 2)
        return result

    detection = timed("detect", detect_spam, dataset_path)
    data = timed("dataset", build_dataset, window_days, dataset_path, detection)
    versions = timed("train", train_candidates, data, families, hyperparameters)
    evaluation = timed("evaluate", evaluate_candidates, data, versions)
    decision = timed("gate", gate, evaluation, tolerance)
    out: dict[str, Any] = {"dataset": data, "models": versions, "gate": decision.reason}
    if decision.publish:
        out["refit"] = timed("refit", refit, data, decision.publish)
        scored = timed("score", score_model, out["refit"])
        out["reco_version"] = timed("publish", publish_scores, scored, out["refit"])
    out["popular_version"] = timed("popularity", refresh_popularity, data)
    out["seconds"] = seconds
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
