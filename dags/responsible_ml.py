"""responsible_ml: fairness measures, model cards and the Responsible ML pages of the reports site.

Daily, and on demand (trigger it with params). Wiring only: each task calls one jobs.pipeline
function and returns a path. `fairness_offline` measures every published model on its
evaluation's test users (NDCG@20 by age band, gender and history band) and on its published
lists (long-tail and new-movie exposure); `fairness_online` measures the last `days` of served
traffic from the stream and the prediction log (online accuracy by group, exposure of what
clients got). Both store their results in Postgres `fairness_measures`, push them to the
Pushgateway (alerts-responsible.yml alerts on a violated requirement) and write
reports/responsible/fairness/. `model_cards` writes a card per published model and records its
path in the registry. `feedback_loops` measures concentration of exposure and watching, the
share of watches that followed a listing and coverage per model version over the last 28 days
(jobs/online/feedback.py). `index` regenerates reports/responsible/index.html from every section it
finds, whatever happened upstream. docs/responsible-ml.md states the requirements.

To add an analysis (the security report, the feedback-loop report): a task that calls its
jobs.pipeline function, writes `<reports>/responsible/<section>/report.html` + `report.json`
(jobs.online.responsible_site.section_dir), and joins `analyses` below; the index lists it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

# A database or Spark hiccup heals by itself; every step upserts or rewrites its files.
DEFAULT_ARGS = {
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=5),
}


@dag(
    dag_id="responsible_ml",
    schedule=timedelta(days=1),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["recommendations", "responsible-ml", "fairness", "monitoring"],
    params={
        "days": Param(
            1.0, type="number", exclusiveMinimum=0, description="event-time days measured online"
        ),
        "window_minutes": Param(
            60,
            type="integer",
            minimum=1,
            description="online accuracy: minutes after a list in which a watch counts",
        ),
    },
    doc_md=__doc__,
)
def responsible_ml():
    @task
    def fairness_offline() -> str:
        from jobs import pipeline

        return pipeline.fairness_offline()

    @task
    def fairness_online(params=None) -> str | None:
        from jobs import pipeline

        return pipeline.fairness_online(params["days"], params["window_minutes"])

    # all_done: a card shows whatever fairness results exist, even if one measure failed.
    @task(trigger_rule="all_done")
    def model_cards() -> str:
        from jobs import pipeline

        return pipeline.model_cards()

    @task
    def feedback_loops(params=None) -> str | None:
        from jobs import pipeline

        return pipeline.feedback_loops(window_minutes=params["window_minutes"])

    @task
    def security() -> str | None:
        from jobs import pipeline

        return pipeline.security_report()

    @task(trigger_rule="all_done")
    def index() -> str:
        from jobs import pipeline

        return pipeline.responsible_index()

    offline, online = fairness_offline(), fairness_online()
    cards = model_cards()
    [offline, online] >> cards
    # Every analysis of issue 16 feeds the index; the security and feedback-loop tasks join here.
    analyses = [offline, online, cards, feedback_loops(), security()]
    analyses >> index()


responsible_ml()
