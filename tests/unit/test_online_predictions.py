"""The prediction log goes into the lake table `predictions` exactly once, with its manifest."""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest

from jobs.ingest import lake
from jobs.online import predictions
from serving.telemetry import PredictionLog

pytestmark = pytest.mark.unit


def _serve(log_dir, n: int, first: int = 0, max_bytes: int = 3_000) -> None:
    """n records through the real writer, sealed into several small files."""
    log = PredictionLog(log_dir, max_bytes=max_bytes, max_sealed=1_000, flush_interval_s=0.0)
    log.start()
    for i in range(first, first + n):
        log.write(
            {
                "request_id": f"r{i}",
                "user_id": i,
                "variant": "b" if i % 2 else None,
                "model_version": "m1",
                "reco_version": "reco-m1",
                "source": "model" if i % 3 else "popular",
                "items": f"movie+{i}+2001,movie+{i + 1}+2002",
                "latency_ms": 1.5,
                "fallback_reason": None,
            }
        )
    log.stop()


def _rows(lake_dir):
    dirs = predictions.table_dirs(lake_dir)
    return pq.ParquetDataset([str(p) for d in dirs for p in sorted(d.rglob("*.parquet"))]).read()


def test_files_are_ingested_once_with_a_manifest_and_then_deleted(tmp_path):
    logs, lake_dir = tmp_path / "log", tmp_path / "lake"
    _serve(logs, 100)
    raw = predictions.sealed_files(logs)
    assert len(raw) >= 3
    hashes = {p.name: lake.sha256_file(p) for p in raw}
    result = predictions.ingest(logs, lake_dir)
    assert (result.files, result.lines, result.rejects) == (len(raw), 100, 0)
    assert predictions.sealed_files(logs) == []  # deleted once the batch is durable
    manifest = lake.read_manifest(result.path)
    assert {f["name"]: f["sha256"] for f in manifest["files"]} == hashes
    assert sum(f["lines"] for f in manifest["files"]) == manifest["lines_read"] == 100
    assert all(f["offsets"] == [0, f["bytes"]] for f in manifest["files"])
    for part in manifest["parts"]:
        assert lake.sha256_file(result.path / part["path"]) == part["sha256"]
    table = _rows(lake_dir).to_pandas().sort_values("user_id")
    assert table["request_id"].tolist() == [f"r{i}" for i in range(100)]
    first = table.iloc[1]
    assert (first["model_version"], first["variant"], first["source"]) == ("m1", "b", "model")
    assert list(first["items"]) == ["movie+1+2001", "movie+2+2002"]
    assert table.iloc[0]["variant"] is None and table.iloc[0]["source"] == "popular"
    # A rerun with nothing new writes nothing; new traffic lands in a second batch.
    assert predictions.ingest(logs, lake_dir).batch_id is None
    _serve(logs, 10, first=100)
    assert predictions.ingest(logs, lake_dir).batch_id == "p000002"
    assert sorted(_rows(lake_dir)["user_id"].to_pylist()) == list(range(110))


def test_a_crash_before_the_raw_files_are_deleted_ingests_nothing_twice(tmp_path, monkeypatch):
    logs, lake_dir = tmp_path / "log", tmp_path / "lake"
    _serve(logs, 60)
    n_files = len(predictions.sealed_files(logs))

    def crash(paths):
        raise SystemExit("killed between the rename and the deletion")

    monkeypatch.setattr(predictions, "_delete_raw", crash)
    with pytest.raises(SystemExit):
        predictions.ingest(logs, lake_dir)
    monkeypatch.undo()
    assert len(predictions.completed_batches(lake_dir)) == 1
    assert len(predictions.sealed_files(logs)) == n_files  # still there, already in the lake
    _serve(logs, 5, first=60)  # and one more file arrives before the rerun
    result = predictions.ingest(logs, lake_dir)
    assert (result.already_ingested, result.lines) == (n_files, 5)
    assert predictions.sealed_files(logs) == []
    assert sorted(_rows(lake_dir)["user_id"].to_pylist()) == list(range(65))


def test_a_crash_before_the_manifest_leaves_nothing_visible_and_the_rerun_takes_all(
    tmp_path, monkeypatch
):
    logs, lake_dir = tmp_path / "log", tmp_path / "lake"
    _serve(logs, 40)

    def crash(directory, manifest):
        raise SystemExit("killed before the manifest")

    monkeypatch.setattr(lake, "write_manifest", crash)
    with pytest.raises(SystemExit):
        predictions.ingest(logs, lake_dir)
    monkeypatch.undo()
    assert predictions.completed_batches(lake_dir) == []
    assert predictions.ingest(logs, lake_dir).lines == 40
    assert not list(predictions.predictions_dir(lake_dir).glob("_tmp-*"))
    assert sorted(_rows(lake_dir)["user_id"].to_pylist()) == list(range(40))


def test_malformed_lines_are_kept_as_rejects_with_their_reason(tmp_path):
    logs, lake_dir = tmp_path / "log", tmp_path / "lake"
    _serve(logs, 10, max_bytes=10_000_000)
    (path,) = predictions.sealed_files(logs)
    good = json.loads(path.read_text().splitlines()[0])
    bad_source = json.dumps({**good, "source": "guess"})
    with open(path, "ab") as handle:
        handle.write(b"\x00\x01 not json\n" + bad_source.encode() + b'\n{"request_id": "cut')
    result = predictions.ingest(logs, lake_dir)
    assert (result.lines, result.rejects) == (13, 3)
    manifest = lake.read_manifest(result.path)
    assert manifest["reject_reasons"] == {"bad_source": 1, "json": 1, "truncated": 1}
    assert manifest["files"][0]["rows"] == 10 and manifest["files"][0]["rejects"] == 3
    rejects = pq.read_table(predictions.table_dirs(lake_dir, "rejects")[0]).to_pylist()
    assert [(r["line_no"], r["reason"]) for r in rejects] == [
        (10, "json"),
        (11, "bad_source"),
        (12, "truncated"),
    ]
    assert rejects[0]["raw"] == b"\x00\x01 not json\n"


def test_a_dead_writers_file_is_sealed_and_a_live_writers_is_left_alone(tmp_path):
    logs, lake_dir = tmp_path / "log", tmp_path / "lake"
    logs.mkdir()
    orphan = logs / "predictions-999999999.jsonl"  # no lock held: its process is gone
    live = PredictionLog(logs, flush_interval_s=0.0)
    live.start()
    try:
        live.write({"request_id": "x", "model_version": "m", "source": "model", "items": "a"})
        _serve(tmp_path / "other", 1, max_bytes=10_000_000)
        (one,) = predictions.sealed_files(tmp_path / "other")
        orphan.write_bytes(one.read_bytes())
        result = predictions.ingest(logs, lake_dir)
        assert (result.files, result.lines) == (1, 1)
        assert not orphan.exists() and live.path.exists()
    finally:
        live.stop()
    assert predictions.ingest(logs, lake_dir).lines == 1  # the live one, sealed at its stop
    # A live process whose writer takes no lock (a version from before the lock) is left alone.
    unlocked = logs / f"predictions-{os.getpid()}.jsonl"
    unlocked.write_bytes(one.read_bytes())
    assert predictions.ingest(logs, lake_dir).batch_id is None and unlocked.exists()


def test_the_fast_path_reads_exactly_what_the_reference_path_reads(tmp_path):
    _serve(tmp_path, 300, max_bytes=10_000_000)
    (path,) = predictions.sealed_files(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    hand = {"request_id": "h", "model_version": "m", "source": "cache", "items": "a"}
    lines += [
        json.dumps({**hand, "time": "2026-01-01T23:30:00+02:00", "user_id": None}).encode() + b"\n",
        json.dumps(
            {**hand, "time": "2026-01-01T00:00:00+00:00", "fallback_reason": "db ≠ up"}
        ).encode()
        + b"\n",
    ]
    fast = predictions.fast_chunk(lines, "f", 7)
    slow, rejects = predictions.slow_chunk(lines, "f", 7)
    assert fast is not None and rejects == []
    assert fast.equals(slow)
    assert fast["event_time"][300].as_py().isoformat() == "2026-01-01T21:30:00+00:00"


@pytest.mark.parametrize(
    "line",
    [
        b"\n",  # blank
        b'{"request_id": "a"}{"request_id": "b"}\n',  # two records on one line
        b'{"request_id": "a", "time": "2026-01-01T00:00:00", "model_version": "m", '
        b'"source": "model", "items": "x"}\n',  # no UTC offset
        b'{"request_id": "a", "time": "2026-01-01T00:00:00+00:00", "model_version": "m", '
        b'"source": "model", "items": "x", "user_id": -3}\n',
        b'{"request_id": "a", "time": "2026-01-01T00:00:00+00:00", "model_version": "m", '
        b'"source": "model", "items": "x", "variant": 5}\n',
    ],
)
def test_a_chunk_with_any_bad_line_takes_the_reference_path(tmp_path, line):
    _serve(tmp_path, 5, max_bytes=10_000_000)
    (path,) = predictions.sealed_files(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    assert predictions.fast_chunk(lines, "f", 0) is not None
    assert predictions.fast_chunk([*lines, line], "f", 0) is None
    rows, rejects = predictions.slow_chunk([*lines, line], "f", 0)
    assert rows.num_rows == 5 and [r["line_no"] for r in rejects] == [5]


def test_chunks_read_fast_and_slow_keep_every_line_number(tmp_path):
    from jobs.ingest.snapshot import PartWriters

    _serve(tmp_path / "log", 20, max_bytes=10_000_000)
    (path,) = predictions.sealed_files(tmp_path / "log")
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([*lines[:9], b"garbage\n", *lines[9:]]))
    writers = PartWriters(tmp_path / "out")
    read = predictions.read_file(path, writers, chunk_lines=4)  # chunk 8..11 is the slow one
    writers.close()
    assert (read.lines, read.rows, read.rejects) == (21, 20, 1)
    rows = pq.read_table(tmp_path / "out" / "predictions").to_pylist()
    numbers = sorted(r["line_no"] for r in rows)
    assert numbers == [n for n in range(21) if n != 9]
    assert all(r["request_id"] == f"r{n - (n > 9)}" for r in rows for n in [r["line_no"]])


def test_readers_can_take_only_the_recent_batches(tmp_path):
    base = predictions.predictions_dir(tmp_path)
    for n, newest in ((1, "2026-01-01T00:00:00+00:00"), (2, "2026-01-04T00:00:00+00:00")):
        (base / f"p{n:06d}").mkdir(parents=True)
        lake.write_manifest(base / f"p{n:06d}", {"batch_id": f"p{n:06d}", "max_event_time": newest})
    assert [p.name for p in predictions.batch_dirs(tmp_path)] == ["p000001", "p000002"]
    assert [p.name for p in predictions.batch_dirs(tmp_path, recent_hours=71.9)] == ["p000002"]
    assert len(predictions.batch_dirs(tmp_path, recent_hours=72)) == 2
