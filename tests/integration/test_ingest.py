"""Ingest end to end on real Kafka, Postgres and Great Expectations (simulated streams).

Each test gets a fresh topic, a private Postgres schema (snapshots, movies, users) and its own
RECS_VAR_DIR, so nothing here touches the platform's rows or lake.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jobs.ingest import derive, lake, parse, validate
from jobs.ingest import snapshot as ingest
from ops import services
from tests.conftest import private_schema

pytestmark = pytest.mark.integration

# What each simulator fault kind may legitimately be rejected as (a truncated line can stop
# inside any field).
KIND_REASONS = {
    "truncated": {
        "too_few_fields", "bad_time", "bad_user_id", "unknown_event", "bad_movie_id",
        "bad_minute", "bad_rating", "bad_reco", "empty",
    },
    "wrong_separator": {"too_few_fields", "encoding"},
    "non_numeric_id": {"bad_user_id"},
    "rating_out_of_range": {"bad_rating"},
    "garbage_bytes": {"encoding"},
    "empty_line": {"empty"},
    "extra_field": {"extra_field"},
}  # fmt: skip
ALL_LINE_FAULTS = [*KIND_REASONS, "duplicate", "out_of_order", "unknown_movie"]


@contextmanager
def private_state(postgres: str, var_dir: Path, monkeypatch):
    """DATABASE_URL of a fresh schema holding this area's tables; RECS_VAR_DIR = var_dir."""
    with private_schema(postgres, ("020_snapshots.sql", "021_catalog.sql")) as url:
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("RECS_VAR_DIR", str(var_dir))
        yield url


@pytest.fixture
def isolated(postgres, tmp_path, monkeypatch):
    with private_state(postgres, tmp_path / "var", monkeypatch) as url:
        yield url


def backfill(topic: str, kafka: str, *faults: str, ledger: Path | None = None, days: int = 1):
    """The tiny simulated world's stream (seed 42) into `topic`, optionally with faults."""
    cmd = [
        sys.executable, "-m", "simulator", "backfill", "--scale", "tiny", "--days", str(days),
        "--start", "2025-03-01", "--topic", topic, "--bootstrap", kafka,
    ]  # fmt: skip
    for fault in faults:
        cmd += ["--fault", fault]
    if ledger is not None:
        cmd += ["--ledger", str(ledger)]
    subprocess.run(cmd, check=True, capture_output=True, cwd=services.REPO, timeout=120)


def produce(topic: str, kafka: str, lines: list[bytes]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": kafka, "linger.ms": 20})
    for line in lines:
        producer.produce(topic, value=line, key=line.split(b",")[1] if b"," in line else None)
    assert producer.flush(30) == 0


def read_rejects(path: Path) -> list[dict]:
    files = lake.table_files(path, "rejects")
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def test_clean_stream_accepted_and_rerun_is_noop(kafka, kafka_topic, isolated):
    backfill(kafka_topic, kafka)
    result = ingest.ingest(topic=kafka_topic, chunk_lines=4000)
    assert result.new and result.snapshot_id == "s000001"
    manifest = result.manifest
    counts = manifest["row_counts"]
    assert counts["rejects"] == 0 and counts["watch"] > 1000 and counts["rate"] > 10
    assert manifest["lines_read"] == sum(counts.values())
    assert all(f["sha256"] == lake.sha256_file(result.path / f["path"]) for f in manifest["files"])
    dates = {p.name for p in (result.path / "watch").iterdir()}
    assert "event_date=2025-03-01" in dates and dates <= {
        f"event_date=2025-03-0{d}" for d in (1, 2)
    }

    outcome = validate.validate_snapshot(result.snapshot_id)
    assert outcome.success, outcome.failures
    assert validate.mark(result.snapshot_id) == result.snapshot_id
    row = lake.snapshot_row(result.snapshot_id)
    assert row["status"] == "accepted" and row["validated_at"] is not None
    refs = lake.accepted_snapshots()
    assert [r.snapshot_id for r in refs] == ["s000001"] and refs[0].path == result.path
    assert lake.accepted_snapshots(start=refs[0].max_event_time.replace(year=2030)) == []
    assert (Path(os.environ["RECS_VAR_DIR"]) / "gx" / "data_docs" / "index.html").exists()

    again = ingest.ingest(topic=kafka_topic)
    assert again.snapshot_id is None and not again.new
    assert [m["snapshot_id"] for m in lake.completed_snapshots(topic=kafka_topic)] == ["s000001"]

    # Derived tables agree with a direct computation over the raw watch rows.
    sessions = derive.watch_sessions([result.path])
    watch = pq.read_table(result.path / "watch").to_pandas()
    assert len(sessions) == len(watch.groupby(["user_id", "movie_id"]))
    first = sessions.iloc[0]
    mine = watch[(watch.user_id == first.user_id) & (watch.movie_id == first.movie_id)]
    assert first.minutes_watched == mine.minute.nunique()
    assert first.max_minute == mine.minute.max()
    assert first.first_time == mine.event_time.min() and first.last_time == mine.event_time.max()
    latest = derive.latest_ratings([result.path])
    assert not latest.duplicated(["user_id", "movie_id"]).any()
    paths = derive.write_derived(root=Path(os.environ["RECS_VAR_DIR"]) / "lake")
    assert pq.read_table(paths["watch_sessions"]).num_rows == len(sessions)


def test_every_fault_reconciled_with_the_ledger(kafka, kafka_topic, isolated, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    backfill(kafka_topic, kafka, *(f"{k}=0.01" for k in ALL_LINE_FAULTS), ledger=ledger)
    records = [json.loads(t) for t in ledger.read_text().splitlines()]
    summary = records.pop()
    assert summary["kind"] == "_summary"
    result = ingest.ingest(topic=kafka_topic, chunk_lines=3000)
    manifest = result.manifest
    assert manifest["lines_read"] == summary["lines"]

    rejects = read_rejects(result.path)
    by_line = Counter((r["raw"], r["reason"]) for r in rejects)
    expected_rejects = 0
    for rec in records:
        line = base64.b64decode(rec["line_b64"])
        if rec["reject"]:
            expected_rejects += 1
            reasons = {reason for (raw, reason), n in by_line.items() if raw == line and n > 0}
            assert reasons & KIND_REASONS[rec["kind"]], (rec["kind"], line, reasons)
            reason = sorted(reasons & KIND_REASONS[rec["kind"]])[0]
            by_line[(line, reason)] -= 1
        elif rec["kind"] == "duplicate":
            expected_rejects += 1
            assert by_line[(line, "duplicate")] > 0, line
            by_line[(line, "duplicate")] -= 1
    # Nothing rejected that the ledger does not explain, nothing explained left unrejected.
    assert all(n == 0 for n in by_line.values()), [k for k, n in by_line.items() if n]
    assert len(rejects) == expected_rejects
    assert manifest["lines_read"] == sum(manifest["row_counts"].values())
    unknown = {
        parse.parse_line(base64.b64decode(r["line_b64"])).fields["movie_id"]
        for r in records
        if r["kind"] == "unknown_movie"
    }
    movies = set(pq.read_table(result.path / "watch", columns=["movie_id"])["movie_id"].to_pylist())
    movies |= set(pq.read_table(result.path / "rate", columns=["movie_id"])["movie_id"].to_pylist())
    assert unknown and unknown <= movies

    # ~7% of lines are malformed: above max_reject_rate, so the snapshot is quarantined.
    outcome = validate.validate_snapshot(result.snapshot_id)
    assert not outcome.success
    assert any(f.startswith("snapshot.reject_rate") for f in outcome.failures), outcome.failures
    with pytest.raises(validate.SnapshotQuarantined, match="reject_rate"):
        validate.mark(result.snapshot_id)
    assert lake.snapshot_row(result.snapshot_id)["status"] == "quarantined"
    assert lake.accepted_snapshots() == []
    docs = Path(os.environ["RECS_VAR_DIR"]) / "gx" / "data_docs" / "validations" / "snapshot"
    page = next(docs.rglob("*.html")).read_text()
    assert "reject_rate" in page and "Failed" in page


def drifted_lines(n_users: int = 150) -> list[bytes]:
    """A day in which only brand-new users watch brand-new movies and give one star."""
    lines = []
    for u in range(n_users):
        user = 10**9 + u
        for minute in range(4):
            lines.append(
                f"2025-03-03T1{u % 10}:00:0{minute},{user},GET /data/m/zz+{u}+2030/{minute}.mpg"
            )
        lines.append(f"2025-03-03T1{u % 10}:10:00,{user},GET /rate/zz+{u}+2030=1")
    return [line.encode() for line in lines]


def test_strong_drift_is_quarantined(kafka, kafka_topic, isolated):
    backfill(kafka_topic, kafka)
    first = ingest.ingest(topic=kafka_topic)
    assert validate.validate_snapshot(first.snapshot_id).success
    validate.mark(first.snapshot_id)

    produce(kafka_topic, kafka, drifted_lines())
    second = ingest.ingest(topic=kafka_topic)
    assert second.snapshot_id == "s000002"
    assert second.manifest["row_counts"]["rejects"] == 0
    # the second snapshot starts exactly where the first ended
    for part, (start, _end) in second.manifest["offsets"].items():
        assert start == first.manifest["offsets"][part][1]
    outcome = validate.validate_snapshot(second.snapshot_id)
    assert not outcome.success
    failed = " ".join(outcome.failures)
    for column in ("new_user_share", "new_movie_share", "rating_kl"):
        assert f"snapshot.{column}" in failed, outcome.failures
    assert outcome.aggregates["reference"] == ["s000001"]
    with pytest.raises(validate.SnapshotQuarantined):
        validate.mark(second.snapshot_id)
    assert [r.snapshot_id for r in lake.accepted_snapshots()] == ["s000001"]
    docs = Path(os.environ["RECS_VAR_DIR"]) / "gx" / "data_docs" / "validations" / "snapshot"
    page = next((docs / "s000002").rglob("*.html")).read_text()
    assert "new_user_share" in page and "rating_kl" in page
    index = validate.build_docs()
    assert "s000002" in Path(index).read_text()


def run_ingest_cli(topic: str, var_dir: Path, crash_at: str | None = None, **popen):
    env = {**os.environ, "RECS_VAR_DIR": str(var_dir)}
    env.pop(ingest.CRASH_ENV, None)
    if crash_at:
        env[ingest.CRASH_ENV] = crash_at
    cmd = [sys.executable, "-m", "jobs.ingest.snapshot", "--topic", topic, "--chunk-lines", "1000"]
    return subprocess.Popen(
        cmd, env=env, cwd=services.REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen
    )


def lake_state(var_dir: Path) -> dict:
    """Complete snapshots of a lake: offsets, counts and file hashes (not created_at)."""
    snaps = lake.completed_snapshots(var_dir / "lake")
    keep = ("snapshot_id", "offsets", "row_counts", "files", "lines_read", "reject_reasons")
    return {m["snapshot_id"]: {k: m[k] for k in keep} for m in snaps}


def test_crash_anywhere_then_rerun_equals_one_clean_run(kafka, kafka_topic, isolated, tmp_path):
    backfill(kafka_topic, kafka, "duplicate=0.01", "truncated=0.01")
    clean = tmp_path / "clean"
    ingest.ingest(topic=kafka_topic, root=clean / "lake", chunk_lines=1000, register=False)
    want = lake_state(clean)
    assert list(want) == ["s000001"]

    crashed = tmp_path / "crashed"
    for point in ("chunk:3", "before_manifest", "before_rename"):
        proc = run_ingest_cli(kafka_topic, crashed, crash_at=point)
        assert proc.wait(timeout=120) == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
        assert lake_state(crashed) == {}  # nothing visible
        assert list((crashed / "lake" / "snapshots").glob("_tmp-*"))  # only the aside copy
    proc = run_ingest_cli(kafka_topic, crashed, crash_at="before_register")
    assert proc.wait(timeout=120) == -signal.SIGKILL
    assert lake_state(crashed) == want and lake.snapshot_row("s000001") is None
    # the rerun finds nothing new, registers the orphan snapshot and cleans up
    proc = run_ingest_cli(kafka_topic, crashed)
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()[-2000:]
    assert lake_state(crashed) == want
    assert lake.snapshot_row("s000001")["status"] == "ingested"
    assert not list((crashed / "lake" / "snapshots").glob("_tmp-*"))

    # An external SIGKILL at an arbitrary moment: afterwards the lake is either empty or
    # complete, and a rerun gives the clean result.
    killed = tmp_path / "killed"
    proc = run_ingest_cli(kafka_topic, killed)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if list((killed / "lake" / "snapshots").glob("_tmp-*/*/*")):
            break
        time.sleep(0.01)  # polling for the moment to strike, not synchronising
    proc.kill()
    proc.wait(timeout=30)
    assert lake_state(killed) in ({}, want)
    proc = run_ingest_cli(kafka_topic, killed)
    assert proc.wait(timeout=120) == 0
    assert lake_state(killed) == want
