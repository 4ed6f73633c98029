"""retention: a real run with dag.test() on a private schema and lake removes the old model's
things and keeps the live ones; a dry-run conf removes nothing."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from jobs.publish import publish
from ops import services
from tests.conftest import private_schema
from tests.integration.test_publish_races import attached
from tests.integration.test_retention import build_world, kept_everything_needed, on_disk

pytestmark = [pytest.mark.dags, pytest.mark.integration]


def load():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(services.REPO / "dags" / "retention.py"))
    assert bag.import_errors == {}
    return bag.dags["retention"]


@contextmanager
def kept_from_the_scheduler(dag_id: str):
    """The DAG paused for the block, as it was afterwards: an Airflow already running here
    (make services-up) schedules `retention`, and its scheduler may queue a dag.test() run's
    task instances to its own workers, which would run them against the platform instead of
    this test's schema and lake."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.get(DagModel, dag_id)
        was_paused = None if row is None else row.is_paused
        if row is not None:
            row.is_paused = True
    try:
        yield
    finally:
        if was_paused is not None:
            with create_session() as session:
                session.get(DagModel, dag_id).is_paused = was_paused


def state(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state).rsplit(".", 1)[-1] for ti in run.get_task_instances()}


def test_the_dag_removes_what_the_rule_lets_go(postgres, tmp_path, monkeypatch):
    monkeypatch.setenv("RECS_VAR_DIR", str(tmp_path / "var"))
    with private_schema(postgres) as url:
        monkeypatch.setenv("DATABASE_URL", url)
        from contracts import settings

        lake = settings.load().lake_dir
        batches = build_world(url, lake, tmp_path)
        with kept_from_the_scheduler("retention"):
            dry = load().test(run_conf={"dry_run": True})
            assert state(dry) == {"remove_expired": "success"}
            assert attached(url, "r-old") and on_disk("m-old")
            assert state(load().test()) == {"remove_expired": "success"}
        assert not attached(url, "r-old") and not on_disk("m-old")
        assert publish.status(url)["pointer"]["reco_version"] == "r-live"
        kept_everything_needed(url, lake, batches)
