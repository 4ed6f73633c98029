"""movielog_ingest and catalog_sync: DAG shape, and real runs with Airflow's dag.test().

The runs use a fresh topic, a private Postgres schema and their own RECS_VAR_DIR; the metadata
API is the simulator's (`python -m simulator metadata-api --scale tiny`).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from jobs import pipeline
from ops import services
from tests.integration.test_ingest import backfill, drifted_lines, private_state, produce

pytestmark = pytest.mark.dags

INGEST_STEPS = ["snapshot", "validate", "mark", "build_docs", "flag_drift"]


def load(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(services.REPO / "dags" / f"{dag_id}.py"))
    assert bag.import_errors == {}
    return bag.dags[dag_id]  # from the file only: get_dag() also asks the metadata DB


def test_ingest_dag_shape():
    dag = load("movielog_ingest")
    assert dag.catchup is False and dag.timetable.delta == timedelta(hours=1)
    assert {"ingest", "data-quality"} <= set(dag.tags)
    assert all(t.retries >= 1 for t in dag.tasks)
    assert {"topic", "max_lines"} <= set(dag.params.keys())
    order = [t.task_id for t in dag.topological_sort()]
    assert order[:3] == INGEST_STEPS[:3] and set(order) == set(INGEST_STEPS)
    assert dag.get_task("build_docs").trigger_rule == "all_done"
    flag = dag.get_task("flag_drift")
    assert flag.upstream_task_ids == {"mark"}
    assert [asset.name for asset in flag.outlets] == [pipeline.DRIFT_ASSET]


def test_catalog_dag_shape():
    dag = load("catalog_sync")
    assert dag.catchup is False and dag.timetable.delta == timedelta(days=1)
    assert "metadata" in dag.tags and all(t.retries >= 1 for t in dag.tasks)


def states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state).rsplit(".", 1)[-1] for ti in run.get_task_instances()}


@pytest.fixture
def isolated(postgres, tmp_path, monkeypatch):
    with private_state(postgres, tmp_path / "var", monkeypatch) as url:
        yield url


@pytest.fixture
def metadata_api():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "metadata-api", "--scale", "tiny", "--port",
         str(port), "--rate-limit", "200"],
        cwd=services.REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{url}/user/1", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "metadata API did not start"
        time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.integration
def test_ingest_accept_then_quarantine_then_catalog(
    kafka,
    kafka_topic,
    isolated,
    metadata_api,
    tmp_path,
):
    import psycopg2

    from jobs.ingest import lake

    backfill(kafka_topic, kafka, "unknown_movie=0.005")
    run = load("movielog_ingest").test(run_conf={"topic": kafka_topic, "max_lines": None})
    # a fresh topic is not the platform's: its drift never schedules retraining
    assert states(run) == {**dict.fromkeys(INGEST_STEPS, "success"), "flag_drift": "skipped"}
    assert lake.snapshot_row("s000001")["status"] == "accepted"

    produce(kafka_topic, kafka, drifted_lines())
    run = load("movielog_ingest").test(run_conf={"topic": kafka_topic, "max_lines": None})
    got = states(run)
    assert got["snapshot"] == got["validate"] == "success"
    assert got["mark"] == "failed" and got["build_docs"] == "success", got
    row = lake.snapshot_row("s000002")
    assert row["status"] == "quarantined" and "new_user_share" in row["reasons"]

    run = load("catalog_sync").test(run_conf={"metadata_api_url": metadata_api})
    assert states(run) == {"sync": "success"}
    with psycopg2.connect(isolated) as conn, conn.cursor() as cur:
        cur.execute("SELECT status, count(*) FROM movies GROUP BY status")
        movies = dict(cur.fetchall())
        cur.execute("SELECT count(*), count(age) FROM users")
        users, with_age = cur.fetchone()
    conn.close()
    # unknown_movie lines name movies the API does not know: recorded, not fatal
    assert movies.get("known", 0) > 10 and movies.get("unknown", 0) >= 1
    assert users > 10 and with_age == users
    # only the accepted snapshot's ids: none of the quarantined day's brand-new users
    dims = Path(lake.lake_root()) / "dims"
    import pyarrow.parquet as pq

    assert pq.read_table(dims / "users.parquet").num_rows == users
    assert max(pq.read_table(dims / "users.parquet")["user_id"].to_pylist()) < 10**9
