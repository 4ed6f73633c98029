"""DAG integrity: dags/ loads with no import errors, no cycles, and every DAG follows the rules."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ops import services

pytestmark = pytest.mark.dags

EXPECTED_DAGS = {
    "movielog_ingest",
    "catalog_sync",
    "train_and_publish",
    "online_evaluation",
    "experiment_report",
    "retention",
    "shadow_report",
}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(services.REPO / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_expected_dags_present(dagbag):
    assert EXPECTED_DAGS <= set(dagbag.dag_ids)


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_dag_rules(dagbag, dag_id):
    dag = dagbag.dags.get(dag_id)  # parsed from the file; get_dag() asks the DB too
    assert dag is not None, f"{dag_id} not loaded"
    assert dag.tags, f"{dag_id} has no tags"
    assert dag.catchup is False
    for task in dag.tasks:
        assert task.retries >= 1, f"{dag_id}.{task.task_id} has retries={task.retries}"
    # topological_sort raises on a cycle
    assert len(dag.topological_sort()) == len(dag.tasks)


def test_retention_is_daily_and_calls_one_pipeline_function(dagbag):
    dag = dagbag.dags["retention"]
    assert dag.timetable.delta == timedelta(days=1) and dag.catchup is False
    assert [t.task_id for t in dag.tasks] == ["remove_expired"]
    assert dag.params["dry_run"] is False
