"""The train_and_publish DAG end to end with Airflow's dag.test(), real Spark and Postgres:
a good model is selected on held-out data, refitted on all of it and published for every
known user, none of whom gets a movie they have seen; a deliberately bad candidate is
rejected and production (registry and served pointer) stays as it was."""

from __future__ import annotations

import json
import uuid

import psycopg2
import pytest

from contracts import settings
from contracts.fallback import read_fallback
from jobs import pipeline
from jobs.train import dataset, registry
from ops import services
from tests.conftest import platform_state, private_schema
from tests.integration.test_dataset import planted_world, write_snapshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GOOD = {"families": ["item_knn"], "hyperparameters": '{"item_knn": {"neighbours": 20}}'}
# Zero learning rate: the "model" is Surprise's random initial factors, i.e. noise.
BAD = {
    "families": ["svd_surprise"],
    "hyperparameters": json.dumps({"svd_surprise": {"n_factors": 4, "n_epochs": 1, "lr_all": 0}}),
}


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):
    watch, rate, _, _ = planted_world(users=150, per_user=15, seed=5)
    root = tmp_path_factory.mktemp("lake")
    snap = write_snapshot(root, "s1", watch, rate)
    # A unique dataset id gives fresh model and reco versions, whatever earlier runs left.
    out = root / f"ds-{uuid.uuid4().hex[:8]}"
    return str(dataset.build_dataset([snap], out, window_days=None, spark=spark))


PRIVATE_FILES = ("010_serving.sql", "011_serving_grants.sql", "030_registry.sql")


@pytest.fixture
def isolated(postgres, tmp_path, monkeypatch):
    """Registry and serving tables (pointer, partitions, popular lists) in a fresh schema that
    is dropped afterwards, so the platform's public.serving_pointer never moves (checked);
    snapshot and catalog tables still resolve to public; state in tmp."""
    before = platform_state(postgres)
    with private_schema(postgres, PRIVATE_FILES, also_public=True) as url:
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("RECS_VAR_DIR", str(tmp_path / "var"))
        yield url
    assert platform_state(postgres) == before


def run_dag(conf: dict) -> dict[str, str]:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(services.REPO / "dags" / "train_and_publish.py")).get_dag(
        "train_and_publish"
    )
    run = dag.test(run_conf=conf)
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def pointer(url: str) -> str | None:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT reco_version FROM serving_pointer")
        return cur.fetchone()[0]


def test_publish_good_then_reject_bad(world, isolated):
    url = isolated
    states = run_dag({**GOOD, "dataset": world})
    assert states["publish"] == "success", states
    prod = registry.production(url)
    assert prod is not None and prod["family"] == "item_knn"
    evaluated = registry.get(prod["evaluated_as"], url)  # select, then refit
    assert evaluated["family"] == "item_knn" and evaluated["status"] == "candidate"
    everything = dataset.load_interactions(world)
    assert prod["trained_on"]["rows"] == len(everything)
    assert evaluated["trained_on"]["rows"] < len(everything)
    reco = pipeline.reco_version_for(prod["model_version"])
    assert pointer(url) == reco
    # The popularity list is also left beside the server, for a start during an outage.
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT popular_version FROM serving_pointer")
        popular_version = cur.fetchone()[0]
    stored = read_fallback(settings.load().popular_fallback_file)
    assert stored is not None and stored[0] == popular_version
    assert len(stored[1].split(",")) == 20

    seen = everything.groupby("user_id")["movie_id"].agg(set)
    catalogue = set(everything["movie_id"])
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT user_id, items FROM recommendations WHERE reco_version = %s", (reco,))
        rows = dict(cur.fetchall())
    assert len(seen) == 150 and set(rows) == set(seen.index)  # one row per known user
    for user, text in rows.items():
        items = text.split(",")
        assert len(items) == 20 and len(set(items)) == 20
        assert set(items) <= catalogue
        assert not set(items) & seen[user]

    states = run_dag({**BAD, "dataset": world})
    assert states["gate"] == "success" and states["score"] == "skipped", states
    assert states["publish"] == "skipped" and states["refresh_popularity"] == "success"
    bad = registry.list_versions(family="svd_surprise", database_url=url)[0]
    assert bad["status"] == "rejected"
    assert "does not lie above 0" in bad["status_reason"]
    assert registry.production(url)["model_version"] == prod["model_version"]
    assert pointer(url) == reco
