"""A real Spark standalone cluster (ops/spark_cluster.py: a master and two workers): the
dataset job, item_knn's Spark engine, als_spark and scoring give on it what they give on
local[2], and their tasks ran in executors on both workers with the code jobs/spark.py ships.

Each master's run is a subprocess (tests/support/spark_pipeline_run.py): a SparkSession is a
JVM-wide singleton of its Python process, and this process may already hold the suite's
local[2] session, which getOrCreate would hand back whatever SPARK_MASTER_URL says. The
cluster has private ports and a private RECS_VAR_DIR, so it never meets one `make
spark-cluster` started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from contracts.names import USER_COL
from jobs.models import families
from jobs.train import dataset
from ops import spark_cluster
from tests.integration.test_dataset import START, planted_world, write_snapshot
from tests.support.harness import free_port, wait_for

pytestmark = pytest.mark.integration

RUN_DEADLINE_S = 300


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The master and two workers up on free loopback ports; stopped however the module ends."""
    var_dir = tmp_path_factory.mktemp("spark-var")
    ports = {"SPARK_MASTER_PORT": free_port(), "SPARK_MASTER_UI_PORT": free_port()}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECS_VAR_DIR", str(var_dir))
        patch.setenv("SPARK_WORKER_INSTANCES", "2")
        for name, port in ports.items():
            patch.setenv(name, str(port))
        try:
            spark_cluster.up(quiet=True)
            yield var_dir
        finally:
            spark_cluster.down(quiet=True)
            assert not any(spark_cluster.status()["daemons"].values())


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> list[Path]:
    """Two small snapshots of a world with planted tastes (80 users, about 6k events)."""
    watch, rate, _, _ = planted_world(users=80, per_user=12)
    root = tmp_path_factory.mktemp("lake")
    cut = START + pd.Timedelta(days=30)
    early, late = watch.event_time < cut, rate.event_time < cut
    return [
        write_snapshot(root, "s1", watch[early], rate[late]),
        write_snapshot(root, "s2", watch[~early], rate[~late]),
    ]


def run_pipeline(out: Path, snapshots: list[Path], master: str, executors: int) -> dict:
    """tests/support/spark_pipeline_run.py on `master`; its run.json (its log on failure)."""
    out.mkdir(parents=True)
    log = out.parent / f"{out.name}.log"
    argv = [sys.executable, "-m", "tests.support.spark_pipeline_run", str(out), str(executors)]
    env = {**os.environ, "SPARK_MASTER_URL": master}
    with log.open("w") as sink:
        done = subprocess.run(
            [*argv, *map(str, snapshots)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=RUN_DEADLINE_S,
            check=False,
        )
    assert done.returncode == 0, f"{master} run failed:\n{log.read_text()[-4000:]}"
    return json.loads((out / "run.json").read_text())


@pytest.fixture(scope="module")
def runs(cluster, lake, tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """The same pipeline on local[2] and on the cluster: {"local"|"cluster": (dir, run.json)}."""
    base = tmp_path_factory.mktemp("runs")
    masters = {"local": ("local[2]", 0), "cluster": (spark_cluster.master_url(), 2)}
    return {
        name: (base / name, run_pipeline(base / name, lake, master, executors))
        for name, (master, executors) in masters.items()
    }


def test_up_again_is_a_no_op(cluster):
    assert spark_cluster.up(quiet=True) is False
    report = spark_cluster.status()
    assert report["running"] and len(report["workers"]) == 2
    assert {w["cores"] for w in report["workers"]} == {1}


def completed(app_id: str) -> dict | None:
    """The master's record of a finished application (None while it still counts as active)."""
    apps = spark_cluster.master_state()["completedapps"]
    return next((a for a in apps if a["id"] == app_id), None)


def test_tasks_ran_in_executors_on_both_workers(cluster, runs):
    _, run = runs["cluster"]
    app = run["app_id"]
    assert run["master"] == spark_cluster.master_url() and run["executors"] == 2
    finished = wait_for(lambda: completed(app), 30, f"{app} among the master's completed apps")
    assert finished["state"] == "FINISHED" and finished["cores"] == 2
    for n in (1, 2):
        # Per worker: an executor of the app fetched the shipped code into its work dir and
        # finished tasks there (executors have no PYTHONPATH to the checkout: without the zip
        # they could not even unpickle the scoring function).
        executors = list((spark_cluster.worker_dir(n) / "work" / app).iterdir())
        assert any(
            list(d.glob("recs-code-*.zip")) and "Finished task" in (d / "stderr").read_text()
            for d in executors
        ), f"worker {n}: {executors}"
    assert runs["local"][1]["executors"] == 0


def sorted_part(path: Path, test: bool) -> pd.DataFrame:
    frame = dataset.load_split(path)[int(test)]
    return frame.sort_values([USER_COL, "movie_id"]).reset_index(drop=True)


def test_the_dataset_is_the_same(runs):
    (local, _), (remote, _) = runs["local"], runs["cluster"]
    for test in (False, True):
        expected = sorted_part(local / "dataset", test)
        assert len(expected) > 0
        pd.testing.assert_frame_equal(sorted_part(remote / "dataset", test), expected)
    mine, theirs = (dataset.read_manifest(p / "dataset") for p in (local, remote))
    assert mine["counts"] == theirs["counts"] and mine["split"] == theirs["split"]


def test_item_knn_finds_the_same_neighbours(runs):
    local, remote = (families.load("item_knn", runs[k][0] / "knn") for k in ("local", "cluster"))
    np.testing.assert_array_equal(remote.item_ids, local.item_ids)
    assert remote.neighbours.nnz == local.neighbours.nnz > 0
    # Sums of the same products in another order: equal to the last bits, not bit for bit.
    np.testing.assert_allclose(
        remote.neighbours.toarray(), local.neighbours.toarray(), rtol=1e-12, atol=1e-15
    )


def test_als_factors_are_identical(runs):
    # Same seed, same blocks, same input partitions (defaultParallelism 2 on both masters):
    # ALS is deterministic, the factors equal bit for bit.
    local, remote = (families.load("als_spark", runs[k][0] / "als") for k in ("local", "cluster"))
    np.testing.assert_array_equal(remote.user_ids, local.user_ids)
    assert np.abs(local.user_factors).sum() > 0
    np.testing.assert_array_equal(remote.user_factors, local.user_factors)
    np.testing.assert_array_equal(remote.item_factors, local.item_factors)


def test_scored_lists_are_identical(runs):
    local, remote = (
        pd.read_parquet(runs[k][0] / "scored").sort_values(USER_COL).reset_index(drop=True)
        for k in ("local", "cluster")
    )
    assert len(local) == 80 and (local["n_items"] == 20).all()
    assert remote[USER_COL].tolist() == local[USER_COL].tolist()
    assert [list(x) for x in remote["items"]] == [list(x) for x in local["items"]]
