"""The platform's Spark jobs on small data, in a process of its own, on SPARK_MASTER_URL.

`python -m tests.support.spark_pipeline_run OUT_DIR EXECUTORS SNAPSHOT…`: the dataset job over the
snapshots, item_knn with its Spark engine and als_spark on the dataset's train part (both
saved), then scoring of the ALS model with its audit. EXECUTORS: how many executors to wait
for before the jobs start (0 on a local master). Writes under OUT_DIR: dataset/, knn/, als/,
scored/ and run.json (application id, master, executors, seconds per step).

A SparkSession is one per JVM and one JVM per Python process, and the test session may hold
a local[2] one already (tests/conftest.py): running each master's pipeline in a fresh process
gives both the same start, so tests/integration/test_spark_cluster.py compares like with like.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

EXECUTORS_DEADLINE_S = 60
KNN = {"neighbours": 5, "shrink": 2.0, "weighting": "strength"}
ALS = {"rank": 4, "max_iter": 5, "blocks": 2, "seed": 42}
USERS_PER_TASK = 20  # several scoring tasks, so that every executor scores some users


def executors(spark) -> int:
    """Executors registered with the driver (the driver's own block manager not counted)."""
    return spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1


def wait_for_executors(spark, expected: int) -> int:
    """On a cluster, wait until `expected` executors registered, so that the jobs are spread
    over every worker rather than run by whichever executor came first."""
    from tests.support.harness import wait_for

    if expected:
        wait_for(lambda: executors(spark) >= expected, EXECUTORS_DEADLINE_S, "executors", 0.2)
    return executors(spark)


@contextmanager
def timed(seconds: dict[str, float], step: str):
    began = time.monotonic()
    yield
    seconds[step] = round(time.monotonic() - began, 2)


def run(out: Path, snapshots: list[Path], expected_executors: int) -> dict:
    """Every step on the session's master; returns what run.json records."""
    from jobs.models import families
    from jobs.publish import score
    from jobs.spark import get_spark
    from jobs.train import dataset

    seconds: dict[str, float] = {}
    with timed(seconds, "session"):
        spark = get_spark("cluster-check", shuffle_partitions=2)
        registered = wait_for_executors(spark, expected_executors)
    with timed(seconds, "dataset"):
        dataset.build_dataset(snapshots, out / "dataset", window_days=None, spark=spark)
    train, _ = dataset.load_split(out / "dataset")
    with timed(seconds, "item_knn"):
        families.create("item_knn", engine="spark", **KNN).fit(train).save(out / "knn")
    with timed(seconds, "als_spark"):
        families.create("als_spark", **ALS).fit(train).save(out / "als")
    with timed(seconds, "score"):
        scored = score.score(
            out / "als", out / "scored", users_per_task=USERS_PER_TASK, spark=spark
        )
        score.audit(scored.path, expected_users=scored.n_users, spark=spark)
    context = spark.sparkContext
    report = {"app_id": context.applicationId, "master": context.master}
    spark.stop()  # the application ends now, FINISHED on the master, its executors stopped
    return {**report, "executors": registered, "seconds": seconds}


def main(argv: list[str]) -> int:
    out, snapshots = Path(argv[0]), [Path(s) for s in argv[2:]]
    report = run(out, snapshots, expected_executors=int(argv[1]))
    (out / "run.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
