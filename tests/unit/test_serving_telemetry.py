"""The prediction log: every queued record reaches the file, as JSON lines, rotated by size."""

from __future__ import annotations

import fcntl
import json
import os
import re
import time

import pytest

from contracts import names
from serving.telemetry import PredictionLog
from tests.support.harness import wait_for


def _records(paths) -> list[dict]:
    return [json.loads(line) for path in paths for line in path.read_text().splitlines()]


def _sealed(directory) -> list:
    """Sealed files, oldest first (by the UTC time and sequence in their names)."""
    pattern = re.compile(names.PREDICTION_LOG_SEALED_RE)
    found = [(m[2], int(m[3]), p) for p in directory.iterdir() if (m := pattern.fullmatch(p.name))]
    return [path for _stamp, _seq, path in sorted(found)]


def test_every_record_is_written_once_with_its_time(tmp_path):
    log = PredictionLog(tmp_path, flush_interval_s=0.01)
    log.start()
    for i in range(2_500):
        log.write({"request_id": f"r{i}", "user_id": i, "items": "1,2,3"})
    log.stop()
    rows = _records(_sealed(tmp_path))
    assert [r["user_id"] for r in rows] == list(range(2_500))
    assert all(r["time"].endswith("+00:00") for r in rows)


def test_full_files_are_sealed_under_unique_names_and_no_record_is_lost(tmp_path):
    log = PredictionLog(tmp_path, max_bytes=4_000, max_sealed=100, flush_interval_s=0.0)
    log.start()
    for i in range(150):  # ~19 KB: five or more 4 KB files
        log.write({"user_id": i, "items": "x" * 100})
    log.stop()
    files = _sealed(tmp_path)
    assert len(files) >= 5 and not log.path.exists()  # stop() sealed the active file too
    assert all(p.stat().st_size <= 4_000 for p in files)
    assert all(p.name.startswith(f"predictions-{os.getpid()}-") for p in files)
    assert [r["user_id"] for r in _records(files)] == list(range(150))
    # A later writer of the same process never takes an earlier name (nothing is overwritten).
    again = PredictionLog(tmp_path, max_bytes=4_000, max_sealed=100, flush_interval_s=0.0)
    again.start()
    again.write({"user_id": 150})
    again.stop()
    assert [r["user_id"] for r in _records(_sealed(tmp_path))] == list(range(151))


def test_sealed_files_past_the_bound_are_deleted_oldest_first_and_counted(tmp_path):
    before = _counter("recs_prediction_log_discarded_total")
    log = PredictionLog(tmp_path, max_bytes=4_000, max_sealed=2, flush_interval_s=0.0)
    log.start()
    for i in range(150):  # ~19 KB: more than two 4 KB files hold
        log.write({"user_id": i, "items": "x" * 100})
    log.stop()
    files = _sealed(tmp_path)
    assert len(files) == 2
    kept = [r["user_id"] for r in _records(files)]
    assert kept[0] > 0 and kept == list(range(kept[0], 150))
    assert log.discarded == kept[0]  # every record not kept is counted, none silently
    assert _counter("recs_prediction_log_discarded_total") - before == kept[0]


def test_a_file_left_by_an_earlier_process_of_the_same_pid_is_sealed_at_start(tmp_path):
    log = PredictionLog(tmp_path, flush_interval_s=0.0)
    log.path.write_text('{"user_id": 0}\n')  # a crashed predecessor's active file
    log.start()
    log.write({"user_id": 1})
    log.stop()
    assert [r["user_id"] for r in _records(_sealed(tmp_path))] == [0, 1]


def test_the_writer_holds_a_lock_on_its_active_file(tmp_path):
    log = PredictionLog(tmp_path, flush_interval_s=0.0)
    log.start()
    log.write({"user_id": 1})
    try:
        with open(log.path, "ab") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        log.stop()
    (sealed,) = _sealed(tmp_path)
    with open(sealed, "ab") as free:
        fcntl.flock(free, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released once stopped


def test_stop_without_start_and_twice_is_harmless(tmp_path):
    log = PredictionLog(tmp_path)
    log.stop()
    log.start()
    log.write({"user_id": 1})
    log.stop()
    log.stop()
    assert _records(_sealed(tmp_path))[0]["user_id"] == 1


def _counter(name: str, **labels) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def _lines(log: PredictionLog) -> list[dict]:
    return _records(sorted(log.path.parent.glob("predictions-*")))


def test_a_failed_sealing_keeps_appending_and_the_writer_keeps_going(tmp_path, monkeypatch):
    from pathlib import Path

    errors_before = _counter("recs_prediction_log_errors_total", stage="rotate")
    real_replace = Path.replace

    def failing_replace(self, target):
        if self.name.startswith("predictions-"):
            raise OSError("rename refused (read-only directory)")
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", failing_replace)
    log = PredictionLog(tmp_path, max_bytes=2_000, max_sealed=100, flush_interval_s=0.0)
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
    assert len(_sealed(tmp_path)) >= 1
    assert _counter("recs_prediction_log_errors_total", stage="rotate") - errors_before == (
        log.errors
    )


def test_a_record_that_cannot_be_encoded_is_counted_and_the_next_is_written(tmp_path):

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
    assert [r["user_id"] for r in _records(_sealed(tmp_path))] == list(range(10))


def test_a_quiet_file_is_sealed_by_age_and_an_empty_one_is_not(tmp_path):
    log = PredictionLog(tmp_path, flush_interval_s=0.0, max_age_s=0.3)
    log.start()
    try:
        time.sleep(0.6)  # longer than max_age_s with nothing written: nothing to seal
        assert _sealed(tmp_path) == []
        log.write({"request_id": "r1", "user_id": 1, "items": "1,2"})
        wait_for(lambda: _sealed(tmp_path), 5, "the quiet file sealed by age")
        assert [r["request_id"] for r in _records(_sealed(tmp_path))] == ["r1"]
        log.write({"request_id": "r2", "user_id": 2, "items": "3"})
        wait_for(lambda: len(_sealed(tmp_path)) == 2, 5, "the next file sealed by age too")
    finally:
        log.stop()
    assert [r["request_id"] for r in _records(_sealed(tmp_path))] == ["r1", "r2"]
