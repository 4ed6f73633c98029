"""The one way jobs get a SparkSession: master from SPARK_MASTER_URL, loopback, quiet logs."""

from __future__ import annotations

import os
import sys

from contracts import settings


def get_spark(app_name: str, shuffle_partitions: int = 8, driver_memory: str = "4g"):
    """A SparkSession for `app_name` on SPARK_MASTER_URL (default local[2])."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    cfg = settings.load()
    spark = (
        SparkSession.builder.appName(app_name)
        .master(cfg.spark_master_url)
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.driver.memory", driver_memory)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.local.dir", str(cfg.var_dir / "spark-tmp"))
        .config("spark.sql.warehouse.dir", str(cfg.var_dir / "spark-warehouse"))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    return spark
