"""Prediction-log benchmark: the cost per served request of logging one prediction record.

Side by side, same records, same machine, alternating rounds (medians of 5):
  logging chain   the standard library's QueueHandler -> QueueListener -> RotatingFileHandler
                  with a JSON formatter (what the server used before)
  batched writer  serving.telemetry.PredictionLog: enqueue a (time, dict) pair; one thread
                  encodes and writes what is queued in one call every 50 ms

Reported: microseconds on the request thread per write() call, and total process CPU per
record (request thread + writer thread, until everything is on disk).
Run: `PYTHONPATH=. .venv/bin/python benchmarks/bench_prediction_log.py [--records 100000]`
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener, RotatingFileHandler
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from serving.telemetry import PredictionLog  # noqa: E402


class _Json(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamped = {"time": datetime.fromtimestamp(record.created, UTC).isoformat()}
        stamped.update(record.msg)
        return json.dumps(stamped, separators=(",", ":"), default=str)


class _Enqueue(QueueHandler):
    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


class LoggingChain:
    """The baseline: the logging module's queue + rotating file handler."""

    def __init__(self, log_dir: Path) -> None:
        self.path = log_dir / "chain.jsonl"
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        handler = RotatingFileHandler(self.path, maxBytes=50 << 20, backupCount=5)
        handler.setFormatter(_Json())
        self._listener = QueueListener(self._queue, handler)
        self._logger = logging.getLogger(f"bench.chain.{id(self)}")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        self._logger.handlers[:] = [_Enqueue(self._queue)]

    def start(self) -> None:
        self._listener.start()

    def write(self, payload: dict) -> None:
        self._logger.info(payload)

    def stop(self) -> None:
        self._listener.stop()
        for handler in self._listener.handlers:
            handler.close()


def record(i: int) -> dict:
    return {
        "request_id": f"abc123def456-{i:x}",
        "user_id": 100_000 + i,
        "variant": None,
        "model_version": "item_knn-20261204-0001",
        "reco_version": "reco-20261204-0001",
        "source": "model",
        "items": ",".join(str(1_000 + j) for j in range(20)),
        "latency_ms": 0.412,
        "fallback_reason": None,
    }


def one_round(make, n: int) -> tuple[float, float, int]:
    """(us per write() on the caller, us of process CPU per record until flushed, lines)."""
    records = [record(i) for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        log = make(Path(tmp))
        log.start()
        cpu0, t0 = time.process_time(), time.perf_counter()
        for payload in records:
            log.write(payload)
        caller = time.perf_counter() - t0
        log.stop()
        cpu = time.process_time() - cpu0
        lines = sum(p.read_bytes().count(b"\n") for p in Path(tmp).iterdir())
    return caller / n * 1e6, cpu / n * 1e6, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    kinds = {"logging chain (baseline)": LoggingChain, "batched writer (server)": PredictionLog}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in kinds}
    for _ in range(args.rounds):
        for name, make in kinds.items():
            caller_us, cpu_us, lines = one_round(make, args.records)
            if lines != args.records:
                raise SystemExit(f"{name}: wrote {lines} lines for {args.records} records")
            results[name].append((caller_us, cpu_us))
    print(f"\n{args.records:,} records x {args.rounds} alternating rounds, medians")
    print(f"{'writer':28} {'us/write on caller':>19} {'CPU us/record':>14}")
    medians = {}
    for name, runs in results.items():
        medians[name] = tuple(statistics.median(r[i] for r in runs) for i in (0, 1))
        print(f"{name:28} {medians[name][0]:19.2f} {medians[name][1]:14.2f}")
    base, ours = medians["logging chain (baseline)"], medians["batched writer (server)"]
    print(f"ratio baseline/server: caller {base[0] / ours[0]:.1f}x, CPU {base[1] / ours[1]:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
