"""experiment_report: the analysis of one A/B experiment as report.html + report.json.

Manual (no schedule): trigger with the experiment's name. Wiring only: the task calls
jobs.pipeline.experiment_report and returns the report directory. It reads the accepted
snapshots' stream and the `predictions` lake table with Spark, builds one outcome row per user
and variant, and writes per-variant users, requests and online accuracy with intervals, the
two-proportion z-test on user hit rate (cluster bootstrap where it does not hold), achieved
power, the always-valid p-value for reading early, and one sentence of verdict under
reports/experiments/<name>/ (docs/experiments.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

# A Spark or database hiccup heals on retry; the report is rewritten in place, so reruns are safe.
DEFAULT_ARGS = {
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=5),
}


@dag(
    dag_id="experiment_report",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["recommendations", "experiments", "online-evaluation"],
    params={
        "name": Param("", type="string", minLength=1, description="the experiment's name"),
        "window_minutes": Param(
            60,
            type="integer",
            minimum=1,
            description="a list is a hit if a listed movie is watched within these minutes",
        ),
    },
    doc_md=__doc__,
)
def experiment_report():
    @task
    def report(params=None) -> str:
        from jobs import pipeline

        return pipeline.experiment_report(params["name"], params["window_minutes"])

    report()


experiment_report()
