"""movielog_ingest: snapshot -> validate -> mark accepted/quarantined -> build Data Docs.

Hourly (and manually with params). Wiring only: each task calls one jobs.pipeline function
and returns a snapshot id or a path. A snapshot that fails its expectations is marked
`quarantined` and the `mark` task fails with the reasons in its log; training never reads it
unless an operator re-admits it after inspection (`python -m jobs.ingest.readmit <id> --reason
...`, README "Operator tasks"). Later snapshots are judged on their own: offsets continue from
the last complete snapshot, quarantined or not.
With no new offsets the run does nothing (every task passes `None` along).
`flag_drift` succeeds, emitting the asset that schedules train_and_publish, only when the
accepted snapshot's drift passes a retrain level (jobs/train/triggers.py); otherwise it is
skipped.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, dag, task

from jobs.pipeline import DRIFT_ASSET

# A database or broker outage fails a task; it retries after 15-30 s, then 30-60 s, 60-120 s,
# 120-240 s (Airflow's exponential back-off, capped at 5 min): outages up to ~7 min heal
# without anyone (docs/operations.md, "Fault drills"). A snapshot written by a failed try is
# validated by the next one (jobs.pipeline.ingest_snapshot), so nothing is lost or repeated.
DEFAULT_ARGS = {
    "retries": 4,
    "retry_delay": timedelta(seconds=15),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=5),
}


@dag(
    dag_id="movielog_ingest",
    schedule=timedelta(hours=1),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["recommendations", "ingest", "data-quality"],
    params={
        "topic": Param("", type="string", description="Kafka topic; empty = KAFKA_TOPIC"),
        "max_lines": Param(
            None, type=["null", "integer"], minimum=1, description="cap the snapshot; null = all"
        ),
    },
    doc_md=__doc__,
)
def movielog_ingest():
    @task
    def snapshot(params=None) -> str | None:
        from jobs import pipeline

        return pipeline.ingest_snapshot(params["topic"] or None, params["max_lines"])

    @task
    def validate(snapshot_id: str | None) -> str | None:
        from jobs import pipeline

        return pipeline.validate_snapshot(snapshot_id)

    @task
    def mark(snapshot_id: str | None) -> str | None:
        from airflow.sdk.exceptions import AirflowFailException

        from jobs import pipeline

        try:
            return pipeline.mark_snapshot(snapshot_id)
        except pipeline.SnapshotRejected as exc:  # a retry cannot change the verdict
            raise AirflowFailException(str(exc)) from exc

    @task(outlets=[Asset(DRIFT_ASSET)])
    def flag_drift(snapshot_id: str | None) -> str:
        from airflow.sdk.exceptions import AirflowSkipException

        from jobs import pipeline

        reason = pipeline.retrain_on_drift(snapshot_id)
        if reason is None:  # skipped: no asset event, no retraining
            raise AirflowSkipException("no drift past the retrain levels")
        return reason

    @task(trigger_rule="all_done")
    def build_docs() -> str:
        from jobs import pipeline

        return pipeline.build_data_docs()

    marked = mark(validate(snapshot()))
    marked >> build_docs()
    flag_drift(marked)


movielog_ingest()
