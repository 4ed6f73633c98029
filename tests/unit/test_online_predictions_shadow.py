"""The shadow's would-have-answered lists in the prediction log reach the lake table
`predictions` (shadow_version, shadow_items); files written before those fields existed still
ingest, with them null."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from jobs.online import predictions
from serving.telemetry import PredictionLog

pytestmark = pytest.mark.unit

BASE = {
    "time": "2026-01-01T00:00:00+00:00",
    "model_version": "m1",
    "reco_version": "reco-m1",
    "source": "model",
    "items": "a,b,c",
}


def line(**fields) -> bytes:
    return json.dumps({**BASE, **fields}).encode() + b"\n"


def test_old_and_new_lines_read_the_same_fast_and_slow():
    lines = [
        line(request_id="old", user_id=1),  # before shadows existed: no field at all
        line(request_id="s1", user_id=2, shadow_version="reco-m2", shadow_items="x,y,z"),
        line(request_id="s2", user_id=3, shadow_version="reco-m2", shadow_items=None),
    ]
    fast = predictions.fast_chunk(lines, "f", 0)
    slow, rejects = predictions.slow_chunk(lines, "f", 0)
    assert fast is not None and rejects == []
    assert fast.equals(slow)
    got = fast.select(["request_id", "shadow_version", "shadow_items"]).to_pylist()
    assert got == [
        {"request_id": "old", "shadow_version": None, "shadow_items": None},
        {"request_id": "s1", "shadow_version": "reco-m2", "shadow_items": ["x", "y", "z"]},
        {"request_id": "s2", "shadow_version": "reco-m2", "shadow_items": None},
    ]


@pytest.mark.parametrize("bad", [{"shadow_items": 7}, {"shadow_version": ["v"]}])
def test_a_shadow_field_of_the_wrong_type_is_rejected_with_its_reason(bad):
    lines = [line(request_id="ok", user_id=1), line(request_id="bad", user_id=2, **bad)]
    assert predictions.fast_chunk(lines, "f", 0) is None
    rows, rejects = predictions.slow_chunk(lines, "f", 0)
    assert rows.num_rows == 1 and [(r["line_no"], r["reason"]) for r in rejects] == [
        (1, "bad_type")
    ]


def test_ingest_takes_a_file_from_before_shadows_and_one_with_them(tmp_path):
    """Two sealed files through the real writer: one as servers wrote it before this field,
    one while a shadow ran. Both land in one batch; the old rows' shadow columns are null."""
    log_dir, lake_dir = tmp_path / "log", tmp_path / "lake"
    record = {k: v for k, v in BASE.items() if k != "time"}
    for n, extra in enumerate(({}, {"shadow_version": "reco-m2", "shadow_items": "x,y"})):
        writer = PredictionLog(log_dir, max_sealed=10, flush_interval_s=0.0)
        writer.start()
        for i in range(3):
            writer.write({**record, "request_id": f"f{n}-{i}", "user_id": i, **extra})
        writer.stop()
    result = predictions.ingest(log_dir, lake_dir)
    assert result.batch_id is not None
    dirs = predictions.table_dirs(lake_dir)
    table = pq.ParquetDataset([str(p) for d in dirs for p in sorted(d.rglob("*.parquet"))]).read()
    rows = {r["request_id"]: r for r in table.to_pylist()}
    assert len(rows) == 6
    assert {rows[f"f0-{i}"]["shadow_version"] for i in range(3)} == {None}
    assert {tuple(rows[f"f1-{i}"]["shadow_items"]) for i in range(3)} == {("x", "y")}
    assert {rows[f"f1-{i}"]["shadow_version"] for i in range(3)} == {"reco-m2"}
