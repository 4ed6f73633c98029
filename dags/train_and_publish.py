"""train_and_publish: spam detection -> dataset (without the flagged accounts) -> train
candidates -> evaluate + report -> gate -> refit on all data -> score -> publish -> refresh
popularity. Every 3 days, when ingestion flags drift or online evaluation an accuracy drop
(asset events, jobs/train/triggers.py), and manually with params.
Wiring only: each task calls one jobs.pipeline function and returns an id or a path; all
logic (and every heavy import) lives in jobs/.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, AssetOrTimeSchedule, DeltaTriggerTimetable, Param, dag, task

from jobs.pipeline import ACCURACY_DROP_ASSET, DEFAULT_FAMILIES, DRIFT_ASSET

# Retries after 30-60 s, then 60-120 s, 120-240 s (exponential back-off, capped at 10 min):
# a database restart mid-run heals by itself; every step is safe to rerun.
DEFAULT_ARGS = {
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
}


@task
def detect_spam(params=None) -> str:
    """Flagged rating-spam accounts (a detection directory) that build_dataset leaves out."""
    from jobs import pipeline

    return pipeline.detect_spam(params["dataset"] or None)


@dag(
    dag_id="train_and_publish",
    schedule=AssetOrTimeSchedule(
        timetable=DeltaTriggerTimetable(timedelta(days=3)),
        assets=Asset(DRIFT_ASSET) | Asset(ACCURACY_DROP_ASSET),
    ),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["recommendations", "training", "publish"],
    params={
        "families": Param(
            list(DEFAULT_FAMILIES),
            type="array",
            items={"type": "string"},
            description="model families to train (popularity is always trained as baseline)",
        ),
        "hyperparameters": Param(
            "{}",
            type="string",
            description='JSON per family, e.g. {"item_knn": {"neighbours": 100}}',
        ),
        "window_days": Param(
            None, type=["null", "number"], description="training window in days; null = all history"
        ),
        "dataset": Param(
            "", type="string", description="existing dataset directory; empty = build a new one"
        ),
        "gate_tolerance": Param(
            None,
            type=["null", "number"],
            minimum=0,
            maximum=0.99,
            description="relative NDCG@20 drop allowed vs production; null = GATE_NDCG_TOLERANCE",
        ),
        "gate_min_users": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="fewest test users the gate decides on; null = GATE_MIN_USERS",
        ),
    },
    doc_md=__doc__,
)
def train_and_publish():
    @task
    def build_dataset(detection: str, params=None) -> str:
        from jobs import pipeline

        return pipeline.build_dataset(params["window_days"], params["dataset"] or None, detection)

    @task
    def train(dataset_path: str, params=None) -> list[str]:
        from jobs import pipeline

        return pipeline.train_candidates(
            dataset_path, params["families"], params["hyperparameters"]
        )

    @task
    def evaluate(dataset_path: str, versions: list[str]) -> str:
        from jobs import pipeline

        return pipeline.evaluate_candidates(dataset_path, versions)

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def gate(evaluation_dir: str, params=None) -> str | bool:
        """The version to refit and publish; False (production stays) otherwise."""
        from jobs import pipeline

        decision = pipeline.gate(
            evaluation_dir, params["gate_tolerance"], min_users=params["gate_min_users"]
        )
        print(f"gate {'PASSED' if decision.passed else 'REJECTED'}: {decision.to_json()}")
        return decision.publish or False

    @task
    def refit(dataset_path: str, evaluated_version: str) -> str:
        from jobs import pipeline

        return pipeline.refit(dataset_path, evaluated_version)

    @task
    def score(model_version: str) -> str:
        from jobs import pipeline

        return pipeline.score_model(model_version)

    @task
    def publish(scored_path: str, model_version: str) -> str:
        from jobs import pipeline

        return pipeline.publish_scores(scored_path, model_version)

    @task(trigger_rule="none_failed")
    def refresh_popularity(dataset_path: str) -> str:
        from jobs import pipeline

        return pipeline.refresh_popularity(dataset_path)

    dataset_path = build_dataset(detect_spam())
    versions = train(dataset_path)
    evaluation = evaluate(dataset_path, versions)
    chosen = refit(dataset_path, gate(evaluation))
    published = publish(score(chosen), chosen)
    popular = refresh_popularity(dataset_path)
    published >> popular


train_and_publish()
