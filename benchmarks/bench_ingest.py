"""Ingest benchmark: Kafka -> validated Parquet snapshot, lines/s and peak memory.

Produces N synthetic movielog lines (default 10,000,000; ~1% malformed) into a fresh
3-partition topic, then runs `--runs` times, each in a fresh process and a fresh lake:
ingest (jobs.ingest.snapshot) + Great Expectations validation (jobs.ingest.validate,
private Postgres schema).
Prints the median lines/s of ingest alone and of ingest + validation, and the peak RSS.

Run: `python -m benchmarks.bench_ingest [--lines 10000000] [--runs 3]` (Kafka and Postgres up).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent


def synthetic_lines(n: int, seed: int = 1):
    """n distinct lines: 90% watch, 8% rate, 1% reco, 1% malformed; time moves forward."""
    import numpy as np

    rng = np.random.default_rng(seed)
    users = rng.integers(1, 1_000_000, n)
    movies = rng.integers(1, 27_000, n)
    kinds = rng.random(n)
    base = np.datetime64("2025-03-01T00:00:00")
    for i in range(n):
        t = str(base + np.timedelta64(i // 50, "s"))
        u = int(users[i])
        k = kinds[i]
        if k < 0.90:
            line = f"{t},{u},GET /data/m/movie+number+{movies[i]}+1999/{i % 120}.mpg"
        elif k < 0.98:
            line = f"{t},{u},GET /rate/movie+number+{movies[i]}+1999={1 + i % 5}"
        elif k < 0.99:
            line = (
                f"{t},{u},recommendation request 127.0.0.1:8082, status 200, "
                f"result: movie+number+1+1999, movie+number+{movies[i]}+1999, {i % 300} ms"
            )
        else:
            line = f"{t},u{u},GET /rate/movie+number+{movies[i]}+1999=9"
        yield str(u).encode(), line.encode()


def produce(bootstrap: str, topic: str, n: int) -> float:
    """Write n lines into topic; seconds taken."""
    from confluent_kafka import Producer
    from tqdm import tqdm

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "batch.num.messages": 10000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    started = time.perf_counter()
    for key, value in tqdm(synthetic_lines(n), total=n, unit="line", desc="produce"):
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(120) == 0, "lines left undelivered"
    return time.perf_counter() - started


def child(topic: str, database_url: str) -> None:
    """One measured run in this (fresh) process: ingest + validate; prints JSON."""
    from jobs.ingest import lake, validate
    from jobs.ingest import snapshot as ingest

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        root = Path(tmp) / "lake"
        started = time.perf_counter()
        result = ingest.ingest(topic=topic, root=root, database_url=database_url)
        ingested = time.perf_counter()
        outcome = validate.validate_snapshot(
            result.snapshot_id, root=root, database_url=database_url, var_dir=Path(tmp)
        )
        validated = time.perf_counter()
        with_hashes = lake.read_manifest(result.path)
        print(
            json.dumps(
                {
                    "lines": result.manifest["lines_read"],
                    "rejects": result.manifest["row_counts"]["rejects"],
                    "ingest_s": ingested - started,
                    "total_s": validated - started,
                    "status": outcome.status,
                    "files": len(with_hashes["files"]),
                    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                }
            )
        )


def private_schema(database_url: str) -> tuple[str, str]:
    import psycopg2

    from contracts import db

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {schema}")
    conn.close()
    sep = "&" if "?" in database_url else "?"
    url = f"{database_url}{sep}options={quote(f'-csearch_path={schema}')}"
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(db.read_sql("schema/020_snapshots.sql"))
    conn.close()
    return schema, url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ingest throughput and memory")
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--child", nargs=2, metavar=("TOPIC", "DATABASE_URL"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0

    import psycopg2
    from confluent_kafka.admin import AdminClient

    from contracts import settings
    from ops import services

    cfg = settings.load()
    topic = f"bench-ingest-{uuid.uuid4().hex[:10]}"
    services.create_topic(cfg.kafka_bootstrap_servers, topic, partitions=3)
    schema, url = private_schema(cfg.database_url)
    runs = []
    try:
        produce_s = produce(cfg.kafka_bootstrap_servers, topic, args.lines)
        print(f"produced {args.lines:,} lines in {produce_s:.1f} s", flush=True)
        for i in range(args.runs):
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_ingest", "--child", topic, url],
                cwd=REPO, env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            run = json.loads(out.stdout.strip().splitlines()[-1])
            runs.append(run)
            print(f"run {i + 1}: {json.dumps(run)}", flush=True)
            with psycopg2.connect(url) as conn, conn.cursor() as cur:
                cur.execute("DELETE FROM snapshots")
            conn.close()
    finally:
        admin = AdminClient({"bootstrap.servers": cfg.kafka_bootstrap_servers})
        for future in admin.delete_topics([topic], operation_timeout=30).values():
            future.result()
        with psycopg2.connect(cfg.database_url) as conn, conn.cursor() as cur:
            cur.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()

    lines = runs[0]["lines"]
    ingest_rate = statistics.median(r["lines"] / r["ingest_s"] for r in runs)
    total_rate = statistics.median(r["lines"] / r["total_s"] for r in runs)
    rss = max(r["peak_rss_mb"] for r in runs)
    print()
    print(f"| ingest, {lines:,} lines, 3 partitions, {len(runs)} runs | median |")
    print("|---|---|")
    print(f"| Kafka -> Parquet (lines/s) | {ingest_rate:,.0f} |")
    print(f"| Kafka -> validated Parquet, incl. GX (lines/s) | {total_rate:,.0f} |")
    print(f"| seconds, ingest + validate | {statistics.median(r['total_s'] for r in runs):.1f} |")
    print(f"| peak RSS (MB, max over runs) | {rss:,.0f} |")
    print(f"| rejects | {runs[0]['rejects']:,} |")
    print("target: >= 150,000 lines/s on 2 cores, memory bounded")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
