"""Read-only Postgres access for the server: a small pool of prepared, time-boxed connections.

Every failure the database can produce (down, slow, pool exhausted, broken connection) comes
out as `Unavailable`, which the app answers from its in-process cache; nothing else escapes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

import psycopg2

from contracts import db
from contracts.db import read_sql
from serving.ab import Variant

LOOKUP_PREPARE = read_sql("serving_lookup.sql")
POINTER_SQL = read_sql("serving_pointer.sql")
EXPERIMENT_SQL = read_sql("serving_experiment.sql")
SHADOW_SQL = read_sql("serving_shadow.sql")


class Unavailable(Exception):
    """The database did not answer in time (or at all); `reason` says which."""

    def __init__(self, reason: str, broken: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.broken = broken  # the connection (and likely the server) is gone, not just slow


@dataclass(frozen=True)
class Experiment:
    """The active A/B experiment: its id, salt and variants (in a stable order)."""

    experiment_id: str
    salt: str
    variants: tuple[Variant, ...]


@dataclass(frozen=True)
class Shadow:
    """The active shadow: a reco version looked up for every answer and logged, never served."""

    reco_version: str
    model_version: str


@dataclass(frozen=True)
class Pointer:
    """What is live, as read from serving_pointer and the tables it names."""

    reco_version: str | None
    model_version: str | None
    published_at: datetime | None
    popular_version: str | None
    popular_items: str  # 'id1,…,id20' exactly as served
    popular_window_end: datetime | None
    updated_at: datetime | None
    experiment: Experiment | None = None
    shadow: Shadow | None = None
    read_at: float = field(default_factory=time.time)


def connect(
    url: str, statement_timeout_ms: int, connect_timeout_s: int, prepare: bool = True
) -> psycopg2.extensions.connection:
    """One autocommit, read-only connection with a statement timeout and the lookup prepared."""
    conn = db.connect(
        url,
        connect_timeout=connect_timeout_s,
        application_name="recs-serving",
        options=(
            f"-c statement_timeout={int(statement_timeout_ms)} "
            "-c default_transaction_read_only=on -c lock_timeout=0 "
            # The lookup runs on the partitioned parent; left to `auto`, Postgres re-plans it
            # on every EXECUTE (0.04-0.06 ms a call, more with more partitions attached). The
            # generic plan prunes partitions at executor start instead. Measured per lookup
            # round trip: 164 -> 152 us with one partition, 174 -> ~130 us with two.
            "-c plan_cache_mode=force_generic_plan"
        ),
    )
    conn.autocommit = True
    if prepare:
        with conn.cursor() as cur:
            cur.execute(LOOKUP_PREPARE)
    return conn


class ReadOnlyStore:
    """A bounded LIFO pool of connections; `lookup` is one EXECUTE of a prepared statement."""

    def __init__(
        self,
        url: str,
        max_connections: int = 4,
        statement_timeout_ms: int = 50,
        connect_timeout_s: int = 2,
    ) -> None:
        self.url = url
        self.max_connections = max_connections
        self.statement_timeout_ms = statement_timeout_ms
        self.connect_timeout_s = connect_timeout_s
        self._idle: list = []
        self._open = 0
        self._lock = threading.Lock()
        # 'EXECUTE serving_lookup ('<version>', ' quoted once per reco version: a request then
        # only appends its (already validated) integer id, with no parameter interpolation.
        self._prefixes: dict[str, bytes] = {}

    # ------------------------------------------------------------------ pool
    def _acquire(self):
        with self._lock:
            if self._idle:
                return self._idle.pop()
            if self._open >= self.max_connections:
                raise Unavailable("connection pool exhausted")
            self._open += 1
        try:
            return connect(self.url, self.statement_timeout_ms, self.connect_timeout_s)
        except psycopg2.Error as exc:
            with self._lock:
                self._open -= 1
            raise Unavailable(f"connect failed: {first_line(exc)}", broken=True) from exc

    def _release(self, conn, broken: bool) -> None:
        if broken or conn.closed:
            _close_quietly(conn)
            with self._lock:
                self._open -= 1
                # The server is likely gone: every idle connection is as dead as this one.
                stale, self._idle = self._idle, []
                self._open -= len(stale)
            for other in stale:
                _close_quietly(other)
            return
        with self._lock:
            self._idle.append(conn)

    def close(self) -> None:
        """Close every idle connection (used at shutdown and by tests)."""
        with self._lock:
            stale, self._idle = self._idle, []
            self._open -= len(stale)
        for conn in stale:
            _close_quietly(conn)

    # ------------------------------------------------------------------ queries
    def lookup(self, reco_version: str, user_id: int) -> str | None:
        """The user's served list in `reco_version`, or None when the user has no row."""
        conn = self._acquire()
        broken = False
        try:
            with conn.cursor() as cur:
                prefix = self._prefixes.get(reco_version)
                if prefix is None:
                    prefix = self._prefix(cur, reco_version)
                cur.execute(prefix + b"%d)" % int(user_id))
                row = cur.fetchone()
            return row[0] if row else None
        except psycopg2.extensions.QueryCanceledError as exc:
            raise Unavailable("statement timeout") from exc
        except psycopg2.Error as exc:
            broken = True
            raise Unavailable(f"query failed: {first_line(exc)}", broken=True) from exc
        finally:
            self._release(conn, broken)

    def _prefix(self, cur, reco_version: str) -> bytes:
        prefix = cur.mogrify("EXECUTE serving_lookup (%s, ", (reco_version,))
        if len(self._prefixes) >= 16:  # versions change rarely; never let this grow unbounded
            self._prefixes.clear()
        self._prefixes[reco_version] = prefix
        return prefix


def read_pointer(conn) -> Pointer:
    """The live pointer plus the active experiment, read on `conn` (the refresher's own)."""
    with conn.cursor() as cur:
        cur.execute(POINTER_SQL)
        row = cur.fetchone()
        cur.execute(EXPERIMENT_SQL)
        variant_rows = cur.fetchall()
    if row is None:
        row = (None,) * 7
    (reco, model, published_at, popular, popular_items, window_end, updated_at) = row
    experiment = None
    if variant_rows:
        variants = tuple(
            Variant(name=r[2], reco_version=r[3], model_version=r[4], share=float(r[5]))
            for r in variant_rows
        )
        if sum(v.share for v in variants) > 0:
            experiment = Experiment(variant_rows[0][0], variant_rows[0][1], variants)
    return Pointer(
        reco_version=reco,
        model_version=model,
        published_at=published_at,
        popular_version=popular,
        popular_items=popular_items or "",
        popular_window_end=window_end,
        updated_at=updated_at,
        experiment=experiment,
        shadow=read_shadow(conn),
    )


def read_shadow(conn) -> Shadow | None:
    """The active shadow, read on the refresher's (autocommit) connection; None when there is
    none, or when this database has no shadow table (yet) or lets the server not read it: a
    shadow is optional, and its absence must never mark the database down."""
    try:
        with conn.cursor() as cur:
            cur.execute(SHADOW_SQL)
            row = cur.fetchone()
    except (psycopg2.errors.UndefinedTable, psycopg2.errors.InsufficientPrivilege):
        return None
    return Shadow(reco_version=row[0], model_version=row[1]) if row else None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _close_quietly(conn) -> None:
    # Closing a dead connection may raise; there is nothing left to do with it.
    with contextlib.suppress(Exception):
        conn.close()
