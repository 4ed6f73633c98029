"""Metadata sync: users and movies seen in accepted snapshots -> metadata API -> dims.

Only ids not yet in Postgres are fetched (the tables are the cache). Each request is retried
with exponential back-off on connection errors and 5xx, waits as told by `Retry-After` on a
429, and records a 404 as `unknown` (so it is not asked again). Results are upserted into the
Postgres tables `movies` and `users` (sql/schema/021_catalog.sql), then both tables are written
as Parquet dims under <lake>/dims/.

    python -m jobs.catalog_sync [--api URL] [--workers 4]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jobs import lake, parse, settings
from jobs.columns import ITEM_COL, USER_COL

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
BASE_DELAY = 0.2
MAX_DELAY = 10.0
TIMEOUT = 5.0
BREAKER_FAILURES = 8

MOVIE_COLUMNS = (
    "movie_id", "status", "tmdb_id", "imdb_id", "title", "genres", "release_date", "runtime",
    "popularity", "vote_average", "vote_count", "original_language", "raw",
)  # fmt: skip
USER_COLUMNS = ("user_id", "status", "age", "occupation", "gender", "raw")


@dataclass
class SyncResult:
    """What one sync did: counts per entity and where the dims were written."""

    users_seen: int
    movies_seen: int
    users_fetched: int
    movies_fetched: int
    unknown: int
    failed: int
    dims_dir: str


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

    @property
    def broken(self) -> bool:
        """True after BREAKER_FAILURES ids in a row failed: the API is down, stop asking."""
        return self.failures_in_a_row >= BREAKER_FAILURES

    def get(self, kind: str, ident: str | int) -> tuple[str, dict | None]:
        """('known', json) | ('unknown', None) on 404 | ('failed', None) after all attempts."""
        if self.broken:
            return "failed", None
        status, doc = self._get(kind, ident)
        self.failures_in_a_row = self.failures_in_a_row + 1 if status == "failed" else 0
        return status, doc

    def _get(self, kind: str, ident: str | int) -> tuple[str, dict | None]:
        import requests

        url = f"{self.base_url}/{kind}/{ident}"
        for attempt in range(self.max_attempts):
            delay = min(MAX_DELAY, self.base_delay * 2**attempt) * (0.5 + random.random())
            try:
                resp = self.session.get(url, timeout=TIMEOUT)
            except requests.RequestException as exc:
                log.debug("GET %s: %s (attempt %d)", url, exc, attempt + 1)
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
                return "failed", None
            time.sleep(delay)
        log.warning("GET %s failed after %d attempts", url, self.max_attempts)
        return "failed", None


def seen_ids(snapshots: list[Path]) -> tuple[list[int], list[str]]:
    """Distinct user ids (all event tables) and movie ids (watch, rate) in the snapshots."""
    users, movies = [], []
    for snap in snapshots:
        for table in parse.TABLES:
            for path in lake.table_files(snap, table):
                users.append(pq.read_table(path, columns=[USER_COL])[USER_COL].combine_chunks())
                if table != "reco_request":
                    movies.append(
                        pq.read_table(path, columns=[ITEM_COL])[ITEM_COL].combine_chunks()
                    )
    user_ids = pc.unique(pa.concat_arrays(users)).to_pylist() if users else []
    movie_ids = pc.unique(pa.concat_arrays(movies)).to_pylist() if movies else []
    return sorted(user_ids), sorted(movie_ids)


def _known(conn, table: str, column: str) -> set:
    from sqlalchemy import text

    return {r[0] for r in conn.execute(text(f"SELECT {column} FROM {table}"))}  # noqa: S608


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


def _write_dims(conn, dims_dir: Path) -> None:
    import pandas as pd
    from sqlalchemy import text

    dims_dir.mkdir(parents=True, exist_ok=True)
    for table, columns in (("movies", MOVIE_COLUMNS), ("users", USER_COLUMNS)):
        cols = [c for c in columns if c != "raw"]
        frame = pd.read_sql(text(f"SELECT {', '.join(cols)} FROM {table} ORDER BY 1"), conn)  # noqa: S608
        tmp = dims_dir / f"_tmp-{table}.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)
        os.replace(tmp, dims_dir / f"{table}.parquet")


def sync(
    api_url: str | None = None,
    snapshots: list[Path] | None = None,
    database_url: str | None = None,
    root: str | Path | None = None,
    workers: int = 4,
    client: MetadataClient | None = None,
) -> SyncResult:
    """Fetch metadata of ids seen in accepted snapshots that Postgres does not hold yet."""
    from jobs import db

    cfg = settings.load()
    client = client or MetadataClient(api_url or cfg.metadata_api_url)
    if snapshots is None:
        snapshots = [ref.path for ref in lake.accepted_snapshots(database_url=database_url)]
    users, movies = seen_ids(snapshots)
    engine = db.engine(database_url)
    with engine.connect() as conn:
        todo_users = sorted(set(users) - _known(conn, "users", "user_id"))
        todo_movies = sorted(set(movies) - _known(conn, "movies", "movie_id"))
    log.info(
        "catalog: %d users, %d movies seen; fetching %d users, %d movies",
        len(users), len(movies), len(todo_users), len(todo_movies),
    )  # fmt: skip
    with ThreadPoolExecutor(max_workers=workers) as pool:
        user_docs = list(pool.map(lambda u: client.get("user", u), todo_users))
        movie_docs = list(pool.map(lambda m: client.get("movie", m), todo_movies))
    user_rows = [
        _user_row(u, s, d) for u, (s, d) in zip(todo_users, user_docs, strict=True) if s != "failed"
    ]
    movie_rows = [
        _movie_row(m, s, d)
        for m, (s, d) in zip(todo_movies, movie_docs, strict=True)
        if s != "failed"
    ]
    statuses = [s for s, _ in user_docs + movie_docs]
    dims_dir = lake.lake_root(root) / lake.DIMS
    with engine.begin() as conn:
        _upsert(conn, "users", "user_id", USER_COLUMNS, user_rows)
        _upsert(conn, "movies", "movie_id", MOVIE_COLUMNS, movie_rows)
        _write_dims(conn, dims_dir)
    result = SyncResult(
        users_seen=len(users),
        movies_seen=len(movies),
        users_fetched=len(user_rows),
        movies_fetched=len(movie_rows),
        unknown=statuses.count("unknown"),
        failed=statuses.count("failed"),
        dims_dir=str(dims_dir),
    )
    if client.broken:
        raise RuntimeError(
            f"metadata API {client.base_url} is not answering ({BREAKER_FAILURES} ids in a row "
            f"failed); stored what was fetched ({result.users_fetched} users, "
            f"{result.movies_fetched} movies), the next run retries the rest"
        )
    if result.failed:
        log.warning(
            "catalog: %d ids could not be fetched; the next run retries them", result.failed
        )
    return result


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
