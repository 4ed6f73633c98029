"""`make import-ratings` (or `make replay`) of a real-shaped ratings file, then the pipeline's
three DAGs as `make pipeline` runs them, with NO metadata API: every run succeeds, a model (or,
when no candidate clears the gate, the popularity list) is published for every known user,
and no known user is offered a movie they rated.

The file is written in MovieTweetings' format with that set's shape: users arrive over four
months and rate for a few days to weeks, so one global time cut leaves few users with history
on both sides. Real Kafka, Postgres (a private schema holding every table), Spark, Airflow
`dag.test()`.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import psycopg2
import pytest

from jobs import pipeline
from jobs.ingest import lake
from jobs.train import dataset, registry
from ops import services
from tests.conftest import fresh_topic, private_schema

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAGS = ("movielog_ingest", "catalog_sync", "train_and_publish")
USERS, MOVIES, DAYS = 500, 120, 120
START = 1_362_096_000  # 2013-03-01, as MovieTweetings


def write_movietweetings(folder: Path, seed: int = 7) -> Path:
    """ratings.dat + movies.dat: two taste groups, users active for days to weeks."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    titles = [f"{i:07d}::Movie Number {i} ({1990 + i % 30})::Drama" for i in range(1, MOVIES + 1)]
    (folder / "movies.dat").write_text("\n".join(titles) + "\n")
    lines = []
    for user in range(1, USERS + 1):
        group = user % 2  # group 0 likes the first half of the catalogue, group 1 the second
        arrival = rng.uniform(0, DAYS - 3) * 86_400
        life = min(rng.lognormal(np.log(10), 0.6), 40) * 86_400
        n = int(rng.integers(3, 25))
        liked = np.arange(MOVIES // 2) + group * (MOVIES // 2)
        weights = np.linspace(2.0, 1.0, len(liked))
        movies = rng.choice(
            liked, size=min(n, len(liked)), replace=False, p=weights / weights.sum()
        )
        times = np.sort(START + arrival + rng.uniform(0, life, size=len(movies)))
        for movie, when in zip(movies, times, strict=True):
            rating = int(rng.integers(6, 11))
            lines.append(f"{user}::{movie + 1:07d}::{rating}::{int(when)}")
    (folder / "ratings.dat").write_text("\n".join(lines) + "\n")
    return folder / "ratings.dat"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def private_platform(postgres, tmp_path, monkeypatch):
    """Every table in a fresh schema; private lake; a metadata API URL nobody answers."""
    with private_schema(postgres) as url:
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("RECS_VAR_DIR", str(tmp_path / "var"))
        monkeypatch.setenv("METADATA_API_URL", f"http://127.0.0.1:{closed_port()}")
        yield url


def run_dag(dag_id: str, conf: dict) -> str:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(services.REPO / "dags" / f"{dag_id}.py")).get_dag(dag_id)
    return str(dag.test(run_conf=conf).state)


def test_imported_ratings_file_runs_through_the_pipeline_without_metadata_api(
    kafka, private_platform, tmp_path, monkeypatch
):
    url = private_platform
    ratings = write_movietweetings(tmp_path / "mt")
    with fresh_topic(kafka) as topic:
        monkeypatch.setenv("KAFKA_TOPIC", topic)
        cmd = [sys.executable, "-m", "simulator", "import-ratings", "--format", "movietweetings",
               "--topic", topic, "--bootstrap", kafka, str(ratings)]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True, cwd=services.REPO, timeout=300)
        states = {dag_id: run_dag(dag_id, {}) for dag_id in DAGS}
    assert states == dict.fromkeys(DAGS, "success"), states

    status = json.loads((lake.lake_root() / lake.DIMS / "catalog_status.json").read_text())
    assert status["status"] == "unavailable"
    prod = registry.production(url)
    assert prod is not None and prod["evaluated_as"]
    data = prod["dataset_path"]
    plan = dataset.read_manifest(data)["evaluation"]
    decision = json.loads((pipeline.run_dir(data) / pipeline.DECISION_FILE).read_text())
    print(f"protocol {plan['protocol']} ({plan['reason']}); gate: {decision['reason']}")
    assert decision["publish"] == prod["evaluated_as"]

    everything = dataset.load_interactions(data)
    seen = everything.groupby("user_id")["movie_id"].agg(set)
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT reco_version FROM serving_pointer")
        (reco,) = cur.fetchone()
        cur.execute("SELECT user_id, items FROM recommendations WHERE reco_version = %s", (reco,))
        rows = dict(cur.fetchall())
    conn.close()
    assert set(rows) == set(seen.index)  # every known user, the late arrivals included
    assert all(not set(items.split(",")) & seen[user] for user, items in rows.items())
