"""Metadata sync: users and movies seen in accepted snapshots -> metadata API -> dims.

Only ids not yet in Postgres are fetched (the tables are the cache). Each request is retried
with exponential back-off on connection errors and 5xx, waits as told by `Retry-After` on a
429, and records a 404 as `unknown` (so it is not asked again). Results are upserted into the
Postgres tables `movies` and `users` (sql/schema/021_catalog.sql), then both tables are written
as Parquet dims under <lake>/dims/.

The catalogue is optional: a replayed or imported ratings file has no metadata API behind it.
Before fetching, one GET of the first id to fetch (a request the run makes anyway, and the only
kind the API contract promises: there is no health endpoint) with a PROBE_TIMEOUT deadline and
no retry tells whether the API is there: 200 or 404 (and 429, busy) = up; connection refused,
no answer or any other status = unavailable. When the API is unavailable, by the probe or
because BREAKER_FAILURES ids in a row failed mid-run, the sync does not raise: it stores what it
did fetch, writes the dims from what Postgres holds, logs one warning and returns status
`unavailable`; training then uses stream-derived features where metadata is missing (fraction
watched from the max minute seen, no gender/age breakdown). Some ids failing with the API up is
`partial`; nothing left unfetched is `complete`. Ids without metadata are asked again next run.

Each run records its outcome beside the dims, for operators and monitoring:

    <lake>/dims/catalog_status.json   SyncResult as JSON + checked_at (wall clock, for humans)
    <lake>/dims/catalog_sync.prom     Prometheus text format (node_exporter textfile collector):
        catalog_api_up          1 answered, 0 unavailable, NaN not asked (nothing to fetch)
        catalog_ids_fetched     users + movies stored this run (known or unknown)
        catalog_ids_failed      ids left without metadata this run (the next run asks again)
        catalog_status{catalog_status="complete|partial|unavailable"}  1 for this run's status

    python -m jobs.ingest.catalog [--api URL] [--workers 4]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from contracts import settings
from contracts.db import read_sql
from jobs.ingest import lake, summary

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
BASE_DELAY = 0.2
MAX_DELAY = 10.0
TIMEOUT = 5.0
BREAKER_FAILURES = 8
PROBE_TIMEOUT = 2.0  # seconds: the whole cost of finding the API down

STATUSES = ("complete", "partial", "unavailable")
STATUS_FILE = "catalog_status.json"
METRICS_FILE = "catalog_sync.prom"
FAILED = ("failed", None)

MOVIE_COLUMNS = (
    "movie_id", "status", "tmdb_id", "imdb_id", "title", "genres", "release_date", "runtime",
    "popularity", "vote_average", "vote_count", "original_language", "raw",
)  # fmt: skip
USER_COLUMNS = ("user_id", "status", "age", "occupation", "gender", "raw")
# The dims' Parquet schemas (every column but `raw`), fixed so chunks and empty tables agree.
MOVIE_SCHEMA = pa.schema(
    [
        ("movie_id", pa.string()), ("status", pa.string()), ("tmdb_id", pa.int64()),
        ("imdb_id", pa.string()), ("title", pa.string()), ("genres", pa.list_(pa.string())),
        ("release_date", pa.date32()), ("runtime", pa.int32()), ("popularity", pa.float64()),
        ("vote_average", pa.float64()), ("vote_count", pa.int64()),
        ("original_language", pa.string()),
    ]
)  # fmt: skip
USER_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()), ("status", pa.string()), ("age", pa.int32()),
        ("occupation", pa.string()), ("gender", pa.string()),
    ]
)  # fmt: skip
KNOWN_CHUNK = 50_000  # ids per "which of these do we hold" query
DIM_CHUNK = 50_000  # rows per Parquet row group when the dims are written


@dataclass
class SyncResult:
    """What one sync did: counts per entity, how complete the catalogue is, where it went.

    `status` is one of STATUSES and `reason` says why it is not `complete`; the newest snapshot
    (and its newest event time) is the data time the catalogue covers.
    """

    users_seen: int
    movies_seen: int
    users_fetched: int
    movies_fetched: int
    unknown: int
    failed: int
    dims_dir: str
    status: str
    reason: str
    api_url: str
    newest_snapshot: str | None
    newest_event_time: str | None


@dataclass
class Fetched:
    """The API's answers, one (status, document) per id in the order asked, and their status."""

    users: list[tuple[str, dict | None]]
    movies: list[tuple[str, dict | None]]
    status: str
    reason: str


class MetadataClient:
    """GET /user/<id> and /movie/<id> with retries, back-off and rate-limit handling."""

    def __init__(
        self, base_url: str, max_attempts: int = MAX_ATTEMPTS, base_delay: float = BASE_DELAY
    ):
        import requests

        self.base_url = base_url.rstrip("/")
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.session = requests.Session()
        self.failures_in_a_row = 0
        self.last_error: str | None = None

    @property
    def broken(self) -> bool:
        """True after BREAKER_FAILURES ids in a row failed: the API is down, stop asking."""
        return self.failures_in_a_row >= BREAKER_FAILURES

    def probe(self, kind: str, ident: str | int, timeout: float = PROBE_TIMEOUT) -> str | None:
        """None when one GET is answered as the contract says (200, 404; 429 = busy), else why not.

        One attempt, no back-off: a dead API costs at most `timeout` seconds here.
        """
        import requests

        path = f"/{kind}/{ident}"
        try:
            resp = self.session.get(self.base_url + path, timeout=timeout)
        except requests.RequestException as exc:
            return f"GET {path}: {_why(exc, timeout)}"
        if resp.status_code in (200, 404, 429):
            return None
        return f"GET {path} answered {resp.status_code}"

    def get(self, kind: str, ident: str | int) -> tuple[str, dict | None]:
        """('known', json) | ('unknown', None) on 404 | ('failed', None) after all attempts."""
        if self.broken:
            return "failed", None
        status, doc = self._get(kind, ident)
        self.failures_in_a_row = self.failures_in_a_row + 1 if status == "failed" else 0
        return status, doc

    def _get(self, kind: str, ident: str | int) -> tuple[str, dict | None]:
        import requests

        path = f"/{kind}/{ident}"
        url = self.base_url + path
        for attempt in range(self.max_attempts):
            delay = min(MAX_DELAY, self.base_delay * 2**attempt) * (0.5 + random.random())  # noqa: S311 - jitter
            try:
                resp = self.session.get(url, timeout=TIMEOUT)
            except requests.RequestException as exc:
                log.debug("GET %s: %s (attempt %d)", url, exc, attempt + 1)
                self.last_error = f"GET {path}: {_why(exc, TIMEOUT)}"
                time.sleep(delay)
                continue
            if resp.status_code == 200:
                return "known", resp.json()
            if resp.status_code == 404:
                return "unknown", None
            if resp.status_code == 429:
                retry_after = resp.headers.get("Retry-After")
                with contextlib.suppress(ValueError):  # an HTTP date: keep our own back-off
                    delay = min(MAX_DELAY, float(retry_after)) if retry_after else delay
            elif resp.status_code < 500:
                log.warning("GET %s answered %d; not retried", url, resp.status_code)
                self.last_error = f"GET {path} answered {resp.status_code}"
                return "failed", None
            self.last_error = f"GET {path} answered {resp.status_code}"
            time.sleep(delay)
        log.warning("GET %s failed after %d attempts", url, self.max_attempts)
        return "failed", None


def _why(exc: Exception, timeout: float) -> str:
    """A short reason for a failed request: `[Errno 111] Connection refused`, not a traceback."""
    import requests

    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout:g} s"
    found = re.search(r"\[Errno -?\d+\][^'\")]*", str(exc))
    return found[0].strip() if found else type(exc).__name__


def fetch(
    client: MetadataClient, todo_users: list[int], todo_movies: list[str], workers: int = 4
) -> Fetched:
    """Probe the API once, then fetch every id unless it is unavailable; never raises for it."""
    if not todo_users and not todo_movies:
        return Fetched([], [], "complete", "")
    first = ("user", todo_users[0]) if todo_users else ("movie", todo_movies[0])
    reason = client.probe(*first)
    if reason is not None:
        return Fetched(
            [FAILED] * len(todo_users), [FAILED] * len(todo_movies), "unavailable", reason
        )
    with ThreadPoolExecutor(max_workers=workers) as pool:
        users = list(pool.map(lambda u: client.get("user", u), todo_users))
        movies = list(pool.map(lambda m: client.get("movie", m), todo_movies))
    failed = sum(s == "failed" for s, _ in users + movies)
    if client.broken:
        reason = f"{BREAKER_FAILURES} ids in a row failed, last {client.last_error}"
        return Fetched(users, movies, "unavailable", reason)
    if failed:
        return Fetched(users, movies, "partial", f"{failed} ids failed, last {client.last_error}")
    return Fetched(users, movies, "complete", "")


def newest_snapshot(snapshots: list[Path]) -> tuple[str | None, str | None]:
    """(id, newest event time) of the newest snapshot given: the data time the catalogue covers."""
    manifests = [lake.read_manifest(p) for p in snapshots if (Path(p) / lake.MANIFEST).exists()]
    if not manifests:
        return None, None
    newest = max(manifests, key=lambda m: m.get("max_event_time") or "")
    return newest["snapshot_id"], newest.get("max_event_time")


def record(result: SyncResult) -> Path:
    """Write the status file and the metric textfile beside the dims, warn unless complete.

    Returns the status file's path.
    """
    dims_dir = Path(result.dims_dir)
    dims_dir.mkdir(parents=True, exist_ok=True)
    status_path = dims_dir / STATUS_FILE
    doc = {**asdict(result), "checked_at": datetime.now(UTC).isoformat(timespec="seconds")}
    tmp = dims_dir / f"_tmp-{STATUS_FILE}"
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, status_path)
    _write_metrics(result, dims_dir / METRICS_FILE)
    if result.status == "unavailable":
        log.warning(
            "catalog: metadata API %s unavailable (%s); catalogue recorded as unavailable in %s; "
            "stored %d users, %d movies fetched, %d ids left for the next run; training continues "
            "on stream-derived features (fraction watched from the max minute seen, no gender/age "
            "breakdowns)",
            result.api_url, result.reason, status_path, result.users_fetched,
            result.movies_fetched, result.failed,
        )  # fmt: skip
    elif result.status == "partial":
        log.warning(
            "catalog: %d ids could not be fetched (%s); the next run retries them",
            result.failed, result.reason,
        )  # fmt: skip
    return status_path


def _write_metrics(result: SyncResult, path: Path) -> None:
    """The module doc's four metrics, in Prometheus text format (written aside, then renamed)."""
    from prometheus_client import CollectorRegistry, Enum, Gauge, write_to_textfile

    asked = result.users_fetched + result.movies_fetched + result.failed
    api_up = 0.0 if result.status == "unavailable" else 1.0 if asked else float("nan")
    fetched = result.users_fetched + result.movies_fetched
    registry = CollectorRegistry()
    for name, doc, value in (
        ("catalog_api_up", "Metadata API answered: 1 yes, 0 unavailable, NaN not asked", api_up),
        ("catalog_ids_fetched", "Users + movies stored (known or unknown)", fetched),
        ("catalog_ids_failed", "Ids left without metadata, asked again next sync", result.failed),
    ):
        Gauge(name, f"{doc} (last catalog sync)", registry=registry).set(value)
    Enum(
        "catalog_status", "How complete the last catalog sync left the catalogue",
        states=list(STATUSES), registry=registry,
    ).state(result.status)  # fmt: skip
    write_to_textfile(str(path), registry)


def seen_ids(snapshots: list[Path]) -> tuple[list[int], list[str]]:
    """Distinct user ids (all event tables) and movie ids (watch, rate) in the snapshots.

    Read from each snapshot's stored summary (jobs/ingest/summary.py), not its rows.
    """
    users = [pa.array([], pa.int64())]
    movies = [pa.array([], pa.string())]
    for snap in snapshots:
        found = summary.load(Path(snap))
        users = [pc.unique(pa.concat_arrays([*users, found.users]))]
        movies = [pc.unique(pa.concat_arrays([*movies, found.movies]))]
    return sorted(users[0].to_pylist()), sorted(movies[0].to_pylist())


def known_ids(conn, kind: str, ids: list) -> set:
    """Those of `ids` the catalogue already holds (asked in chunks: memory follows `ids`)."""
    statement = text_of(f"ingest/catalog_known_{kind}.sql")
    found: set = set()
    for start in range(0, len(ids), KNOWN_CHUNK):
        rows = conn.execute(statement, {"ids": ids[start : start + KNOWN_CHUNK]})
        found.update(r[0] for r in rows)
    return found


def unsynced(database_url: str | None) -> list[tuple[str, Path]]:
    """(id, directory) of accepted snapshots the sync has not fully looked up, oldest first."""
    from contracts import db

    with db.engine(database_url).connect() as conn:
        rows = conn.execute(text_of("ingest/catalog_todo.sql")).all()
    return [(r[0], Path(r[1])) for r in rows]


def _movie_row(movie_id: str, status: str, doc: dict | None) -> dict[str, Any]:
    doc = doc or {}
    genres = [g.get("name") for g in doc.get("genres") or [] if isinstance(g, dict)]
    release = doc.get("release_date") or None
    return {
        "movie_id": movie_id,
        "status": status,
        "tmdb_id": doc.get("tmdb_id"),
        "imdb_id": doc.get("imdb_id"),
        "title": doc.get("title"),
        "genres": genres if doc else None,
        "release_date": release,
        "runtime": doc.get("runtime"),
        "popularity": doc.get("popularity"),
        "vote_average": doc.get("vote_average"),
        "vote_count": doc.get("vote_count"),
        "original_language": doc.get("original_language"),
        "raw": json.dumps(doc) if doc else None,
    }


def _user_row(user_id: int, status: str, doc: dict | None) -> dict[str, Any]:
    doc = doc or {}
    return {
        "user_id": user_id,
        "status": status,
        "age": doc.get("age"),
        "occupation": doc.get("occupation"),
        "gender": doc.get("gender"),
        "raw": json.dumps(doc) if doc else None,
    }


def _upsert(conn, table: str, key: str, columns: tuple[str, ...], rows: list[dict]) -> None:
    from sqlalchemy import text

    if not rows:
        return
    names = ", ".join(columns)
    values = ", ".join(f"CAST(:{c} AS jsonb)" if c == "raw" else f":{c}" for c in columns)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != key)
    conn.execute(
        text(
            f"INSERT INTO {table} ({names}) VALUES ({values}) "  # noqa: S608 - fixed names
            f"ON CONFLICT ({key}) DO UPDATE SET {updates}, fetched_at = now()"
        ),
        rows,
    )


def _write_dims(conn, dims_dir: Path, changed: bool) -> None:
    """Both tables as Parquet, streamed from Postgres in chunks (skipped when nothing changed)."""
    from sqlalchemy import text

    dims_dir.mkdir(parents=True, exist_ok=True)
    for table, schema in (("movies", MOVIE_SCHEMA), ("users", USER_SCHEMA)):
        final = dims_dir / f"{table}.parquet"
        if final.exists() and not changed:
            continue
        query = text(f"SELECT {', '.join(schema.names)} FROM {table} ORDER BY 1")  # noqa: S608
        rows = conn.execution_options(stream_results=True, max_row_buffer=DIM_CHUNK).execute(query)
        tmp = dims_dir / f"_tmp-{table}.parquet"
        with pq.ParquetWriter(tmp, schema) as writer:
            for chunk in rows.partitions(DIM_CHUNK):
                writer.write_table(pa.Table.from_pylist([dict(r._mapping) for r in chunk], schema))
        os.replace(tmp, final)


def sync(
    api_url: str | None = None,
    snapshots: list[Path] | None = None,
    database_url: str | None = None,
    root: str | Path | None = None,
    workers: int = 4,
    client: MetadataClient | None = None,
) -> SyncResult:
    """Fetch metadata of ids seen in accepted snapshots that Postgres does not hold yet.

    Without `snapshots`, only accepted snapshots not yet synced are read (the watermark table
    `catalog_synced`); they are recorded as synced when the run is `complete`. Does not raise
    when the API is unavailable: the result's status says so (module doc).
    """
    from contracts import db

    client = client or MetadataClient(api_url or settings.load().metadata_api_url)
    todo_snapshots = unsynced(database_url) if snapshots is None else []
    if snapshots is None:
        snapshots = [path for _, path in todo_snapshots]
    users, movies = seen_ids(snapshots)
    engine = db.engine(database_url)
    with engine.connect() as conn:
        todo_users = sorted(set(users) - known_ids(conn, "users", users))
        todo_movies = sorted(set(movies) - known_ids(conn, "movies", movies))
    log.info(
        "catalog: %d new snapshots, %d users, %d movies seen; fetching %d users, %d movies",
        len(snapshots), len(users), len(movies), len(todo_users), len(todo_movies),
    )  # fmt: skip
    fetched = fetch(client, todo_users, todo_movies, workers)
    user_rows = [_user_row(u, *got) for u, got in zip(todo_users, fetched.users, strict=True)]
    movie_rows = [_movie_row(m, *got) for m, got in zip(todo_movies, fetched.movies, strict=True)]
    user_rows = [r for r in user_rows if r["status"] != "failed"]
    movie_rows = [r for r in movie_rows if r["status"] != "failed"]
    dims_dir = lake.lake_root(root) / lake.DIMS
    with engine.begin() as conn:
        _upsert(conn, "users", "user_id", USER_COLUMNS, user_rows)
        _upsert(conn, "movies", "movie_id", MOVIE_COLUMNS, movie_rows)
        if fetched.status == "complete" and todo_snapshots:
            ids = [snapshot_id for snapshot_id, _ in todo_snapshots]
            conn.execute(text_of("ingest/catalog_synced.sql"), {"ids": ids})
        _write_dims(conn, dims_dir, changed=bool(user_rows or movie_rows))
    statuses = [s for s, _ in fetched.users + fetched.movies]
    snapshot_id, newest_time = newest_snapshot(snapshots) if snapshots else _last_newest(dims_dir)
    result = SyncResult(
        users_seen=len(users),
        movies_seen=len(movies),
        users_fetched=len(user_rows),
        movies_fetched=len(movie_rows),
        unknown=statuses.count("unknown"),
        failed=statuses.count("failed"),
        dims_dir=str(dims_dir),
        status=fetched.status,
        reason=fetched.reason,
        api_url=client.base_url,
        newest_snapshot=snapshot_id,
        newest_event_time=newest_time,
    )
    record(result)
    return result


def text_of(name: str):
    """A statement from sql/ as a SQLAlchemy text clause."""
    from sqlalchemy import text

    return text(read_sql(name))


def _last_newest(dims_dir: Path) -> tuple[str | None, str | None]:
    """The data time the previous run recorded (nothing new was read this run)."""
    path = dims_dir / STATUS_FILE
    if not path.is_file():
        return None, None
    doc = json.loads(path.read_text(encoding="utf-8"))
    return doc.get("newest_snapshot"), doc.get("newest_event_time")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", help="metadata API base URL (default: METADATA_API_URL)")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    print(json.dumps(asdict(sync(api_url=args.api, workers=args.workers))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
