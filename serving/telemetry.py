"""Prediction log (JSON lines, written by a background thread) and Prometheus metrics.

Metrics work under several gunicorn workers: gunicorn_conf.py sets PROMETHEUS_MULTIPROC_DIR
before prometheus_client is imported, each worker writes its own mmap files, and /metrics
merges them. No metric has a per-user label.
"""

from __future__ import annotations

import json
import logging
import os
import queue
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener, RotatingFileHandler
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

PREDICTION_LOGGER = "recs.predictions"
LOG_MAX_BYTES = 50 * 1024 * 1024
LOG_BACKUPS = 5

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
# Labelled so that no value exists until a worker sets one (the preloading master never does).
DB_UP = Gauge(
    "recs_db_available",
    "1 when the worker's last pointer refresh reached the database, else 0 (min over workers).",
    ["database"],
    multiprocess_mode="livemin",
)


def metrics_payload() -> tuple[bytes, str]:
    """The exposition text for /metrics: merged over workers in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


class _RecordQueueHandler(QueueHandler):
    """Enqueue the record untouched: formatting (JSON encoding) happens on the listener thread."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: the record's dict payload plus its creation time."""

    def format(self, record: logging.LogRecord) -> str:
        payload = record.msg if isinstance(record.msg, dict) else {"message": record.getMessage()}
        stamped = {"time": datetime.fromtimestamp(record.created, UTC).isoformat()}
        stamped.update(payload)
        return json.dumps(stamped, separators=(",", ":"), default=str)


class PredictionLog:
    """A per-process, rotated JSON-lines file fed through a queue by a listener thread."""

    def __init__(self, log_dir: Path) -> None:
        self.path = Path(log_dir) / f"predictions-{os.getpid()}.jsonl"
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._logger = logging.getLogger(f"{PREDICTION_LOGGER}.{os.getpid()}")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        self._listener: QueueListener | None = None

    def start(self) -> None:
        """Open the file and start the writer thread."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(
            self.path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
        )
        handler.setFormatter(JsonLineFormatter())
        self._listener = QueueListener(self._queue, handler)
        self._listener.start()
        self._logger.handlers[:] = [_RecordQueueHandler(self._queue)]

    def write(self, payload: dict) -> None:
        """Queue one prediction record (returns at once; the listener writes it)."""
        self._logger.info(payload)

    def stop(self) -> None:
        """Flush what is queued and stop the writer thread."""
        if self._listener is not None:
            self._listener.stop()
            for handler in self._listener.handlers:
                handler.close()
            self._listener = None
