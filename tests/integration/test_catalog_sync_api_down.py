"""Catalogue sync with no metadata API, on real Kafka, Postgres and Airflow `dag.test()`.

A replayed ratings file has no metadata API behind it: the sync must finish in seconds with the
catalogue recorded as `unavailable`, the DAG must succeed, and the next run with the API back
must fetch what was missing. Private Postgres schema and RECS_VAR_DIR, as in test_ingest.
"""

from __future__ import annotations

import json
import math
import socket
import time
from pathlib import Path

import psycopg2
import pyarrow.parquet as pq
import pytest

from jobs.ingest import catalog as catalog_sync
from jobs.ingest import lake
from jobs.ingest import snapshot as ingest
from ops import services
from tests.integration.test_ingest import private_state, produce
from tests.support.json_api import JsonHandler, json_api

pytestmark = pytest.mark.integration

LINES = [
    b"2025-03-01T10:00:00,17,GET /data/m/the+matrix+1999/0.mpg",
    b"2025-03-01T10:01:00,17,GET /data/m/the+matrix+1999/1.mpg",
    b"2025-03-01T11:00:00,23,GET /rate/heat+1995=4",
    b"2025-03-01T12:00:00,42,GET /data/m/heat+1995/7.mpg",
    b"2025-03-01T12:30:00,42,recommendation request r1, status 200, result: heat+1995, 12 ms",
]
USERS, MOVIES = [17, 23, 42], ["heat+1995", "the+matrix+1999"]


@pytest.fixture
def isolated(postgres, tmp_path, monkeypatch):
    with private_state(postgres, tmp_path / "var", monkeypatch) as url:
        yield url


@pytest.fixture
def snapshot(kafka, kafka_topic, isolated) -> str:
    """One accepted snapshot of LINES in the private lake and schema; its id."""
    produce(kafka_topic, kafka, LINES)
    result = ingest.ingest(topic=kafka_topic)
    assert result.manifest["row_counts"]["rejects"] == 0
    lake.set_status(result.snapshot_id, "accepted")  # validation is not what is tested here
    return result.snapshot_id


@pytest.fixture
def closed_api(monkeypatch) -> str:
    """METADATA_API_URL on a loopback port bound by no listener (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        monkeypatch.setenv("METADATA_API_URL", url)
        yield url


class KnowsEveryone(JsonHandler):
    """A metadata API that knows every user and movie (runtime 120, age 30)."""

    def do_GET(self):
        ident = self.path.rsplit("/", 1)[1]
        doc = {"id": ident, "runtime": 120} if "/movie/" in self.path else {"user_id": ident}
        self.send_json(200, {**doc, "age": 30, "gender": "F"})


def metrics(path: Path) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        s.name + "".join(f"[{v}]" for v in s.labels.values()): s.value
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
    }


def counts(url: str) -> tuple[int, int]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM movies)")
        found = cur.fetchone()
    conn.close()
    return found


def run_catalog_dag() -> dict[str, str]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(services.REPO / "dags" / "catalog_sync.py"))
    assert bag.import_errors == {}
    run = bag.dags["catalog_sync"].test(run_conf={"metadata_api_url": ""})  # "" = the env's
    return {ti.task_id: str(ti.state).rsplit(".", 1)[-1] for ti in run.get_task_instances()}


def test_no_api_is_unavailable_in_seconds_and_the_dag_succeeds(snapshot, isolated, closed_api):
    started = time.monotonic()
    result = catalog_sync.sync()
    elapsed = time.monotonic() - started
    assert elapsed < 15, f"sync against a closed port took {elapsed:.1f} s"  # generous bound
    assert result.status == "unavailable" and "Connection refused" in result.reason
    assert result.api_url == closed_api and result.failed == len(USERS) + len(MOVIES)
    assert (result.users_seen, result.movies_seen) == (len(USERS), len(MOVIES))
    assert result.newest_snapshot == snapshot
    assert result.newest_event_time == "2025-03-01T12:30:00"

    dims = lake.lake_root() / lake.DIMS
    assert Path(result.dims_dir) == dims
    status = json.loads((dims / catalog_sync.STATUS_FILE).read_text())
    assert status["status"] == "unavailable" and status["api_url"] == closed_api
    assert status["failed"] == 5 and status["reason"] == result.reason
    got = metrics(dims / catalog_sync.METRICS_FILE)
    assert got["catalog_api_up"] == 0 and got["catalog_ids_failed"] == 5
    assert got["catalog_status[unavailable]"] == 1 and got["catalog_status[complete]"] == 0
    # nothing fetched, nothing stored; the dims exist (empty) for readers of the lake
    assert counts(isolated) == (0, 0)
    assert pq.read_table(dims / "users.parquet").num_rows == 0

    # The same conditions through Airflow: the task succeeds and records the outcome again.
    (dims / catalog_sync.STATUS_FILE).unlink()
    (dims / catalog_sync.METRICS_FILE).unlink()
    assert run_catalog_dag() == {"sync": "success"}
    assert json.loads((dims / catalog_sync.STATUS_FILE).read_text())["status"] == "unavailable"
    assert metrics(dims / catalog_sync.METRICS_FILE)["catalog_api_up"] == 0


def test_next_run_with_the_api_back_fetches_what_was_missing(
    snapshot, isolated, closed_api, monkeypatch
):
    assert catalog_sync.sync().status == "unavailable"

    with json_api(KnowsEveryone) as url:
        monkeypatch.setenv("METADATA_API_URL", url)
        result = catalog_sync.sync()
    assert (result.status, result.failed) == ("complete", 0)
    assert (result.users_fetched, result.movies_fetched) == (len(USERS), len(MOVIES))
    assert counts(isolated) == (len(USERS), len(MOVIES))
    dims = lake.lake_root() / lake.DIMS
    assert json.loads((dims / catalog_sync.STATUS_FILE).read_text())["status"] == "complete"
    got = metrics(dims / catalog_sync.METRICS_FILE)
    assert got["catalog_api_up"] == 1 and got["catalog_ids_fetched"] == 5
    assert got["catalog_ids_failed"] == 0 and not math.isnan(got["catalog_api_up"])
