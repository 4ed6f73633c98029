"""The spam defence against the simulator's ledger, by attack size (benchmarks/spam_defence.py).

Per attack size (accounts per attack: the simulator's default 30-80, smaller and larger), one
world run (tiny world, seed 42, 7 days from 2025-03-01, rating_spam = 0.003 per 15-minute
window) through a fresh Kafka topic into a private lake; then the detector's precision and
recall against the ledger's accounts, and the attacked movies' places in the lists built
undefended, defended (detector's exclusion) and clean (the ledger's exclusion = the same seed
without the attack): the best popularity rank among the attacked movies (the list unknown
users get; "-" = not ranked at all) and how many regular users have an attacked movie in
their item_knn / svd_surprise top 20.

Prints one row per size and writes them to <RECS_VAR_DIR>/bench/spam_defence.json.
Run: `python -m benchmarks bench_spam_defence`, or
`python -m benchmarks.bench_spam_defence [--sizes 5-5,30-80] [--days 7] [--scale tiny]`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks import spam_defence as sd
from contracts import settings

SIZES = ("3-3", "5-5", "10-10", "30-80", "100-100")
SERVED_SIZE = "30-80"  # the simulator's default attack size
SPAM_RATE = 0.003
HEADER = (
    f"{'accounts/attack':>15} {'attacks':>7} {'spam':>5} {'flagged':>7} {'TP':>4} "
    f"{'precision':>9} {'recall':>6}  {'pop. rank u/d/c':>16}  "
    f"{'knn users u/d/c':>16}  {'svd users u/d/c':>16} {'s':>5}"
)


def best_rank(places: dict[str, Any], movies: list[str]) -> str:
    """The best popularity rank among the attacked movies ("-": none is ranked)."""
    ranks = [places[f"popularity/{m}"]["rank"] for m in movies]
    ranks = [r for r in ranks if r is not None]
    return str(min(ranks)) if ranks else "-"


def users_with(places: dict[str, Any], family: str, movies: list[str]) -> int:
    """Regular users with any attacked movie in their `family` list (summed over movies)."""
    return sum(places[f"{family}/{m}"]["users_with_it"] for m in movies)


def row_text(size: str, result: dict[str, Any], seconds: float) -> str:
    """One printed row of the table."""
    d, movies, p = result["detection"], result["attacked"], result["places"]
    names = ("undefended", "defended", "clean")
    pop = "/".join(best_rank(p[n], movies) for n in names)
    knn = "/".join(str(users_with(p[n], "item_knn", movies)) for n in names)
    svd = "/".join(str(users_with(p[n], "svd_surprise", movies)) for n in names)
    return (
        f"{size:>15} {len(movies):>7} {d['spam']:>5} {d['flagged']:>7} {d['true_positives']:>4} "
        f"{d['precision']:>9.3f} {d['recall']:>6.3f}  {pop:>16}  {knn:>16}  {svd:>16} "
        f"{seconds:>5.0f}"
    )


def served_text(served: dict[str, Any]) -> str:
    """The gunicorn lookups of the default attack, one line per dataset."""
    lines = [
        f"{'':>15} through gunicorn ({sd.SERVED_FAMILY} + popularity), "
        "answers holding an attacked movie:"
    ]
    for name, part in served.items():
        known, unknown = part["known"], part["unknown"]
        lines.append(
            f"{'':>15} {name:>10}: regular users {known['with_attacked']}/{known['asked']}, "
            f"unknown users {unknown['with_attacked']}/{unknown['asked']}"
        )
    return "\n".join(lines)


def measure_size(kafka: str, size: str, scale: str, days: int, work: Path, spark) -> dict[str, Any]:
    """One world run with attacks of `size` accounts ("lo-hi"), measured."""
    from confluent_kafka.admin import AdminClient

    lo, hi = (int(x) for x in size.split("-"))
    topic = f"bench-spam-{uuid.uuid4().hex[:8]}"
    try:
        run = sd.simulate_into_lake(
            kafka, topic, work / "lake", scale=scale, days=days, spam_rate=SPAM_RATE,
            spam_accounts=(lo, hi),
        )  # fmt: skip
    finally:
        AdminClient({"bootstrap.servers": kafka}).delete_topics([topic])
    result = {"size": size, "lines": run.lines, **sd.measure(run, work, spark)}
    if size == SERVED_SIZE:  # the default attack, also through real gunicorn
        paths = {name: Path(p) for name, p in result["datasets"].items()}
        users = sd.regular_users(run, paths["clean"])
        result["served"] = sd.served_through_gunicorn(paths, run, users)
    return result


def main(argv: list[str] | None = None) -> int:
    """Measure every size, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--scale", default="tiny")
    args = parser.parse_args(argv)
    from jobs.spark import get_spark

    cfg = settings.load()
    spark = get_spark("bench_spam_defence")
    rows = []
    print(HEADER, flush=True)
    for size in args.sizes.split(","):
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="bench-spam-") as tmp:
            result = measure_size(
                cfg.kafka_bootstrap_servers, size, args.scale, args.days, Path(tmp), spark
            )
        seconds = time.perf_counter() - started
        print(row_text(size, result, seconds), flush=True)
        if "served" in result:
            print(served_text(result["served"]), flush=True)
        rows.append({**result, "seconds": round(seconds, 1), "scale": args.scale})
    out = cfg.var_dir / "bench" / "spam_defence.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2, default=str))
    print(f"rows written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
