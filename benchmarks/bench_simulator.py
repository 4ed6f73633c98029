"""Simulator benchmarks: backfill throughput into Kafka, scenario world build time and memory.

Run: `python -m benchmarks.bench_simulator [--runs 3] [--days 2] [--skip-scenario]`
(needs Kafka up: `python -m ops.services up`). Prints a table of medians.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc
import uuid

import psutil

from contracts import settings as settings_mod
from simulator.generator import Simulation
from simulator.sinks import KafkaSink
from simulator.world import World

START = "2025-03-14"


def backfill_into_kafka(world: World, days: int, bootstrap: str) -> tuple[int, float]:
    """(lines, seconds) of one backfill into a fresh topic, delivery included."""
    from confluent_kafka.admin import AdminClient

    from ops import services

    topic = f"bench-sim-{uuid.uuid4().hex[:10]}"
    services.create_topic(bootstrap, topic, partitions=3)
    try:
        sink = KafkaSink(bootstrap, topic)
        started = time.perf_counter()
        lines = 0
        for batch in Simulation(world, START).batches(days):
            sink.send(batch.keys, batch.values)
            lines += len(batch.values)
        sink.close()
        return lines, time.perf_counter() - started
    finally:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for future in admin.delete_topics([topic], operation_timeout=10).values():
            future.result()


def generate_only(world: World, days: int) -> tuple[int, float]:
    started = time.perf_counter()
    lines = sum(len(b.values) for b in Simulation(world, START).batches(days))
    return lines, time.perf_counter() - started


def build_scenario() -> tuple[float, float, float]:
    """(seconds, tracemalloc peak MiB, RSS growth MiB) to build the scenario world."""
    gc.collect()
    rss_before = psutil.Process().memory_info().rss
    tracemalloc.start()
    started = time.perf_counter()
    world = World("scenario", 42)
    _ = world.movie_vectors
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_growth = psutil.Process().memory_info().rss - rss_before
    del world
    return seconds, peak / 2**20, rss_growth / 2**20


def _rate(runs: list[tuple[int, float]]) -> str:
    rates = [n / s for n, s in runs]
    return f"{statistics.median(rates):,.0f} lines/s (min {min(rates):,.0f}, max {max(rates):,.0f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--days", type=int, default=2, help="simulated days per backfill run")
    parser.add_argument("--scale", default="small")
    parser.add_argument("--skip-scenario", action="store_true")
    args = parser.parse_args(argv)
    bootstrap = settings_mod.load().kafka_bootstrap_servers
    world = World(args.scale, 42)
    rows = []

    gen = [generate_only(world, args.days) for _ in range(args.runs)]
    rows.append(
        (f"generate only ({args.scale}, {args.days} d)", f"{gen[0][0]:,} lines", _rate(gen))
    )
    runs = [backfill_into_kafka(world, args.days, bootstrap) for _ in range(args.runs)]
    rows.append(
        (f"backfill into Kafka ({args.scale}, {args.days} d)", f"{runs[0][0]:,} lines",
         _rate(runs) + " (target >= 100,000)")
    )  # fmt: skip
    if not args.skip_scenario:
        builds = [build_scenario() for _ in range(args.runs)]
        rows.append(
            ("build scenario world (1M users, 27k+ movies)",
             f"{statistics.median(b[0] for b in builds):.2f} s",
             f"peak {statistics.median(b[1] for b in builds):,.0f} MiB traced, "
             f"RSS +{statistics.median(b[2] for b in builds):,.0f} MiB")
        )  # fmt: skip
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    print(f"\nsimulator benchmark (median of {args.runs} runs, {psutil.cpu_count()} cpus)")
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, width, strict=True)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
