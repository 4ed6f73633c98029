"""Snapshot integrity on real Kafka, Postgres and Great Expectations: the `snapshot` suite's
integrity checks each fail on the bad data they exist for, and one quarantined snapshot does
not stop later clean ones (issue 13, "Data keeps flowing").

Lines are synthetic and small (a few thousand), so the shapes are exact: the same 100 users
and 20 movies every day, 110 events an hour, ratings cycling through 1..5 stars.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from jobs.ingest import lake, readmit, validate
from jobs.ingest import snapshot as ingest
from tests.conftest import private_schema

pytestmark = pytest.mark.integration

USERS = 100
MOVIES = 20


@pytest.fixture
def isolated(postgres, tmp_path, monkeypatch):
    """A private schema for this area's tables and a private RECS_VAR_DIR (lake, GX)."""
    with private_schema(postgres, ("020_snapshots.sql", "021_catalog.sql")) as url:
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("RECS_VAR_DIR", str(tmp_path / "var"))
        yield url


def lines(day: str, hours: int = 24, per_hour: int = 110, garbage: int = 0) -> list[bytes]:
    """`per_hour` events an hour for `hours` hours from midnight of `day`: 10 in 11 watch
    (user i % 100, movie i % 20), 1 in 11 a rating cycling 1..5; then `garbage` bad lines."""
    start = datetime.fromisoformat(f"{day}T00:00:00")
    out = []
    for i in range(hours * per_hour):
        at = (start + timedelta(seconds=i * 3600 // per_hour, milliseconds=i % 1000)).isoformat(
            timespec="milliseconds"
        )
        user, movie = 1000 + i % USERS, f"movie+{i % MOVIES}+2001"
        if i % 11 == 10:
            out.append(f"{at},{user},GET /rate/{movie}={1 + (i // 11) % 5}")
        else:
            out.append(f"{at},{user},GET /data/m/{movie}/{i % 90}.mpg")
    out += [f"garbage line {n}" for n in range(garbage)]
    return [line.encode() for line in out]


def produce(topic: str, kafka: str, batch: list[bytes]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": kafka, "linger.ms": 20})
    for n, line in enumerate(batch):
        producer.produce(topic, value=line, key=str(n % 7).encode())
    assert producer.flush(30) == 0


def take(topic: str, kafka: str, batch: list[bytes]) -> ingest.IngestResult:
    """Produce `batch`, ingest it as the next snapshot."""
    produce(topic, kafka, batch)
    result = ingest.ingest(topic=topic, chunk_lines=2000)
    assert result.new
    return result


def judged(snapshot_id: str) -> validate.Outcome:
    """Validate and mark; the outcome (marking quarantined is expected, not an error)."""
    outcome = validate.validate_snapshot(snapshot_id)
    try:
        validate.mark(snapshot_id)
    except validate.SnapshotQuarantined:
        assert not outcome.success
    assert lake.snapshot_row(snapshot_id)["status"] == outcome.status
    return outcome


def snapshot_failures(outcome: validate.Outcome) -> list[str]:
    return [f for f in outcome.failures if f.startswith("snapshot.")]


def assert_quarantined_for(outcome: validate.Outcome, *checks: str) -> None:
    """Quarantined, the snapshot suite names `checks`, and nothing else in any suite."""
    assert outcome.status == "quarantined"
    row = lake.snapshot_row(outcome.snapshot_id)
    assert row["status"] == "quarantined"
    failed = snapshot_failures(outcome)
    assert {c for c in checks if any(f.startswith(f"snapshot.{c}:") for f in failed)} == set(
        checks
    ), outcome.failures
    assert len(outcome.failures) == len(checks), outcome.failures
    for check in checks:
        assert check in row["reasons"]


def test_one_quarantine_does_not_quarantine_the_next_clean_snapshot(kafka, kafka_topic, isolated):
    first = take(kafka_topic, kafka, lines("2025-03-01"))
    assert judged(first.snapshot_id).success
    bad = take(kafka_topic, kafka, lines("2025-03-02", garbage=600))
    assert_quarantined_for(judged(bad.snapshot_id), "reject_rate")
    clean = take(kafka_topic, kafka, lines("2025-03-03"))
    for part, (start, _end) in clean.manifest["offsets"].items():
        assert start == bad.manifest["offsets"][part][1]  # after the quarantined range
    outcome = judged(clean.snapshot_id)
    assert outcome.success, outcome.failures
    assert outcome.aggregates["offsets_contiguous"] is True
    assert outcome.aggregates["reference"] == [first.snapshot_id]  # drift: accepted only
    assert [r.snapshot_id for r in lake.accepted_snapshots()] == ["s000001", "s000003"]


def test_readmit_accepts_a_quarantined_snapshot_and_records_who_why_when(
    kafka, kafka_topic, isolated
):
    first = take(kafka_topic, kafka, lines("2025-03-01"))
    assert judged(first.snapshot_id).success
    bad = take(kafka_topic, kafka, lines("2025-03-02", garbage=600))
    assert not judged(bad.snapshot_id).success
    with pytest.raises(readmit.NotQuarantined, match="accepted"):
        readmit.readmit(first.snapshot_id, "no reason to", by="alice")
    with pytest.raises(ValueError, match="reason"):
        readmit.readmit(bad.snapshot_id, "  ", by="alice")
    assert lake.snapshot_row(bad.snapshot_id)["status"] == "quarantined"

    assert (
        readmit.main([bad.snapshot_id, "--reason", "feed glitch, rows checked", "--by", "al"]) == 0
    )
    row = lake.snapshot_row(bad.snapshot_id)
    assert row["status"] == "accepted" and "readmitted by al" in row["reasons"]
    assert [r.snapshot_id for r in lake.accepted_snapshots()] == ["s000001", "s000002"]
    logged = readmissions(isolated)
    assert [(r[0], r[1], r[2]) for r in logged] == [("s000002", "al", "feed glitch, rows checked")]
    assert "reject_rate" in logged[0][3] and logged[0][4] is not None
    assert readmit.main([bad.snapshot_id, "--reason", "again"]) == 2  # already accepted
    assert len(readmissions(isolated)) == 1


def readmissions(url: str) -> list[tuple]:
    from contracts import db

    with db.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT snapshot_id, readmitted_by, reason, quarantine_reasons, readmitted_at "
            "FROM snapshot_readmissions ORDER BY readmitted_at"
        )
        rows = cur.fetchall()
    conn.close()
    return rows


def a_watch_file(result: ingest.IngestResult) -> Path:
    return result.path / next(f["path"] for f in result.manifest["files"] if f["table"] == "watch")


def test_tampered_parquet_file_fails_files_verified(kafka, kafka_topic, isolated):
    result = take(kafka_topic, kafka, lines("2025-03-01"))
    path = a_watch_file(result)
    table = pq.read_table(path)
    minutes = pc.add(table["minute"], 1)  # same rows, same schema, other values
    pq.write_table(
        table.set_column(table.schema.get_field_index("minute"), "minute", minutes), path
    )
    assert_quarantined_for(judged(result.snapshot_id), "files_verified")


def test_lost_parquet_file_fails_reconciliation(kafka, kafka_topic, isolated):
    result = take(kafka_topic, kafka, lines("2025-03-01"))
    a_watch_file(result).unlink()
    outcome = judged(result.snapshot_id)
    assert outcome.aggregates["rows_and_rejects"] < result.manifest["lines_read"]
    assert_quarantined_for(outcome, "reconciled", "files_verified")


def test_offset_gap_fails_offsets_contiguous(kafka, kafka_topic, isolated):
    first = take(kafka_topic, kafka, lines("2025-03-01"))
    assert judged(first.snapshot_id).success
    produce(kafka_topic, kafka, lines("2025-03-02"))
    root = lake.lake_root()
    consumer = ingest._consumer(kafka)
    try:
        plan = ingest.plan_snapshot(consumer, kafka_topic, root)
        part, (start, end) = next((p, r) for p, r in plan.offsets.items() if r[1] - r[0] > 10)
        plan.offsets[part] = (start + 5, end)  # five offsets nobody read
        path, manifest = ingest.write_snapshot(consumer, plan, root, chunk_lines=2000)
    finally:
        consumer.close()
    lake.register(manifest, path)
    assert_quarantined_for(judged(plan.snapshot_id), "offsets_contiguous")


def test_volume_spike_fails_volume_ratio(kafka, kafka_topic, isolated):
    first = take(kafka_topic, kafka, lines("2025-03-01"))
    assert judged(first.snapshot_id).success
    spike = take(kafka_topic, kafka, lines("2025-03-02", hours=1, per_hour=110 * 30))
    outcome = judged(spike.snapshot_id)
    assert outcome.aggregates["volume_ratio"] > 20
    assert_quarantined_for(outcome, "volume_ratio")
