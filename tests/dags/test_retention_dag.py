"""retention: a real run with dag.test() on a private schema and lake removes the old model's
things and keeps the live ones; a dry-run conf removes nothing."""

from __future__ import annotations

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


def state(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state).rsplit(".", 1)[-1] for ti in run.get_task_instances()}


def test_the_dag_removes_what_the_rule_lets_go(postgres, tmp_path, monkeypatch):
    monkeypatch.setenv("RECS_VAR_DIR", str(tmp_path / "var"))
    with private_schema(postgres) as url:
        monkeypatch.setenv("DATABASE_URL", url)
        from contracts import settings

        lake = settings.load().lake_dir
        batches = build_world(url, lake, tmp_path)
        assert state(load().test(run_conf={"dry_run": True})) == {"remove_expired": "success"}
        assert attached(url, "r-old") and on_disk("m-old")
        assert state(load().test()) == {"remove_expired": "success"}
        assert not attached(url, "r-old") and not on_disk("m-old")
        assert publish.status(url)["pointer"]["reco_version"] == "r-live"
        kept_everything_needed(url, lake, batches)
