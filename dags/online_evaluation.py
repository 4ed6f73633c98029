"""online_evaluation: prediction log -> lake table `predictions` -> online metrics in Postgres.

Hourly. Wiring only: each task calls one jobs.pipeline function and returns an id or a span.
`ingest_predictions` takes the serving tier's sealed prediction-log files into the lake, each
exactly once, and deletes them afterwards. `evaluate` reads the accepted snapshots' stream
(`recommendation request` and watch lines) and the `predictions` table with Spark and replaces,
in Postgres `online_metrics`, the last `hours` event-time hours (counted back from the newest
event, never the wall clock) per model version and variant: availability as a client measures
it, latency percentiles, the share of personalised answers, and online accuracy with its
interval. docs/monitoring.md defines each metric. `flag_accuracy_drop` succeeds, emitting the
asset that schedules train_and_publish, only when the recent online accuracy is significantly
below its 7-day baseline (jobs/train/triggers.py); otherwise it is skipped.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, dag, task

from jobs.pipeline import ACCURACY_DROP_ASSET

# Retries after 30-60 s, 60-120 s, 120-240 s (exponential back-off, capped at 5 min): a database
# or Spark hiccup heals by itself; both steps are safe to rerun (exactly-once ingest, upsert).
DEFAULT_ARGS = {
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=5),
}


@dag(
    dag_id="online_evaluation",
    schedule=timedelta(hours=1),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["recommendations", "monitoring", "online-evaluation"],
    params={
        "hours": Param(6, type="integer", minimum=1, description="event-time hours to (re)compute"),
        "window_minutes": Param(
            60,
            type="integer",
            minimum=1,
            description="online accuracy: minutes after a list in which a watch counts",
        ),
        "log_dir": Param(
            "", type="string", description="prediction-log directory; empty = the serving one"
        ),
    },
    doc_md=__doc__,
)
def online_evaluation():
    @task
    def ingest_predictions(params=None) -> str | None:
        from jobs import pipeline

        return pipeline.ingest_predictions(params["log_dir"] or None)

    @task
    def evaluate(batch_id: str | None, params=None) -> str | None:
        from jobs import pipeline

        return pipeline.evaluate_online(params["hours"], params["window_minutes"])

    @task(outlets=[Asset(ACCURACY_DROP_ASSET)])
    def flag_accuracy_drop(hours: str | None) -> str:
        from airflow.sdk.exceptions import AirflowSkipException

        from jobs import pipeline

        reason = pipeline.retrain_on_accuracy_drop()
        if reason is None:  # skipped: no asset event, no retraining
            raise AirflowSkipException("online accuracy is not significantly down")
        return reason

    # all_done: a failed evaluation is news too; the page still shows freshness and alerts.
    @task(trigger_rule="all_done")
    def status_page(hours: str | None) -> str:
        from jobs import pipeline

        return pipeline.build_status_page()

    hours = evaluate(ingest_predictions())
    flag_accuracy_drop(hours)
    status_page(hours)


online_evaluation()
