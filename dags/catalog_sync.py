"""catalog_sync: users and movies seen in accepted snapshots -> metadata API -> Postgres + Parquet.

Daily. Wiring only: the task calls jobs.pipeline.sync_catalog and returns the dims directory.
Each run reads only accepted snapshots it has not synced yet (Postgres `catalog_synced`).
The catalogue is optional: when the metadata API is down the task still succeeds, with the
catalogue recorded as `unavailable` in dims/catalog_status.json and dims/catalog_sync.prom
(see jobs/ingest/catalog.py); retries are for real failures (Postgres, the lake).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

# Retries after 30-60 s, then 60-120 s, 120-240 s (exponential back-off, capped at 10 min).
DEFAULT_ARGS = {
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
}


@dag(
    dag_id="catalog_sync",
    schedule=timedelta(days=1),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["recommendations", "ingest", "metadata"],
    params={
        "metadata_api_url": Param("", type="string", description="empty = METADATA_API_URL"),
    },
    doc_md=__doc__,
)
def catalog_sync():
    @task
    def sync(params=None) -> str:
        from jobs import pipeline

        return pipeline.sync_catalog(params["metadata_api_url"] or None)

    sync()


catalog_sync()
