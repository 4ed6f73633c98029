"""Write–audit–publish of precomputed top-k lists into the tables the serving tier reads.

1. `load_recommendations` streams rows with COPY into a new standalone table (never the live
   one), then adds its primary key and a CHECK that matches its partition bound.
2. `audit` checks it (one row per user, k distinct ids per row, ids in the catalog, expected
   row count) and only then attaches it as a partition of `recommendations`.
3. `publish` switches `serving_pointer` in one transaction, keeping the previous version for
   `rollback`. A crash anywhere before step 3 leaves what is served untouched.

`python -m jobs.publish.publish status | rollback [--popular] | publish VERSION |
retire [--keep N]`.
"""

from __future__ import annotations

import argparse
import hashlib
import operator
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg2
from psycopg2 import sql

from contracts import settings as settings_mod
from contracts.names import USER_COL

K = 20
ITEMS_COL = "items"
MAX_USER_ID = 2**63 - 1
COPY_CHUNK = 256 * 1024
ATTACHED = ("audited", "published")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,127}", re.ASCII)
# Characters that would break the served 'id,id,…' line or COPY's text format.
_BAD_ID_CHARS = re.compile(r"[\t\n\r\\]|,,|^,|,$")


class PublishError(RuntimeError):
    """A load, publish or rollback was refused; the message says why."""


class AuditError(PublishError):
    """The loaded table failed its audit; `problems` lists every failed check."""

    def __init__(self, reco_version: str, problems: list[str]) -> None:
        super().__init__(f"audit of {reco_version} failed: " + "; ".join(problems))
        self.problems = problems


@dataclass
class AuditReport:
    """What `audit` measured on one loaded version."""

    reco_version: str
    n_rows: int
    k: int
    wrong_length: int = 0
    with_duplicates: int = 0
    unknown_ids: int = 0
    unknown_sample: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- helpers
def _connect(url: str | None):
    return psycopg2.connect(url or settings_mod.load().database_url)


def check_version(reco_version: str) -> str:
    """`reco_version` if it is a usable version name, else ValueError saying why."""
    if not isinstance(reco_version, str) or not _VERSION.fullmatch(reco_version):
        raise ValueError(
            f"version {reco_version!r} must be 1-128 characters of A-Z a-z 0-9 _ . : + - "
            "starting with a letter or digit"
        )
    return reco_version


def table_name(reco_version: str) -> str:
    """The standalone table (later partition) holding one reco version: readable and unique."""
    safe = re.sub(r"[^a-z0-9]+", "_", check_version(reco_version).lower()).strip("_")[:32]
    digest = hashlib.blake2b(reco_version.encode(), digest_size=4).hexdigest()
    return f"recommendations_{safe}_{digest}"


def encode_items(items: Sequence | str, where: str = "") -> str:
    """The served 'id1,…,idn' text of a list of movie ids, or ValueError naming the problem."""
    if isinstance(items, str):
        joined = items
        count = items.count(",") + 1 if items else 0
    else:
        joined = ",".join(map(str, items))
        count = len(items)
    if count == 0:
        raise ValueError(f"{where}empty list of movie ids")
    if joined.count(",") != count - 1 or _BAD_ID_CHARS.search(joined):
        raise ValueError(
            f"{where}movie ids must be non-empty and contain no comma, tab, newline or "
            f"backslash: {joined[:120]!r}"
        )
    return joined


def _user_id(value, where: str) -> int:
    try:
        user = operator.index(value)
    except TypeError:
        if isinstance(value, str) and value.isascii() and value.isdigit():
            user = int(value)
        else:
            raise ValueError(f"{where}user id {value!r} is not an integer") from None
    if not 1 <= user <= MAX_USER_ID:
        raise ValueError(f"{where}user id {user} is outside 1..{MAX_USER_ID}")
    return user


def iter_rows(rows) -> Iterator[tuple[object, object]]:
    """(user_id, items) pairs from an iterable, a pandas DataFrame or a pyarrow Table.

    Frames need the columns `user_id` and `items` (a list of ids, or the joined text).
    """
    module = type(rows).__module__
    if module.startswith("pandas"):
        yield from zip(rows[USER_COL].tolist(), rows[ITEMS_COL], strict=True)
    elif module.startswith("pyarrow"):
        for batch in rows.to_batches(max_chunksize=65536):
            users = batch.column(batch.schema.get_field_index(USER_COL)).to_pylist()
            items = batch.column(batch.schema.get_field_index(ITEMS_COL)).to_pylist()
            yield from zip(users, items, strict=True)
    else:
        yield from rows


class _CopyStream:
    """A file-like `read(size)` over encoded COPY lines, pulled lazily from the row iterator."""

    def __init__(self, rows: Iterable, progress) -> None:
        self._rows = iter(rows)
        self._buf = bytearray()
        self._done = False
        self._progress = progress
        self.count = 0
        self.error: BaseException | None = None  # psycopg2 would replace it with QueryCanceled

    def _fill(self, size: int) -> None:
        lines = []
        filled = len(self._buf)
        for user, items in self._rows:
            where = f"row {self.count + 1}: "
            line = f"{_user_id(user, where)}\t{encode_items(items, where)}\n"
            lines.append(line)
            filled += len(line)
            self.count += 1
            if filled >= size:
                break
        else:
            self._done = True
        self._buf += "".join(lines).encode()
        self._progress.update(len(lines))

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = 1 << 62
        if len(self._buf) < size and not self._done:
            try:
                self._fill(size)
            except BaseException as exc:
                self.error = exc
                raise
        out = bytes(self._buf[:size])
        del self._buf[:size]
        return out


def _version_row(cur, reco_version: str, lock: bool = False):
    cur.execute(
        "SELECT status, table_name, model_version FROM reco_versions WHERE reco_version = %s"
        + (" FOR UPDATE" if lock else ""),
        (reco_version,),
    )
    return cur.fetchone()


def _mark(url: str | None, reco_version: str, status: str) -> None:
    """Record a version's status; best effort, so it never hides the error being handled."""
    try:
        conn = _connect(url)
    except psycopg2.Error:
        return
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE reco_versions SET status = %s WHERE reco_version = %s",
                (status, reco_version),
            )
    except psycopg2.Error:
        pass
    finally:
        conn.close()


# ---------------------------------------------------------------------------- write
def load_recommendations(
    rows,
    reco_version: str,
    model_version: str,
    url: str | None = None,
    total: int | None = None,
) -> str:
    """COPY (user_id, ids) rows into a new standalone table for `reco_version`; return its name.

    Rows are streamed (never held in memory) and checked as they go; a bad row, an exception
    or a killed process rolls the whole load back and leaves what is served untouched.
    """
    from tqdm import tqdm

    table = table_name(reco_version)
    ident = sql.Identifier(table)
    if total is None and hasattr(rows, "__len__") and not isinstance(rows, Iterator):
        total = len(rows)
    conn = _connect(url)
    try:
        with conn.cursor() as cur:
            existing = _version_row(cur, reco_version, lock=True)
            if existing and existing[0] not in ("loaded", "failed"):
                raise PublishError(
                    f"{reco_version} is already {existing[0]}; load a new version instead"
                )
            cur.execute(
                "INSERT INTO reco_versions (reco_version, model_version, table_name, n_users, "
                "status) VALUES (%s, %s, %s, 0, 'loaded') ON CONFLICT (reco_version) DO UPDATE "
                "SET model_version = EXCLUDED.model_version, table_name = EXCLUDED.table_name, "
                "n_users = 0, status = 'loaded', created_at = now()",
                (reco_version, model_version, table),
            )
        conn.commit()
        stream = None
        try:
            with (
                conn.cursor() as cur,
                tqdm(
                    total=total, unit="users", desc=f"COPY {reco_version}", disable=None
                ) as progress,
            ):
                cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table,))
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
                cur.execute(
                    sql.SQL(
                        "CREATE TABLE {} (reco_version text NOT NULL DEFAULT {}, "
                        "user_id bigint NOT NULL, items text NOT NULL)"
                    ).format(ident, sql.Literal(reco_version))
                )
                stream = _CopyStream(iter_rows(rows), progress)
                cur.copy_expert(
                    sql.SQL("COPY {} (user_id, items) FROM STDIN").format(ident).as_string(cur),
                    stream,
                    size=COPY_CHUNK,
                )
                if stream.count == 0:
                    raise PublishError(f"{reco_version}: no rows to load")
                cur.execute(
                    sql.SQL(
                        "ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY (reco_version, user_id), "
                        "ADD CONSTRAINT {} CHECK (reco_version = {})"
                    ).format(
                        ident,
                        sql.Identifier(f"{table}_pkey"),
                        sql.Identifier(f"{table}_version"),
                        sql.Literal(reco_version),
                    )
                )
                cur.execute(sql.SQL("ANALYZE {}").format(ident))
                cur.execute(
                    "UPDATE reco_versions SET n_users = %s WHERE reco_version = %s",
                    (stream.count, reco_version),
                )
            conn.commit()
        except psycopg2.errors.UniqueViolation as exc:
            conn.rollback()
            _mark(url, reco_version, "failed")
            raise PublishError(f"{reco_version}: a user appears more than once") from exc
        except BaseException as exc:
            conn.rollback()
            _mark(url, reco_version, "failed")
            if stream is not None and stream.error is not None and stream.error is not exc:
                raise stream.error from None  # the rows' own error, not COPY's wrapper
            raise
    finally:
        conn.close()
    return table


# ---------------------------------------------------------------------------- audit
def audit(
    reco_version: str,
    expected_users: int | None = None,
    catalog: Iterable | None = None,
    url: str | None = None,
    k: int = K,
) -> AuditReport:
    """Check a loaded version; attach it as a partition and mark it audited, or raise AuditError.

    Checks: at least one row; exactly `expected_users` rows when given; every row has exactly
    k distinct ids (min(k, catalog size) when a catalog is given); every id in the catalog.
    One row per user is the primary key's job.
    """
    catalog_ids = None if catalog is None else sorted({str(x) for x in catalog})
    if catalog_ids is not None:
        k = min(k, len(catalog_ids))
    conn = _connect(url)
    try:
        with conn.cursor() as cur:
            row = _version_row(cur, reco_version, lock=True)
            if row is None:
                raise PublishError(f"{reco_version} was never loaded")
            status, table, _ = row
            if status != "loaded":
                raise PublishError(f"{reco_version} is {status}, not loaded; nothing to audit")
            ident = sql.Identifier(table)
            cur.execute(
                sql.SQL(
                    "SELECT count(*), "
                    "count(*) FILTER (WHERE cardinality(a) <> %(k)s), "
                    "count(*) FILTER (WHERE (SELECT count(DISTINCT x) FROM unnest(a) AS x) "
                    "<> cardinality(a)) "
                    "FROM (SELECT string_to_array(items, ',') AS a FROM {}) AS s"
                ).format(ident),
                {"k": k},
            )
            n_rows, wrong_length, duplicates = cur.fetchone()
            report = AuditReport(reco_version, n_rows, k, wrong_length, duplicates)
            if n_rows == 0:
                report.problems.append("the table is empty")
            if expected_users is not None and n_rows != expected_users:
                report.problems.append(f"{n_rows} rows, expected {expected_users} users")
            if wrong_length:
                report.problems.append(f"{wrong_length} rows do not have exactly {k} ids")
            if duplicates:
                report.problems.append(f"{duplicates} rows repeat an id")
            if catalog_ids is not None:
                cur.execute(
                    "CREATE TEMP TABLE audit_catalog (movie_id text PRIMARY KEY) ON COMMIT DROP"
                )
                cur.execute(
                    "INSERT INTO audit_catalog SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
                    (catalog_ids,),
                )
                cur.execute(
                    sql.SQL(
                        "SELECT count(*), (array_agg(DISTINCT x))[1:5] FROM {} AS t, "
                        "unnest(string_to_array(t.items, ',')) AS x "
                        "WHERE NOT EXISTS (SELECT 1 FROM audit_catalog c WHERE c.movie_id = x)"
                    ).format(ident)
                )
                report.unknown_ids, sample = cur.fetchone()
                report.unknown_sample = list(sample or [])
                if report.unknown_ids:
                    report.problems.append(
                        f"{report.unknown_ids} ids are not in the catalog "
                        f"(e.g. {', '.join(report.unknown_sample)})"
                    )
            if report.problems:
                cur.execute(
                    "UPDATE reco_versions SET status = 'failed' WHERE reco_version = %s",
                    (reco_version,),
                )
                conn.commit()
                raise AuditError(reco_version, report.problems)
            cur.execute(
                sql.SQL(
                    "ALTER TABLE recommendations ATTACH PARTITION {} FOR VALUES IN ({})"
                ).format(ident, sql.Literal(reco_version))
            )
            cur.execute(
                "UPDATE reco_versions SET status = 'audited', n_users = %s WHERE reco_version = %s",
                (n_rows, reco_version),
            )
        conn.commit()
        return report
    finally:
        conn.close()


# ---------------------------------------------------------------------------- publish
def _lock_pointer(cur) -> tuple:
    cur.execute(
        "SELECT reco_version, popular_version, previous_reco_version, previous_popular_version "
        "FROM serving_pointer WHERE id FOR UPDATE"
    )
    row = cur.fetchone()
    if row is None:  # the schema inserts it; a hand-emptied table gets it back
        cur.execute("INSERT INTO serving_pointer (id) VALUES (true)")
        return (None, None, None, None)
    return row


def _require_attached(cur, reco_version: str) -> None:
    row = _version_row(cur, reco_version, lock=True)
    if row is None:
        raise PublishError(f"{reco_version} does not exist")
    if row[0] not in ATTACHED:
        raise PublishError(f"{reco_version} is {row[0]}; only an audited version can be served")


def publish(reco_version: str, url: str | None = None) -> str | None:
    """Serve `reco_version` from now on (one transaction); return the version it replaced."""
    conn = _connect(url)
    try:
        with conn.cursor() as cur:
            current, *_ = _lock_pointer(cur)
            _require_attached(cur, reco_version)
            if current == reco_version:
                conn.commit()
                return current
            cur.execute(
                "UPDATE serving_pointer SET previous_reco_version = reco_version, "
                "reco_version = %s, updated_at = now() WHERE id",
                (reco_version,),
            )
            cur.execute(
                "UPDATE reco_versions SET status = 'published', published_at = now() "
                "WHERE reco_version = %s",
                (reco_version,),
            )
        conn.commit()
        return current
    finally:
        conn.close()


def rollback(url: str | None = None, popular: bool = False) -> tuple[str, str]:
    """Swap the live and previous versions (reco, or popular with popular=True); (new, old)."""
    conn = _connect(url)
    try:
        with conn.cursor() as cur:
            reco, pop, prev_reco, prev_pop = _lock_pointer(cur)
            if popular:
                if prev_pop is None:
                    raise PublishError("no previous popularity list to roll back to")
                cur.execute(
                    "UPDATE serving_pointer SET popular_version = previous_popular_version, "
                    "previous_popular_version = popular_version, updated_at = now() WHERE id"
                )
                new, old = prev_pop, pop
            else:
                if prev_reco is None:
                    raise PublishError("no previous reco version to roll back to")
                _require_attached(cur, prev_reco)
                cur.execute(
                    "UPDATE serving_pointer SET reco_version = previous_reco_version, "
                    "previous_reco_version = reco_version, updated_at = now() WHERE id"
                )
                new, old = prev_reco, reco
        conn.commit()
        return new, old
    finally:
        conn.close()


def popular_version_for(window_end: datetime) -> str:
    """The popularity list's version, named by the event time it was computed up to."""
    if window_end.tzinfo is not None:
        window_end = window_end.astimezone(UTC).replace(tzinfo=None)
    return f"popular-{window_end:%Y%m%dT%H%M%S}"


def publish_popular(
    items: Sequence,
    window_end: datetime,
    url: str | None = None,
    popular_version: str | None = None,
) -> str:
    """Store a popularity list (best first, at most K distinct ids) and serve it; its version."""
    ids = [str(x) for x in items]
    if not 1 <= len(ids) <= K or len(set(ids)) != len(ids):
        raise ValueError(f"a popularity list needs 1..{K} distinct ids, got {len(ids)}")
    text = encode_items(ids, "popular list: ")
    version = check_version(popular_version or popular_version_for(window_end))
    conn = _connect(url)
    try:
        with conn.cursor() as cur:
            current = _lock_pointer(cur)[1]
            cur.execute(
                "INSERT INTO popular_lists (popular_version, items, window_end) "
                "VALUES (%s, %s, %s) "
                "ON CONFLICT (popular_version) DO UPDATE SET items = EXCLUDED.items, "
                "window_end = EXCLUDED.window_end",
                (version, text, window_end),
            )
            if current != version:
                cur.execute(
                    "UPDATE serving_pointer SET previous_popular_version = popular_version, "
                    "popular_version = %s, updated_at = now() WHERE id",
                    (version,),
                )
        conn.commit()
        return version
    finally:
        conn.close()


def retire_old(keep: int = 3, url: str | None = None) -> list[str]:
    """Drop the tables of versions that are not live, previous, in an active experiment, nor
    among the `keep` newest attached; failed loads are dropped too. Returns retired versions."""
    conn = _connect(url)
    conn.autocommit = True  # DETACH … CONCURRENTLY cannot run inside a transaction block
    retired = []
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT reco_version, previous_reco_version FROM serving_pointer WHERE id "
                "UNION ALL SELECT ev.reco_version, NULL FROM experiment_variants ev "
                "JOIN experiments e USING (experiment_id) WHERE e.active"
            )
            protected = {v for row in cur.fetchall() for v in row if v}
            cur.execute(
                "SELECT reco_version, table_name, status FROM reco_versions "
                "WHERE status IN ('audited', 'published', 'failed') "
                "ORDER BY created_at DESC, reco_version DESC"
            )
            attached_seen = 0
            for reco_version, table, status in cur.fetchall():
                if status in ATTACHED:
                    attached_seen += 1
                    if attached_seen <= keep or reco_version in protected:
                        continue
                cur.execute(
                    "SELECT 1 FROM pg_inherits WHERE inhparent = 'recommendations'::regclass "
                    "AND inhrelid = to_regclass(%s)",
                    (table,),
                )
                if cur.fetchone():
                    cur.execute(
                        sql.SQL(
                            "ALTER TABLE recommendations DETACH PARTITION {} CONCURRENTLY"
                        ).format(sql.Identifier(table))
                    )
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
                cur.execute(
                    "UPDATE reco_versions SET status = 'retired' WHERE reco_version = %s",
                    (reco_version,),
                )
                retired.append(reco_version)
    finally:
        conn.close()
    return retired


def status(url: str | None = None) -> dict:
    """The pointer and every version, newest first (for `python -m jobs.publish.publish status`)."""
    conn = _connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT reco_version, previous_reco_version, popular_version, "
                "previous_popular_version, updated_at FROM serving_pointer WHERE id"
            )
            names = [d[0] for d in cur.description]
            pointer = dict(zip(names, cur.fetchone() or (None,) * len(names), strict=True))
            cur.execute(
                "SELECT reco_version, model_version, status, n_users, created_at, published_at "
                "FROM reco_versions ORDER BY created_at DESC LIMIT 20"
            )
            names = [d[0] for d in cur.description]
            versions = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        conn.rollback()
    finally:
        conn.close()
    return {"pointer": pointer, "versions": versions}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.publish.publish", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="show what is served and the recent versions")
    back = sub.add_parser("rollback", help="serve the previous version again")
    back.add_argument("--popular", action="store_true", help="roll back the popularity list")
    pub = sub.add_parser("publish", help="serve an audited version")
    pub.add_argument("reco_version")
    ret = sub.add_parser("retire", help="drop old versions' tables")
    ret.add_argument("--keep", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        if args.command == "status":
            info = status()
            for key, value in info["pointer"].items():
                print(f"{key:26} {value}")
            print()
            print(f"{'reco_version':40} {'model_version':30} {'status':10} {'users':>9}")
            for v in info["versions"]:
                print(
                    f"{v['reco_version']:40} {v['model_version']:30} {v['status']:10} "
                    f"{v['n_users']:>9}"
                )
        elif args.command == "rollback":
            new, old = rollback(popular=args.popular)
            print(f"now serving {new} (was {old})")
        elif args.command == "publish":
            old = publish(args.reco_version)
            print(f"now serving {args.reco_version} (was {old})")
        elif args.command == "retire":
            print("retired: " + (", ".join(retire_old(args.keep)) or "nothing"))
    except (PublishError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
