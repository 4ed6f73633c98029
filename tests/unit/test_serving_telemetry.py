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


def _counter(name: str, **labels) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def _lines(log: PredictionLog) -> list[dict]:
    return _records(sorted(log.path.parent.glob("predictions-*")))


def test_a_failed_rotation_reopens_the_file_and_the_writer_keeps_going(tmp_path, monkeypatch):
    from pathlib import Path

    from tests.support.harness import wait_for

    errors_before = _counter("recs_prediction_log_errors_total", stage="rotate")
    real_replace = Path.replace

    def failing_replace(self, target):
        if self.name.startswith("predictions-"):
            raise OSError("rename refused (read-only directory)")
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", failing_replace)
    log = PredictionLog(tmp_path, max_bytes=2_000, backups=5, flush_interval_s=0.0)
    log.start()
    try:
        for i in range(40):  # ~5 KB: passes max_bytes, so rotation is attempted and fails
            log.write({"user_id": i, "items": "x" * 100})
        wait_for(lambda: len(_lines(log)) == 40, 10, "the first 40 records")
        assert log.errors >= 1 and log.alive
        for i in range(40, 80):  # the next batches still reach a file
            log.write({"user_id": i, "items": "x" * 100})
        wait_for(lambda: len(_lines(log)) == 80, 10, "the records after the failed rotation")
        assert log.alive
        monkeypatch.undo()
        for i in range(80, 120):  # rotation works again once renames do
            log.write({"user_id": i, "items": "x" * 100})
        wait_for(lambda: len(_lines(log)) == 120, 10, "the records after renames work again")
    finally:
        log.stop()
    assert sorted(r["user_id"] for r in _lines(log)) == list(range(120))
    assert len(list(tmp_path.glob("predictions-*.jsonl.*"))) >= 1
    assert _counter("recs_prediction_log_errors_total", stage="rotate") - errors_before == (
        log.errors
    )


def test_a_record_that_cannot_be_encoded_is_counted_and_the_next_is_written(tmp_path):
    from tests.support.harness import wait_for

    before = _counter("recs_prediction_log_errors_total", stage="write")
    log = PredictionLog(tmp_path, flush_interval_s=0.0)
    log.start()
    try:
        log.write({"user_id": 1, "bad": {(1, 2): "tuple keys are not JSON"}})
        wait_for(lambda: log.errors == 1, 10, "the encoding error counted")
        log.write({"user_id": 2})
        wait_for(lambda: [r["user_id"] for r in _lines(log)] == [2], 10, "the next record")
        assert log.alive
    finally:
        log.stop()
    assert _counter("recs_prediction_log_errors_total", stage="write") - before == 1


def test_a_full_queue_drops_and_counts_records_on_metrics(tmp_path):
    from serving import telemetry

    before = _counter("recs_prediction_log_dropped_total")
    log = PredictionLog(tmp_path, max_queued=10, flush_interval_s=0.0)
    for i in range(25):  # no writer yet: the queue fills at 10
        log.write({"user_id": i})
    assert log.dropped == 15
    assert _counter("recs_prediction_log_dropped_total") - before == 15
    payload = telemetry.metrics_payload()[0].decode()
    exported = [
        float(line.split()[-1])
        for line in payload.splitlines()
        if line.startswith("recs_prediction_log_dropped_total ")
    ]
    assert exported == [before + 15]
    log.start()
    log.stop()
    assert [r["user_id"] for r in _records([log.path])] == list(range(10))
