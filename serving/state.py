"""Per-process serving state: the cached pointer, the popularity cache and the DB breaker.

A background thread re-reads the pointer every `refresh_s` seconds (faster while the database
is unreachable), so publishes, rollbacks and A/B changes are picked up within seconds with no
restart. Requests only read attributes that the thread replaces whole, so they never lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from contracts.fallback import read_fallback, write_fallback
from serving import telemetry
from serving.store import (
    Pointer,
    ReadOnlyStore,
    Unavailable,
    connect,
    first_line,
    read_pointer,
)

log = logging.getLogger("recs.serving")


@dataclass(frozen=True)
class CachedList:
    """The in-process copy of the popularity list, served when the database cannot answer."""

    version: str
    items: str


EMPTY_CACHE = CachedList(version="none", items="")
TIMEOUTS_TO_TRIP = 3  # consecutive statement timeouts that open the breaker


class ServingState:
    """Everything one worker process needs between requests."""

    def __init__(
        self,
        url: str,
        cache_file: Path,
        log_dir: Path,
        refresh_s: float = 2.0,
        retry_s: float = 0.5,
        pool_size: int = 4,
        statement_timeout_ms: int = 50,
        connect_timeout_s: int = 2,
    ) -> None:
        self.url = url
        self.cache_file = Path(cache_file)
        self.log_dir = Path(log_dir)
        self.refresh_s = refresh_s
        self.retry_s = retry_s
        self.statement_timeout_ms = statement_timeout_ms
        self.connect_timeout_s = connect_timeout_s
        self.pool_size = pool_size
        self.store: ReadOnlyStore | None = None
        self.pointer: Pointer | None = None
        self.cache: CachedList = EMPTY_CACHE
        self.db_ok = False
        self.last_error = "not started"
        self.predictions: telemetry.PredictionLog | None = None
        self._pid: int | None = None
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._refresher_conn = None
        self._published_labels: tuple[str, str, str] | None = None
        self._timeouts_in_a_row = 0  # benign races: requests only add and reset

    # ------------------------------------------------------------------ lifecycle
    def ensure_started(self) -> None:
        """Start this process's pool, refresher and log writer once (after any fork)."""
        if self._pid == os.getpid():
            return
        with self._start_lock:
            if self._pid == os.getpid():
                return
            self._start()
            self._pid = os.getpid()

    def _start(self) -> None:
        self._stop = threading.Event()
        self._refresher_conn = None
        self.store = ReadOnlyStore(
            self.url,
            max_connections=self.pool_size,
            statement_timeout_ms=self.statement_timeout_ms,
            connect_timeout_s=self.connect_timeout_s,
        )
        self.cache = self._load_cache_file()
        self.predictions = telemetry.PredictionLog(self.log_dir)
        self.predictions.start()
        self.refresh()
        threading.Thread(target=self._refresh_loop, name="pointer-refresh", daemon=True).start()

    def stop(self) -> None:
        """Stop the refresher and the log writer, close connections (tests and shutdown)."""
        self._stop.set()
        if self.predictions is not None:
            self.predictions.stop()
        if self.store is not None:
            self.store.close()
        if self._refresher_conn is not None:
            self._refresher_conn.close()
        self._pid = None

    # ------------------------------------------------------------------ refresh
    def _refresh_loop(self) -> None:
        stop = self._stop
        while not stop.wait(self.refresh_s if self.db_ok else self.retry_s):
            try:
                self.refresh()
            except Exception:  # keep refreshing whatever happens; say what went wrong
                log.exception("pointer refresh crashed")

    def refresh(self) -> bool:
        """Re-read the pointer; on failure keep the last one and mark the database down."""
        try:
            if self._refresher_conn is None or self._refresher_conn.closed:
                self._refresher_conn = connect(
                    self.url, max(self.statement_timeout_ms, 1000), self.connect_timeout_s, False
                )
            pointer = read_pointer(self._refresher_conn)
        except psycopg2.Error as exc:
            self._mark_down(f"pointer refresh failed: {first_line(exc)}")
            if self._refresher_conn is not None:
                with contextlib.suppress(psycopg2.Error):
                    self._refresher_conn.close()
                self._refresher_conn = None
            return False
        self.pointer = pointer
        if pointer.popular_version and pointer.popular_version != self.cache.version:
            self.cache = CachedList(pointer.popular_version, pointer.popular_items)
            self._save_cache_file(self.cache)
        self.db_ok = True
        self.last_error = ""
        self._timeouts_in_a_row = 0
        self._update_gauges(pointer)
        return True

    def mark_unavailable(self, exc: Unavailable) -> None:
        """A request could not reach the database (it is answered from the cache). Trip the
        breaker at once when the server is gone, and after TIMEOUTS_TO_TRIP statement timeouts
        in a row when it is slow: one slow lookup on a busy machine must not send every
        request to the cache for the next half second."""
        telemetry.DB_FALLBACKS.labels(reason=exc.reason.split(":")[0]).inc()
        if exc.broken:
            self._mark_down(exc.reason)
        elif exc.reason == "statement timeout":
            self._timeouts_in_a_row += 1
            if self._timeouts_in_a_row >= TIMEOUTS_TO_TRIP:
                self._mark_down(f"{exc.reason} ({self._timeouts_in_a_row} in a row)")

    def lookup_ok(self) -> None:
        """A lookup answered: the run of timeouts (if any) is over."""
        if self._timeouts_in_a_row:
            self._timeouts_in_a_row = 0

    def _mark_down(self, reason: str) -> None:
        self.db_ok = False
        self.last_error = reason
        telemetry.DB_UP.labels("serving").set(0)

    def _update_gauges(self, pointer: Pointer) -> None:
        telemetry.DB_UP.labels("serving").set(1)
        labels = (
            pointer.reco_version or "none",
            pointer.model_version or "none",
            pointer.popular_version or "none",
        )
        if labels != self._published_labels:
            if self._published_labels is not None:
                telemetry.PUBLISHED.labels(*self._published_labels).set(0)
            telemetry.PUBLISHED.labels(*labels).set(1)
            self._published_labels = labels
        if pointer.published_at is not None:
            age = max(0.0, time.time() - pointer.published_at.timestamp())
            telemetry.PUBLISHED_AGE.set(age)

    # ------------------------------------------------------------------ disk copy
    def _load_cache_file(self) -> CachedList:
        """The last popularity list seen by any worker or published by the pipeline, so a
        start during an outage has one."""
        stored = read_fallback(self.cache_file)
        return CachedList(*stored) if stored else EMPTY_CACHE

    def _save_cache_file(self, cache: CachedList) -> None:
        try:
            write_fallback(self.cache_file, cache.version, cache.items)
        except OSError as exc:  # the in-memory copy still works; say why the disk one did not
            log.warning("could not write the popularity cache file %s: %s", self.cache_file, exc)
