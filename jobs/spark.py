"""The one way jobs get a SparkSession: master from SPARK_MASTER_URL, loopback, quiet logs.

On a standalone cluster (SPARK_MASTER_URL=spark://…, ops/spark_cluster.py) the executors run
the same venv's Python (PYSPARK_PYTHON) but not from the checkout: the session ships the
project's code as one zip (`code_zip`) in `spark.submit.pyFiles`, which Spark copies into
every executor's work dir and puts on its Python workers' path. Paths the jobs hand to
executors (the lake, scoring bundles) must be visible on every node: here the same local
filesystem under RECS_VAR_DIR.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import zipfile
from pathlib import Path

from contracts import settings

# What executors import: jobs import only contracts and jobs (tests/unit/test_architecture.py).
SHIPPED_PACKAGES = ("contracts", "jobs")


def get_spark(app_name: str, shuffle_partitions: int = 8, driver_memory: str = "4g"):
    """A SparkSession for `app_name` on SPARK_MASTER_URL (default local[2])."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    cfg = settings.load()
    builder = (
        SparkSession.builder.appName(app_name)
        .master(cfg.spark_master_url)
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.driver.memory", driver_memory)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.warehouse.dir", str(cfg.var_dir / "spark-warehouse"))
    )
    if cfg.spark_master_url.startswith("spark://"):
        builder = standalone_config(builder, cfg.var_dir)
    else:  # a cluster's executors spill where their worker says (SPARK_LOCAL_DIRS)
        builder = builder.config("spark.local.dir", str(cfg.var_dir / "spark-tmp"))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def standalone_config(builder, var_dir: Path):
    """Executor sizing and the shipped code for a standalone cluster."""
    return (
        builder.config("spark.executor.cores", str(settings.spark_worker_cores()))
        .config("spark.executor.memory", settings.spark_executor_memory())
        .config("spark.submit.pyFiles", str(code_zip(var_dir)))
    )


def code_zip(var_dir: Path) -> Path:
    """The project's packages as one zip under var_dir/spark/, named by a digest of their
    sources: built once, rebuilt only when the code changes."""
    files = sorted(
        path
        for package in SHIPPED_PACKAGES
        for path in (settings.REPO_ROOT / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    )
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(settings.REPO_ROOT)).encode() + b"\0")
        digest.update(path.read_bytes())
    out = var_dir / "spark" / f"recs-code-{digest.hexdigest()[:16]}.zip"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        # Written aside, then renamed: a concurrent session never reads half a zip.
        with (
            tempfile.NamedTemporaryFile(dir=out.parent, suffix=".tmp", delete=False) as tmp,
            zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive,
        ):
            for path in files:
                archive.write(path, path.relative_to(settings.REPO_ROOT))
        os.replace(tmp.name, out)
    return out
