"""The prediction log: every queued record reaches the file, as JSON lines, rotated by size."""

from __future__ import annotations

import json

from serving.telemetry import PredictionLog


def _records(paths) -> list[dict]:
    return [json.loads(line) for path in paths for line in path.read_text().splitlines()]


def test_every_record_is_written_once_with_its_time(tmp_path):
    log = PredictionLog(tmp_path, flush_interval_s=0.01)
    log.start()
    for i in range(2_500):
        log.write({"request_id": f"r{i}", "user_id": i, "items": "1,2,3"})
    log.stop()
    rows = _records([log.path])
    assert [r["user_id"] for r in rows] == list(range(2_500))
    assert all(r["time"].endswith("+00:00") for r in rows)


def test_rotation_keeps_the_configured_backups_and_loses_no_record(tmp_path):
    log = PredictionLog(tmp_path, max_bytes=4_000, backups=2, flush_interval_s=0.0)
    log.start()
    for i in range(60):
        log.write({"user_id": i, "items": "x" * 100})
    log.stop()
    files = sorted(tmp_path.glob("predictions-*"))
    assert sorted(_age(p) for p in files) == [0, 1, 2]
    assert all(p.stat().st_size <= 4_000 for p in files)
    # 60 records of ~130 bytes fit in the three files: read oldest first, all are there, in order.
    kept = [r["user_id"] for r in _records(reversed(sorted(files, key=_age)))]
    assert kept == list(range(60))


def test_rotation_past_the_backups_drops_the_oldest_records_only(tmp_path):
    log = PredictionLog(tmp_path, max_bytes=4_000, backups=2, flush_interval_s=0.0)
    log.start()
    for i in range(150):  # ~19 KB: more than the three 4 KB files hold
        log.write({"user_id": i, "items": "x" * 100})
    log.stop()
    files = sorted(tmp_path.glob("predictions-*"), key=_age, reverse=True)
    assert len(files) == 3
    kept = [r["user_id"] for r in _records(files)]
    assert kept[0] > 0 and kept == list(range(kept[0], 150))


def _age(path) -> int:
    suffix = path.name.rsplit(".", 1)[-1]
    return 0 if suffix == "jsonl" else int(suffix)


def test_stop_without_start_and_twice_is_harmless(tmp_path):
    log = PredictionLog(tmp_path)
    log.stop()
    log.start()
    log.write({"user_id": 1})
    log.stop()
    log.stop()
    assert _records([log.path])[0]["user_id"] == 1
