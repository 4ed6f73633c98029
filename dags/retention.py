"""retention: remove what no model, experiment, shadow, rollback or recent answer still needs.

Daily. Wiring only: the task calls jobs.pipeline.apply_retention with the run's data interval
end, and returns one line saying what it removed. The rule (docs/operations.md "Retention"):
the tables, artifacts and datasets behind every model still in the registry (production, or
whose status changed within RETENTION_DAYS), behind the live and previous (rollback) versions,
an active or recent experiment or shadow, or a prediction inside the retention period are
kept; the rest goes, each item under the locks publish takes. Prediction batches older than
the retention period go too, and so do quarantined snapshots judged before it that nothing
was built from; accepted snapshots are never removed. Safe to rerun: a second run finds
nothing left to remove.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

# A database hiccup heals on retry; each removal is one item and a rerun finishes the rest.
DEFAULT_ARGS = {
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
}


@dag(
    dag_id="retention",
    schedule=timedelta(days=1),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["recommendations", "maintenance"],
    params={
        "dry_run": Param(False, type="boolean", description="log the plan, remove nothing"),
    },
    doc_md=__doc__,
)
def retention():
    @task
    def remove_expired(data_interval_end=None, params=None) -> str:
        from jobs import pipeline

        at = data_interval_end.isoformat() if data_interval_end else None
        return pipeline.apply_retention(at, dry_run=params["dry_run"])

    remove_expired()


retention()
