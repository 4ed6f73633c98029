"""Driver memory of training from pandas vs from a Spark DataFrame (docs/models.md, section 4b).

Writes synthetic interactions (`--users` users x `--per-user` movies of `--movies`, deduplicated;
half rated) as Parquet parts, then for each family fits it in a fresh process twice: from
`pd.read_parquet` (what training does below TRAIN_SPARK_ROWS) and from `spark.read.parquet`
(above it). Reported per run: wall seconds of load + fit, the Python driver's peak RSS
(VmHWM; the Spark JVM is a separate process and not counted), and the model's arrays.
"import only" is a process that imports the model code and starts the Spark session.

Run: `make bench BENCH=bench_spark_training` or
`python -m benchmarks.bench_spark_training [--users 50000] [--per-user 20] [--movies 5000]`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FAMILIES = {
    "item_knn": {"neighbours": 50},
    "als_spark": {"rank": 16, "max_iter": 5, "implicit_prefs": False},
}

CHILD = """
import json, sys, time
sys.path.insert(0, {repo!r})
import pandas as pd
from jobs.models import families
from jobs.spark import get_spark

mode, family, params, path = {mode!r}, {family!r}, {params!r}, {path!r}
spark = get_spark("bench-spark-training")
start = time.perf_counter()
if mode == "import only":
    model, seconds = None, 0.0
else:
    data = pd.read_parquet(path) if mode == "pandas" else spark.read.parquet(path)
    model = families.create(family, **params).fit(data)
    seconds = time.perf_counter() - start
# VmHWM belongs to this process's address space: ru_maxrss would carry over the high-water
# mark of the forked parent across exec.
status = open("/proc/self/status").read().split("VmHWM:")[1]
peak = int(status.split()[0]) * 1024
print(json.dumps({{"seconds": seconds, "peak": peak,
                  "model": model.memory_bytes() if model else 0}}))
"""


def write_interactions(path: Path, users: int, per_user: int, movies: int, seed: int = 1) -> dict:
    """Synthetic interactions as 4 Parquet parts; their row count and pandas deep size."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    user = np.repeat(np.arange(1, users + 1), per_user)
    taste = rng.integers(0, 10, users).repeat(per_user)
    movie = taste * (movies // 10) + rng.zipf(1.3, len(user)) % (movies // 10)
    rated = rng.random(len(user)) < 0.5
    frame = pd.DataFrame(
        {
            "user_id": user,
            "movie_id": np.char.add("movie+", movie.astype(str)).astype(object),
            "rating": np.where(rated, rng.integers(1, 6, len(user)), np.nan),
            "strength": rng.random(len(user)) + 0.5,
            "event_time": pd.Timestamp("2025-01-01")
            + pd.to_timedelta(rng.integers(0, 86_400 * 60, len(user)), unit="s"),
        }
    ).drop_duplicates(["user_id", "movie_id"])
    path.mkdir(parents=True)
    for k, start in enumerate(range(0, len(frame), -(-len(frame) // 4))):
        part = frame.iloc[start : start + -(-len(frame) // 4)]
        part.to_parquet(path / f"part-{k}.parquet", coerce_timestamps="us", index=False)
    return {"rows": len(frame), "deep": int(frame.memory_usage(deep=True).sum())}


def run_child(mode: str, family: str, path: Path) -> dict:
    """One fit in a fresh process: its seconds, Python peak RSS and model bytes."""
    code = CHILD.format(
        repo=str(REPO), mode=mode, family=family, params=FAMILIES[family], path=str(path)
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--per-user", type=int, default=20)
    parser.add_argument("--movies", type=int, default=5_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-spark-training-") as tmp:
        path = Path(tmp) / "train"
        data = write_interactions(path, args.users, args.per_user, args.movies)
        print(f"{data['rows']:,} interactions; pandas frame {data['deep'] / 1e6:.1f} MB deep")
        base = run_child("import only", "item_knn", path)
        print(f"import only: Python peak RSS {base['peak'] / 1e6:.0f} MB")
        print(f"{'family':<10}{'input':<8}{'load+fit s':>11}{'peak RSS MB':>13}{'model MB':>10}")
        for family in FAMILIES:
            for mode in ("pandas", "spark"):
                r = run_child(mode, family, path)
                print(
                    f"{family:<10}{mode:<8}{r['seconds']:>11.1f}"
                    f"{r['peak'] / 1e6:>13.0f}{r['model'] / 1e6:>10.1f}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
