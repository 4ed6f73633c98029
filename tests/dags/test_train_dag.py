"""train_and_publish: loads cleanly, is scheduled every 3 days, and wires the steps in order."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ops import services

pytestmark = pytest.mark.dags

STEPS = [
    "detect_spam",
    "build_dataset",
    "train",
    "evaluate",
    "gate",
    "refit",
    "score",
    "publish",
    "refresh_popularity",
]


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(services.REPO / "dags" / "train_and_publish.py"))
    assert bag.import_errors == {}
    return bag.dags["train_and_publish"]  # from the file only, no metadata DB


def test_schedule_catchup_tags_retries(dag):
    assert dag.catchup is False
    assert dag.timetable.timetable.delta == timedelta(days=3)


def test_drift_and_accuracy_drop_also_schedule_a_run(dag):
    from jobs.pipeline import ACCURACY_DROP_ASSET, DRIFT_ASSET

    either = dag.timetable.asset_condition
    assert type(either).__name__ == "AssetAny"
    assert {asset.name for asset in either.objects} == {DRIFT_ASSET, ACCURACY_DROP_ASSET}
    assert set(dag.tags) >= {"training", "publish"}
    assert all(t.retries >= 1 for t in dag.tasks)


def test_manual_params(dag):
    names = {"families", "hyperparameters", "window_days", "dataset", "gate_tolerance"}
    assert names | {"gate_min_users"} <= set(dag.params.keys())
    assert dag.params["families"] == ["item_knn", "svd_surprise", "hybrid"]


def test_steps_in_order(dag):
    order = [t.task_id for t in dag.topological_sort()]
    assert sorted(order) == sorted(STEPS)
    positions = [order.index(s) for s in STEPS[:8]]
    assert positions == sorted(positions)
    assert order.index("refresh_popularity") > order.index("publish")
    assert dag.get_task("refresh_popularity").trigger_rule == "none_failed"
    assert dag.get_task("gate").upstream_task_ids == {"evaluate"}
