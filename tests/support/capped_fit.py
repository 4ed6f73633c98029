"""Fit item_knn from a Spark DataFrame with the driver's address space capped (a subprocess of
tests/integration/test_driver_memory_cap.py).

Usage: python -m tests.support.capped_fit PARQUET_DIR CAP_MB [--collect]. The Spark session
starts first, so its JVM (a child) is not bound; then RLIMIT_AS allows the Python driver only
CAP_MB more than it has mapped. Prints one JSON line: the cap, the interactions and the
model's items. With --collect it first collects the interactions as a pandas frame (the
control: what the pandas path holds).
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path


def mapped_bytes() -> int:
    """The process's virtual size now (VmSize)."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmSize:")[1].split()[0]) * 1024


def main(path: str, cap_mb: int, collect: bool) -> None:
    import numpy  # noqa: F401 - everything the fit imports is mapped before the cap
    import pyarrow  # noqa: F401
    import scipy.sparse  # noqa: F401

    from jobs.models import families
    from jobs.spark import get_spark

    spark = get_spark("capped-fit")
    data = spark.read.parquet(path)
    rows = data.count()
    resource.setrlimit(
        resource.RLIMIT_AS, (mapped_bytes() + cap_mb * 2**20, resource.RLIM_INFINITY)
    )
    if collect:  # the control: what the pandas path does, an interactions-sized frame
        data = data.toPandas()
    model = families.create("item_knn", neighbours=50).fit(data)
    print(json.dumps({"cap_mb": cap_mb, "rows": rows, "items": len(model.item_ids)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), "--collect" in sys.argv[3:])
