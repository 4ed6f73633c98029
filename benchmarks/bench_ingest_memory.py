"""Ingest memory as history grows: peak RSS of validate's drift facts, derive and catalog sync.

Builds a synthetic lake (no Kafka: lines are parsed and written the way ingest writes them) of
`--snapshots` accepted snapshots of `--lines` lines each (sessions of consecutive minutes by
`--users` users over `--movies` movies, ratings, recommendation requests), registered in a
private Postgres schema. Then, at 1x history and again after growing it to `--growth`x, each
step handles the newest snapshot in a fresh process, and that process's peak RSS is reported:

- validate: `validate.aggregates` of the newest snapshot (reconciliation, hashes, offsets,
  drift against up to 24 accepted references);
- derive: `derive.write_derived` over all accepted snapshots, the table already covering all
  but the newest (the hourly steady state);
- catalog: `catalog.sync` with every id but the newest snapshot's already fetched (a stub API).

"before" runs the same step with the modules as they were before issue 13 (read from git at
BEFORE), which read every snapshot's columns each time; "after" is the working tree.
"import only" is the RSS of a process that only imports them.

Run: `make bench BENCH=bench_ingest_memory` or
`python -m benchmarks.bench_ingest_memory [--snapshots 3] [--growth 10] [--lines 200000]`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BEFORE = "585acc9"  # the last commit before issue 13's ingest changes
STEPS = ("validate", "derive", "catalog")


# --- the synthetic lake (parent process) -------------------------------------------------------
def snapshot_lines(seq: int, n: int, users: int, movies: int, seed: int) -> list[bytes]:
    """n lines of one hour-long day slice: watch sessions, ratings, reco requests."""
    import numpy as np

    rng = np.random.default_rng(seed + seq)
    base = np.datetime64("2025-01-01T00:00:00") + np.timedelta64(seq, "D")
    out: list[bytes] = []
    while len(out) < n:
        user, movie = int(rng.integers(1, users + 1)), int(rng.integers(1, movies + 1))
        start, length = int(rng.integers(0, 80_000)), int(rng.integers(20, 100))
        for minute in range(length):
            t = base + np.timedelta64(start + minute * 60, "s") + np.timedelta64(len(out), "ms")
            out.append(f"{t},{user},GET /data/m/movie+{movie}+1999/{minute}.mpg".encode())
        if rng.random() < 0.5:
            t = base + np.timedelta64(start + length * 60, "s")
            stars = int(rng.integers(1, 6))
            out.append(f"{t},{user},GET /rate/movie+{movie}+1999={stars}".encode())
        if rng.random() < 0.2:
            t = base + np.timedelta64(start, "s")
            out.append(
                f"{t},{user},recommendation request 10.0.0.1:8082, status 200, "
                f"result: movie+{movie}+1999, movie+1+1999, 41 ms".encode()
            )
    return out[:n]


def write_snapshot(root: Path, seq: int, lines: list[bytes], first_offset: int) -> Path:
    """One complete snapshot of `lines` (partition 0), written as ingest writes one."""
    import numpy as np

    from jobs.ingest import lake, parse
    from jobs.ingest import snapshot as ingest

    snapshot_id = lake.snapshot_id(seq)
    tmp, final = lake.tmp_path(snapshot_id, root), lake.snapshot_path(snapshot_id, root)
    tmp.mkdir(parents=True)
    writers, read = ingest.PartWriters(tmp), ingest.ReadCounts()
    for at in range(0, len(lines), ingest.CHUNK_LINES):
        chunk = lines[at : at + ingest.CHUNK_LINES]
        offsets = np.arange(first_offset + at, first_offset + at + len(chunk))
        tables = parse.parse_batch(chunk, np.zeros(len(chunk), np.int32), offsets, read.seen)
        ingest._write_chunk(writers, tables, read.span)
        read.lines += len(chunk)
        read.reasons.update(tables["rejects"]["reason"].to_pylist())
    writers.close()
    plan = ingest.Plan(snapshot_id, "movielog", {0: (first_offset, first_offset + len(lines))})
    lake.write_manifest(tmp, ingest.snapshot_manifest(plan, tmp, writers.files, read))
    os.rename(tmp, final)
    return final


def grow(root: Path, url: str, upto: int, args) -> list[Path]:
    """Add accepted snapshots until the lake holds `upto`; all their directories."""
    from jobs.ingest import lake

    have = len(lake.completed_snapshots(root))
    for seq in range(have + 1, upto + 1):
        lines = snapshot_lines(seq, args.lines, args.users, args.movies, args.seed)
        path = write_snapshot(root, seq, lines, (seq - 1) * args.lines)
        lake.register(lake.read_manifest(path), path, url)
        lake.set_status(path.name, "accepted", None, url)
    return [lake.snapshot_path(lake.snapshot_id(s), root) for s in range(1, upto + 1)]


class KnowsEveryone:
    """A metadata API stub for catalog.sync: every id is known (no network)."""

    base_url = "http://stub.invalid"
    broken = False
    last_error = None

    def probe(self, kind, ident, timeout=None):
        return None

    def get(self, kind, ident):
        return "known", ({"age": 30} if kind == "user" else {"title": str(ident)})


def steady_state(root: Path, url: str, snapshots: list[Path]) -> None:
    """What earlier runs left: summaries, derived tables and catalogue up to the previous one."""
    from jobs.ingest import catalog, derive, summary

    for path in snapshots[:-1]:
        summary.load(path)
    derive.write_derived(snapshots[:-1], root=root)
    catalog.sync(snapshots=snapshots[:-1], database_url=url, root=root, client=KnowsEveryone())
    from contracts import db

    with db.engine(url).begin() as conn:  # the watermark those runs would have left
        ids = [p.name for p in snapshots[:-1]]
        conn.execute(catalog.text_of("ingest/catalog_synced.sql"), {"ids": ids})


# --- one measured step (child process) ---------------------------------------------------------
def old_module(name: str):
    """jobs/ingest/<name>.py as it was at BEFORE, imported under another name."""
    source = subprocess.run(
        ["git", "show", f"{BEFORE}:jobs/ingest/{name}.py"],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp(prefix="bench-before-")) / f"before_{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"before_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run_step(step: str, impl: str, root: Path, url: str) -> None:
    from jobs.ingest import catalog, derive, lake, validate

    before = root.parent / "before"
    modules = {"validate": validate, "derive": derive, "catalog": catalog}
    module = modules[step] if impl == "after" else old_module(step)
    if step == "validate":
        newest = lake.snapshot_path(lake.snapshot_id(len(lake.completed_snapshots(root))), root)
        manifest = lake.read_manifest(newest)
        limits = validate.thresholds()
        refs = validate.reference_snapshots(manifest, root, limits["reference_snapshots"], url)
        extra = [lake.previous_complete(manifest, root)] if impl == "after" else []
        module.aggregates(newest, manifest, refs, limits, *extra)
    elif step == "derive":
        paths = [ref.path for ref in lake.accepted_snapshots(database_url=url)]
        module.write_derived(paths, root=root if impl == "after" else before)
    elif step == "catalog":
        out = root if impl == "after" else before
        module.sync(database_url=url, root=out, client=KnowsEveryone())


def child(step: str, impl: str, root: str, url: str) -> None:
    """Run one step in this fresh process; print its peak RSS and seconds as JSON."""
    import pandas  # noqa: F401 - the same imports in every child, so "import only" is fair
    import pyarrow.parquet  # noqa: F401

    import jobs.ingest.catalog
    import jobs.ingest.derive
    import jobs.ingest.validate  # noqa: F401

    started = time.perf_counter()
    if step != "baseline":
        run_step(step, impl, Path(root), url)
    print(json.dumps({"peak_mb": peak_rss_mb(), "seconds": time.perf_counter() - started}))


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: that one keeps the high-water mark of
    the parent it was forked from (the driver, which holds the lake it built), across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(step: str, impl: str, root: Path, url: str) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_ingest_memory", "--child", step, impl]
    cmd += [str(root), url]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{step}/{impl} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- driver --------------------------------------------------------------------------------------
def round_of(root: Path, url: str, count: int, args) -> list[dict]:
    """Grow the lake to `count` snapshots, set up the steady state, measure every step."""
    snapshots = grow(root, url, count, args)
    steady_state(root, url, snapshots)
    rows = []
    for step in STEPS:
        for impl in ("before", "after"):
            got = measure(step, impl, root, url)
            rows.append({"snapshots": count, "step": step, "impl": impl, **got})
            print(f"  {count} snapshots, {step}, {impl}: {got}", flush=True)
    return rows


def table(rows: list[dict], baseline: float, args) -> None:
    counts = sorted({r["snapshots"] for r in rows})
    lines = [f"{c * args.lines:,}" for c in counts]
    print()
    print(
        f"peak RSS (MB) per step; {args.lines:,} lines a snapshot; import only: {baseline:.0f} MB"
    )
    head = " | ".join(f"{c} snapshots ({n} lines)" for c, n in zip(counts, lines, strict=True))
    print(f"| step | impl | {head} | growth |")
    print("|---|---|" + "---|" * len(counts) + "---|")
    for step in STEPS:
        for impl in ("before", "after"):
            got = {r["snapshots"]: r for r in rows if r["step"] == step and r["impl"] == impl}
            cells = " | ".join(
                f"{got[c]['peak_mb']:.0f} ({got[c]['seconds']:.1f} s)" for c in counts
            )
            first, last = got[counts[0]]["peak_mb"], got[counts[-1]]["peak_mb"]
            print(f"| {step} | {impl} | {cells} | {last / first:.2f}x |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ingest peak RSS as history grows")
    parser.add_argument("--snapshots", type=int, default=3, help="history at 1x")
    parser.add_argument("--growth", type=int, default=10)
    parser.add_argument("--lines", type=int, default=200_000, help="lines per snapshot")
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--movies", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    from contracts import settings
    from tests.conftest import private_schema

    files = ("020_snapshots.sql", "021_catalog.sql")
    with (
        tempfile.TemporaryDirectory(prefix="bench-ingest-memory-") as tmp,
        private_schema(settings.load().database_url, files) as url,
    ):
        root = Path(tmp) / "lake"
        baseline = measure("baseline", "after", root, url)["peak_mb"]
        rows = round_of(root, url, args.snapshots, args)
        rows += round_of(root, url, args.snapshots * args.growth, args)
    table(rows, baseline, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
