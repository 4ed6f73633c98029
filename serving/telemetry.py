"""Prediction log (JSON lines, written by a background thread) and Prometheus metrics.

Metrics work under several gunicorn workers: gunicorn_conf.py sets PROMETHEUS_MULTIPROC_DIR
before prometheus_client is imported, each worker writes its own mmap files, and /metrics
merges them. No metric has a per-user label.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import os
import queue
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prom_multiprocess

from contracts import names
from contracts import settings as settings_mod

log = logging.getLogger("recs.serving")
LOG_MAX_BYTES = 50 * 1024 * 1024
LOG_QUEUE_RECORDS = 100_000  # about 30 MB of queued records; beyond it records are dropped

REQUESTS = Counter(
    "recs_requests_total",
    "HTTP requests answered, by route, status code and recommendation source.",
    ["route", "status", "source"],
)
LATENCY = Histogram(
    "recs_recommend_latency_seconds",
    "Time to answer GET /recommend/<userid>, by recommendation source.",
    ["source"],
    buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.8),
)
DB_FALLBACKS = Counter(
    "recs_db_unavailable_total",
    "Lookups answered from the in-process cache because the database could not answer.",
    ["reason"],
)
PUBLISHED = Gauge(
    "recs_published_info",
    "1 for the reco/model/popular versions this server currently serves (0 for older ones).",
    ["reco_version", "model_version", "popular_version"],
    multiprocess_mode="livemax",
)
PUBLISHED_AGE = Gauge(
    "recs_published_age_seconds",
    "Seconds since the served reco version was published (as of the last pointer refresh).",
    multiprocess_mode="livemax",
)
LOG_DROPPED = Counter(
    "recs_prediction_log_dropped_total",
    "Prediction records dropped because the writer's bounded queue was full.",
)
LOG_DISCARDED = Counter(
    "recs_prediction_log_discarded_total",
    "Records in sealed prediction-log files deleted before ingestion took them (more files "
    "waited than the log directory may hold).",
)
LOG_ERRORS = Counter(
    "recs_prediction_log_errors_total",
    "Errors of the prediction-log writer (the thread logs each one and keeps going), by stage.",
    ["stage"],
)
SHADOW_LOOKUPS = Counter(
    "recs_shadow_lookups_total",
    "Lookups of what the shadow version would have answered (logged, never served), by outcome: "
    "answered, no_row (the shadow has no list for the user), or the reason nothing was logged "
    "(statement timeout, query failed, pool exhausted, ...).",
    ["outcome"],
)
# Labelled so that no value exists until a worker sets one (the preloading master never does).
DB_UP = Gauge(
    "recs_db_available",
    "1 when the worker's last pointer refresh reached the database, else 0 (min over workers).",
    ["database"],
    multiprocess_mode="livemin",
)


def metrics_payload() -> tuple[bytes, str]:
    """The exposition text for /metrics: merged over workers in multiprocess mode."""
    if settings_mod.prometheus_multiproc_dir():
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


class PredictionLog:
    """A per-process JSON-lines file written in batches by one background thread, sealed by size.

    The request path only enqueues a (time, dict) pair; the writer wakes every
    `flush_interval_s`, encodes what is queued and writes it with one call. (The logging
    module's QueueHandler/RotatingFileHandler chain cost a LogRecord per request and a write
    plus a seek per record.)

    Sealing, not shifting: the active file `predictions-<pid>.jsonl` is renamed, once it would
    pass `max_bytes` and when the writer stops, to a unique name that is never reused
    (`predictions-<pid>-<UTC time>-<seq>.jsonl`, contracts.names). Ingestion
    (jobs/online/predictions.py) takes sealed files into the lake and only then deletes them.
    The writer holds an exclusive flock on its active file, so ingestion can seal the file of
    a process that died without stopping (the lock is free) and never the file of a live one.
    At most `max_sealed` sealed files wait in the directory: beyond that the oldest is deleted
    and its records counted (recs_prediction_log_discarded_total), never silently.

    The writer never dies of an error: each one is logged and counted
    (recs_prediction_log_errors_total), a failed sealing keeps appending to the same file, and
    the queue is bounded: when the writer cannot keep up, records are dropped and counted
    (recs_prediction_log_dropped_total) instead of growing memory.
    """

    def __init__(
        self,
        log_dir: Path,
        max_bytes: int = LOG_MAX_BYTES,
        max_sealed: int | None = None,
        flush_interval_s: float = 0.05,
        max_queued: int = LOG_QUEUE_RECORDS,
        max_age_s: float | None = None,
    ) -> None:
        self.path = Path(log_dir) / names.PREDICTION_LOG_ACTIVE.format(pid=os.getpid())
        self.max_bytes = max_bytes
        self.max_sealed = (
            settings_mod.prediction_log_max_sealed() if max_sealed is None else max_sealed
        )
        self.flush_interval_s = flush_interval_s
        self.max_age_s = (
            settings_mod.prediction_log_seal_age_s() if max_age_s is None else max_age_s
        )
        self._first_write: float | None = None  # monotonic time of the active file's 1st record
        self._queue: queue.Queue = queue.Queue(maxsize=max_queued)
        self._thread: threading.Thread | None = None
        self._file = None
        self._size = 0
        self.dropped = 0  # this object's drops (the counter above is the process's)
        self.discarded = 0  # records in sealed files this object deleted unread
        self.errors = 0

    def start(self) -> None:
        """Seal what an earlier process of the same pid left, open the file, start the writer."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._reopen()
        if self._size:
            self._seal()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def write(self, payload: dict) -> None:
        """Queue one prediction record (returns at once; dropped and counted when full)."""
        try:
            self._queue.put_nowait((time.time(), payload))
        except queue.Full:
            self.dropped += 1
            LOG_DROPPED.inc()

    @property
    def alive(self) -> bool:
        """True while the writer thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Flush what is queued, seal the file (ingestion may take it now), stop the writer."""
        if self._thread is not None:
            with contextlib.suppress(queue.Full):  # full: the writer is draining it
                self._queue.put(_STOP, timeout=10)
            self._thread.join(timeout=10)
            self._thread = None
        if self._file is not None:
            if self._size:
                self._seal(reopen=False)
            if self._file is not None:
                self._file.close()
                self._file = None

    def _run(self) -> None:
        while True:
            try:
                batch = [self._queue.get(timeout=self._until_too_old())]
            except queue.Empty:  # idle: a file with records is still sealed when it is due
                self._seal_if_old()
                continue
            if batch[0] is not _STOP:
                time.sleep(self.flush_interval_s)  # let a batch build up: one write per wake
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(self._queue.get_nowait())
            self._write_batch([item for item in batch if item is not _STOP])
            if any(item is _STOP for item in batch):
                return
            self._seal_if_old()

    def _until_too_old(self) -> float:
        """Seconds until the active file is due for sealing by age (max_age_s when empty)."""
        if self._first_write is None:
            return self.max_age_s
        return max(0.01, self._first_write + self.max_age_s - time.monotonic())

    def _seal_if_old(self) -> None:
        """Seal the active file once its first record is max_age_s old, so that ingestion
        sees quiet hours' answers without waiting for the file to fill."""
        if self._first_write is not None and time.monotonic() - self._first_write >= self.max_age_s:
            try:
                self._seal()
            except Exception:  # noqa: BLE001 - the writer must go on whatever sealing hit
                self._error("rotate", "sealing %s by age failed", self.path)

    def _write_batch(self, batch: list) -> None:
        """Encode and write one batch; any error is logged and counted, never raised."""
        try:
            lines = [_json_line(item).encode("utf-8") for item in batch]
            self._emit(lines)
        except Exception:  # noqa: BLE001 - a full disk or a bad record must not stop the writer
            self._error("write", "could not write %d records", len(batch))

    def _error(self, stage: str, message: str, *args) -> None:
        self.errors += 1
        LOG_ERRORS.labels(stage).inc()
        log.exception("prediction log: " + message, *args)

    def _emit(self, lines: list[bytes]) -> None:
        """Write the batch in one call, sealing first wherever a line would pass max_bytes."""
        chunk: list[bytes] = []
        pending = 0
        for line in lines:
            if self._size + pending + len(line) > self.max_bytes and self._size + pending:
                self._write(chunk, pending)
                chunk, pending = [], 0
                self._seal()
            chunk.append(line)
            pending += len(line)
        self._write(chunk, pending)

    def _write(self, chunk: list[bytes], size: int) -> None:
        if chunk:
            if self._file is None or self._file.closed:
                self._reopen()
            self._file.write(b"".join(chunk))
            self._file.flush()
            if self._first_write is None:
                self._first_write = time.monotonic()
            self._size += size

    def _sealed_name(self) -> Path:
        stamp = datetime.now(UTC).strftime(names.PREDICTION_LOG_STAMP)
        seq = next(_SEAL_SEQ)
        name = names.PREDICTION_LOG_SEALED.format(pid=os.getpid(), stamp=stamp, seq=seq)
        return self.path.with_name(name)

    def _seal(self, reopen: bool = True) -> None:
        """Rename the active file to its sealed name (still holding its lock, so ingestion
        cannot seal it too), then start a new one; whatever fails, a file is open afterwards."""
        try:
            self.path.replace(self._sealed_name())
        except OSError:
            self._error("rotate", "sealing %s failed; appending to it", self.path)
            self._size = 0  # try again after another max_bytes, not on every line
            self._first_write = None  # ... or another max_age_s
            return
        self._file.close()
        self._file = None
        self._first_write = None
        self._bound_sealed()
        if reopen:
            self._reopen()

    def _bound_sealed(self) -> None:
        """Delete the oldest sealed files beyond max_sealed, counting their records."""
        pattern = re.compile(names.PREDICTION_LOG_SEALED_RE)
        try:
            sealed = sorted(
                (m[2], m[3], path)
                for path in self.path.parent.iterdir()
                if (m := pattern.fullmatch(path.name))
            )
            for _stamp, _seq, path in sealed[: max(0, len(sealed) - self.max_sealed)]:
                try:
                    records = path.read_bytes().count(b"\n")
                    path.unlink()
                except FileNotFoundError:  # ingested, or bounded by another worker, just now
                    continue
                self.discarded += records
                LOG_DISCARDED.inc(records)
                log.warning(
                    "prediction log: %s deleted before ingestion (%d records)", path, records
                )
        except OSError:  # another worker deleted it first, or the directory is unreadable
            self._error("bound", "could not bound the sealed files in %s", self.path.parent)

    def _reopen(self) -> None:
        """Open the active file and hold its lock; if ingestion sealed it meanwhile, again."""
        while True:
            handle = open(self.path, "ab")  # noqa: SIM115 - closed by stop() or _seal()
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                same = os.fstat(handle.fileno()).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            handle.close()
        self._file = handle
        self._size = handle.tell()


_STOP = object()
_SEAL_SEQ = itertools.count(1)  # process-wide: two logs of one process never share a name
# One encoder for every record: json.dumps with options builds a new encoder on each call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)


def _json_line(item: tuple[float, dict]) -> str:
    created, payload = item
    stamped = {"time": datetime.fromtimestamp(created, UTC).isoformat()}
    stamped.update(payload)
    return _ENCODER.encode(stamped) + "\n"
