"""shadow_report: a shadow version compared with production as report.html + report.json.

Manual (no schedule): trigger with the shadow's reco version. Wiring only: the task calls
jobs.pipeline.shadow_report and returns the report directory. It reads the `predictions` lake
table (answers logged while the shadow ran carry what it would have answered) and the accepted
snapshots' stream with Spark, and writes overlap with production (mean Jaccard, shared items),
the shadow's would-have-hit rate beside production's, coverage and popularity bias for both
under reports/shadow/<version>/ (docs/experiments.md, "Shadow deployment").
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
    dag_id="shadow_report",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["recommendations", "experiments", "online-evaluation"],
    params={
        "version": Param("", type="string", minLength=1, description="the shadow's reco version"),
        "window_minutes": Param(
            60,
            type="integer",
            minimum=1,
            description="a list is a hit if a listed movie is watched within these minutes",
        ),
    },
    doc_md=__doc__,
)
def shadow_report():
    @task
    def report(params=None) -> str:
        from jobs import pipeline

        return pipeline.shadow_report(params["version"], params["window_minutes"])

    report()


shadow_report()
