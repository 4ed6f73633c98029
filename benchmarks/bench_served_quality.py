"""Served quality: NDCG@20 of the lists the real serving tier answers, against popularity.

Per data shape (the simulator's stable and churn worlds, MovieTweetings 100k when the
read-only sample is there), `measure_shape`:
1. parses the movielog lines with jobs.ingest.parse and holds back each user's later 20% of movies
   (jobs.train.served_quality.hold_back_later; rule in its docstring); only the kept lines go on;
2. replays the kept lines into a FRESH Kafka topic (`python -m simulator replay`);
3. runs the platform in private state, in a child process: a throwaway Postgres cluster
   (tests.support.harness.PrivateDatabase: its own roles, schema and serving_pointer), a private
   RECS_VAR_DIR and KAFKA_TOPIC; jobs.ingest.snapshot -> jobs.ingest.validate (validate +
   mark, as the movielog_ingest DAG) -> jobs.pipeline.run_all (dataset, train, evaluate,
   gate, refit, score, publish, popularity);
4. starts real gunicorn (tests.support.harness.ServingProcess) on that database and GETs
   /recommend/<user> for every user with a relevant held-back movie;
5. scores the served lists and an all-time popularity list over the kept events
   (jobs.train.served_quality.served_vs_popularity: paired bootstrap 95% intervals over users).

Prints one row per shape and writes the rows to <RECS_VAR_DIR>/bench/served_quality.json.
Stage seconds: ingest and validate timed here, the rest as jobs.pipeline.run_all reports them
(dataset, train, evaluate, gate, refit, score, publish, popularity).

Run: `python -m benchmarks bench_served_quality`, or
`python -m benchmarks.bench_served_quality [--shapes stable,movietweetings] [--days 28]`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHAPES = ("stable", "churn", "movietweetings")
MT_DIR = Path("/work/shared/data/movietweetings-100k")
START = "2025-03-01"  # a fixed first simulated day keeps the worlds reproducible
CHUNK_LINES = 500_000
RESULTS = Path("bench") / "served_quality.json"
PIPELINE_FILE = "pipeline.json"

log = logging.getLogger("bench.served_quality")


# ------------------------------------------------------------------ the worlds as files
def _run(cmd: list[str], timeout: float, env: dict | None = None) -> str:
    """Run a command from the repository; its stdout; RuntimeError with stderr if it fails."""
    out = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} … failed ({out.returncode}): {out.stderr[-2000:]}")
    return out.stdout


def simulate(shape: str, out: Path, scale: str, days: int, seed: int = 42) -> Path:
    """`python -m simulator backfill` of `days` days into the movielog file `out`."""
    cmd = [
        sys.executable, "-m", "simulator", "backfill", "--scale", scale, "--days", str(days),
        "--start", START, "--seed", str(seed), "--out", str(out),
    ]  # fmt: skip
    if shape != "stable":
        cmd += ["--shape", shape]
    _run(cmd, 1800)
    return out


def import_movietweetings(out: Path, data_dir: Path = MT_DIR) -> Path:
    """MovieTweetings ratings.dat (+ movies.dat) as movielog lines in `out` (the importer)."""
    cmd = [
        sys.executable, "-m", "simulator", "import-ratings", str(data_dir / "ratings.dat"),
        "--format", "movietweetings", "--movies", str(data_dir / "movies.dat"), "--out", str(out),
    ]  # fmt: skip
    _run(cmd, 600)
    return out


# ------------------------------------------------------------------ lines <-> events
def read_events(lines_path: Path, chunk: int = CHUNK_LINES):
    """(events, recos, n_lines) of a movielog file, parsed by jobs.ingest.parse like ingest does.

    events: user_id, movie_id (categorical), event_time, kind, minute, rating, line (0-based
    line number); recos: user_id, event_time, line of recommendation-request lines. Rejected
    lines are in neither and are replayed as they are. Duplicate lines are NOT dropped here
    (ingest drops them): each copy is held back or kept by its own time, so a later copy of a
    held line can never reach the platform.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from contracts.names import ITEM_COL, MINUTE_COL, OFFSET_COL, RATING_COL, TIME_COL, USER_COL
    from jobs.ingest import parse
    from jobs.train.served_quality import KIND_COL, RATE, WATCH

    parts: list[pa.Table] = []
    recos: list[pa.Table] = []
    n_lines = 0

    def flush(values: list[bytes]) -> None:
        nonlocal n_lines
        offsets = np.arange(n_lines, n_lines + len(values), dtype=np.int64)
        tables = parse.parse_batch(values, np.zeros(len(values), np.int32), offsets)
        n_lines += len(values)
        for kind, table, extra in (
            (WATCH, tables["watch"], MINUTE_COL),
            (RATE, tables["rate"], RATING_COL),
        ):
            n = table.num_rows
            cols = {
                USER_COL: table[USER_COL],
                ITEM_COL: table[ITEM_COL],
                TIME_COL: table[TIME_COL],
                KIND_COL: pa.array([kind] * n),
                MINUTE_COL: table[MINUTE_COL] if extra == MINUTE_COL else pa.nulls(n, pa.int32()),
                RATING_COL: table[RATING_COL] if extra == RATING_COL else pa.nulls(n, pa.int8()),
                "line": table[OFFSET_COL],
            }
            parts.append(pa.table(cols))
        reco = tables["reco_request"]
        recos.append(
            pa.table({USER_COL: reco[USER_COL], TIME_COL: reco[TIME_COL], "line": reco[OFFSET_COL]})
        )

    values: list[bytes] = []
    with lines_path.open("rb") as fh:
        for raw in fh:
            values.append(raw.rstrip(b"\n").removesuffix(b"\r"))
            if len(values) >= chunk:
                flush(values)
                values = []
    if values:
        flush(values)
    table = pa.concat_tables(parts).combine_chunks()
    table = table.set_column(
        table.schema.get_field_index(ITEM_COL), ITEM_COL, pc.dictionary_encode(table[ITEM_COL])
    )
    events = table.to_pandas()
    events[KIND_COL] = events[KIND_COL].astype("category")
    return events, pa.concat_tables(recos).to_pandas(), n_lines


def held_lines(held, recos, n_lines: int):
    """Mask of the file's lines held back: the held events, and each user's recommendation
    requests at or after that user's cut time (the first held event time)."""
    import numpy as np

    from contracts.names import TIME_COL, USER_COL

    mask = np.zeros(n_lines, dtype=bool)
    mask[held["line"].to_numpy()] = True
    if len(recos):
        cut = recos[USER_COL].map(held.groupby(USER_COL)[TIME_COL].min())
        later = (cut.notna() & (recos[TIME_COL] >= cut)).to_numpy()
        mask[recos["line"].to_numpy()[later]] = True
    return mask


def write_kept(lines_path: Path, held_mask, out: Path) -> int:
    """Copy the lines of `lines_path` not in `held_mask` to `out`, in order; lines written."""
    written = 0
    with lines_path.open("rb") as src, out.open("wb") as dst:
        for i, raw in enumerate(src):
            if not held_mask[i]:
                dst.write(raw if raw.endswith(b"\n") else raw + b"\n")
                written += 1
    return written


# ------------------------------------------------------------------ the platform, privately
def pipeline_child(workdir: Path, families: list[str] | None) -> int:
    """In this process's environment (DATABASE_URL, RECS_VAR_DIR, KAFKA_TOPIC set by the
    parent): ingest -> validate -> mark -> run_all; writes workdir/pipeline.json."""
    from jobs import pipeline
    from jobs.ingest import snapshot as ingest
    from jobs.ingest import validate

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    seconds: dict[str, float] = {}
    started = time.time()
    result = ingest.ingest()
    seconds["ingest"] = round(time.time() - started, 1)
    if result.snapshot_id is None:
        raise RuntimeError("ingest found no lines in the topic")
    began = time.time()
    outcome = validate.validate_snapshot(result.snapshot_id)
    validate.mark(result.snapshot_id)  # raises SnapshotQuarantined: nothing is trained then
    seconds["validate"] = round(time.time() - began, 1)
    began = time.time()
    kwargs = {"families": families} if families else {}
    summary = pipeline.run_all(**kwargs)
    seconds.update(summary["seconds"])
    seconds["run_all"] = round(time.time() - began, 1)
    from jobs.train import dataset

    report = {
        "evaluation": dataset.read_manifest(summary["dataset"]).get("evaluation"),
        "snapshot": result.snapshot_id,
        "lines_ingested": result.manifest["lines_read"],
        "row_counts": result.manifest["row_counts"],
        "validation": outcome.status,
        "summary": summary,
        "seconds": seconds,
    }
    (workdir / PIPELINE_FILE).write_text(json.dumps(report, indent=2, default=str))
    return 0


def run_pipeline(
    workdir: Path, database_url: str, topic: str, families: list[str] | None, timeout: float
) -> dict[str, Any]:
    """pipeline_child in a fresh process on private state; its pipeline.json (log in workdir)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "DATABASE_URL": database_url,
        "RECS_VAR_DIR": str(workdir / "var"),
        "KAFKA_TOPIC": topic,
    }
    cmd = [sys.executable, "-m", "benchmarks.bench_served_quality", "--child", str(workdir)]
    if families:
        cmd += ["--families", ",".join(families)]
    with (workdir / "pipeline.log").open("wb") as out:
        proc = subprocess.run(
            cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
        )
    if proc.returncode != 0:
        tail = (workdir / "pipeline.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"pipeline failed ({proc.returncode}); log tail:\n{tail}")
    return json.loads((workdir / PIPELINE_FILE).read_text())


def delete_topic(bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics([topic], operation_timeout=10).values():
        future.result()


def measure_shape(
    lines_path: str | Path,
    workdir: str | Path,
    shape: str = "",
    families: list[str] | None = None,
    fraction: float = 0.2,
    resamples: int = 2000,
    seed: int = 0,
    workers: int = 8,
    pipeline_timeout: float = 3600,
) -> dict[str, Any]:
    """One data shape end to end (module docstring); the row: quality, counts and seconds."""
    from contracts import settings
    from jobs.train import served_quality as sq
    from ops import services
    from tests.support.harness import PrivateDatabase, ServingProcess, wait_for

    lines_path, workdir = Path(lines_path), Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    began = time.perf_counter()

    events, recos, n_lines = read_events(lines_path)
    kept, held = sq.hold_back_later(events, fraction=fraction)
    relevant = sq.relevant_items(held, kept)
    kept_path = workdir / "kept.log"
    n_kept = write_kept(lines_path, held_lines(held, recos, n_lines), kept_path)
    del events, recos
    seconds["hold_back"] = round(time.perf_counter() - began, 1)

    cfg = settings.load()
    topic = f"served-quality-{uuid.uuid4().hex[:10]}"
    services.create_topic(cfg.kafka_bootstrap_servers, topic, cfg.kafka_partitions)
    database = server = None
    try:
        t = time.perf_counter()
        replay = [sys.executable, "-m", "simulator", "replay", str(kept_path), "--topic", topic]
        _run(replay + ["--bootstrap", cfg.kafka_bootstrap_servers], 1800)
        seconds["replay"] = round(time.perf_counter() - t, 1)

        database = PrivateDatabase().create()
        report = run_pipeline(workdir, database.owner_url, topic, families, pipeline_timeout)
        seconds.update(report["seconds"])

        t = time.perf_counter()
        server = ServingProcess(reader_url=database.reader_url, workers=2).start()
        if report["summary"].get("reco_version"):
            ready = f"{server.base_url}/readyz"
            wait_for(lambda: _status(ready) == 200, 30, f"{ready} answering 200")
        users = relevant["user_id"].unique().tolist()
        lists = sq.fetch_lists(server.base_url, users, workers=workers)
        seconds["fetch"] = round(time.perf_counter() - t, 1)
    finally:
        if server is not None:
            server.stop()
        if database is not None:
            database.destroy()
        delete_topic(cfg.kafka_bootstrap_servers, topic)

    quality = sq.served_vs_popularity(lists, relevant, kept, resamples=resamples, seed=seed)
    versions = sorted({a.model_version for a in lists.values() if a.source == "model"})
    seconds["shape_total"] = round(time.perf_counter() - began, 1)
    return {
        "shape": shape or lines_path.stem,
        "lines": n_lines,
        "lines_kept": n_kept,
        "users_in_log": int(kept["user_id"].nunique()),
        "users_held_back": int(held["user_id"].nunique()),
        **quality.as_dict(),
        "served_model_versions": versions,
        "protocol": "{protocol}: {reason}".format(**report["evaluation"]),
        "gate": report["summary"].get("gate"),
        "reco_version": report["summary"].get("reco_version"),
        "models": report["summary"].get("models"),
        "validation": report["validation"],
        "code": code_state(),
        "seconds": seconds,
    }


def code_state() -> dict[str, Any]:
    """The commit and the files modified in the working tree this measurement ran on."""
    head = _run(["git", "rev-parse", "--short", "HEAD"], 30).strip()
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"], 30)
    return {"commit": head, "modified": sorted(line[3:] for line in status.splitlines())}


def _status(url: str) -> int:
    import requests

    return requests.get(url, timeout=2).status_code


# ------------------------------------------------------------------ table
def print_rows(rows: list[dict[str, Any]]) -> None:
    from jobs.train.served_quality import ServedQuality

    fields = ServedQuality.__dataclass_fields__
    print(f"{'shape':<15} {ServedQuality.HEADER} {'dataset':>7} {'train':>6} {'refit':>6} "
          f"{'score':>6} {'publish':>7} {'total':>6}")  # fmt: skip
    for row in rows:
        if "skipped" in row or "error" in row:
            print(f"{row['shape']:<15} {_outcome(row)}")
            continue
        quality = ServedQuality(**{k: row[k] for k in fields})
        s = row["seconds"]
        print(
            f"{row['shape']:<15} {quality} {s.get('dataset', 0):>7.0f} {s.get('train', 0):>6.0f} "
            f"{s.get('refit', 0):>6.1f} {s.get('score', 0):>6.1f} {s.get('publish', 0):>7.1f} "
            f"{s['shape_total']:>6.0f}"
        )
    print(
        "NDCG@20 on each user's later 20% of movies (relevant: latest rating >= 4, or unrated "
        "and >= half watched; new to the user), served through HTTP vs all-time popularity "
        "minus each user's kept movies; ratio = served / popularity, paired bootstrap 95% "
        "interval over users; seen = served items already in the user's kept history; pop% = "
        "answers with X-Rec-Source: popular; fail = non-200 answers; wall seconds per stage."
    )
    for row in rows:
        if "gate" in row:
            print(f"  {row['shape']}: {row['protocol']}; gate: {row['gate']}; "
                  f"served {row['served_model_versions']}")  # fmt: skip


def measure_or_skip(shape: str, work: Path, args, families: list[str] | None) -> dict[str, Any]:
    """The shape's row: measured, or {"skipped": why} / {"error": what} (never raises)."""
    if shape == "movietweetings" and not (MT_DIR / "ratings.dat").exists():
        return {"shape": shape, "skipped": f"{MT_DIR / 'ratings.dat'} not found"}
    started = time.perf_counter()
    lines = work / f"{shape}.log"
    try:
        if shape == "movietweetings":
            import_movietweetings(lines)
        else:
            simulate(shape, lines, args.scale, args.days)
        made = round(time.perf_counter() - started, 1)
        row = measure_shape(lines, work, shape, families, args.fraction, args.resamples)
    except Exception as exc:  # noqa: BLE001 - reported in the table; the other shapes go on
        return {"shape": shape, "error": f"{type(exc).__name__}: {exc}"}
    row["seconds"]["make_lines"] = made
    row["seconds"]["shape_total"] = round(time.perf_counter() - started, 1)
    return row


def _outcome(row: dict[str, Any]) -> str:
    if "skipped" in row:
        return f"skipped: {row['skipped']}"
    if "error" in row:
        return f"FAILED: {row['error']}"
    return f"done in {row['seconds']['shape_total']:.0f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--scale", default="small", choices=["tiny", "small"])
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--families", help="comma-separated; default: the pipeline's")
    parser.add_argument("--fraction", type=float, default=0.2)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    families = [f.strip() for f in args.families.split(",") if f.strip()] if args.families else None
    if args.child:
        return pipeline_child(args.child, families)

    from contracts import settings

    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = sorted(set(shapes) - set(SHAPES))
    if unknown:
        print(f"unknown shape(s) {unknown}; use {', '.join(SHAPES)}", file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    for shape in shapes:
        work = Path(tempfile.mkdtemp(prefix=f"served-quality-{shape}-"))
        try:  # one failing shape is reported and the others still run
            rows.append(measure_or_skip(shape, work, args, families))
            print(f"{shape}: {_outcome(rows[-1])}", flush=True)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
    out = settings.load().var_dir / RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2, default=str))
    print_rows(rows)
    print(f"rows written to {out}")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
