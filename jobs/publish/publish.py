"""Write–audit–publish of precomputed top-k lists into the tables the serving tier reads.

1. `load_recommendations` streams rows with COPY into a new standalone table (never the live
   one), then adds its primary key and a CHECK that matches its partition bound.
2. `audit` checks it (one row per user, k distinct ids per row, ids in the catalog, expected
   row count) and only then attaches it as a partition of `recommendations`.
3. `publish` switches `serving_pointer` in one transaction, keeping the previous version for
   `rollback`. A crash anywhere before step 3 leaves what is served untouched.
`load_and_publish` runs the three on a scored Parquet directory (jobs.publish.score).

Concurrency (tests/integration/test_publish_races.py): a version's load is one transaction
under its advisory lock (`tables.lock_name`), which `audit` and `retire_old` take too, so a
duplicate loader (an Airflow retry beside a zombie task) waits and then reloads or is refused.
`publish` and `rollback` lock the pointer row, then the version row; `retire_old` locks the
pointer, the experiments table and the version before it re-reads what is protected, so a
concurrent publish or experiment start either commits first (the version is kept) or finds it
retired and fails cleanly. Publish and rollback set the registry's production model in the
same transaction as the pointer.

Every statement lives in `sql/publish/*.sql` and is loaded by name with `query`.

`python -m jobs.publish.publish status | rollback [--popular] | publish VERSION |
retire [--keep N]`.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import operator
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
from psycopg2 import sql

from contracts.db import connect, read_sql
from contracts.grammar import MAX_USER_ID
from contracts.names import USER_COL, K

ITEMS_COL = "items"
COPY_CHUNK = 256 * 1024
ATTACHED = ("audited", "published")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,127}", re.ASCII)
# Characters that would break the served 'id,id,…' line or COPY's text format.
_BAD_ID_CHARS = re.compile(r"[\t\n\r\\]|,,|^,|,$")
_STATEMENT_NAME = re.compile(r"--\s*name:\s*([a-z_][a-z0-9_]*)\s*")


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


# ---------------------------------------------------------------------------- statements
@functools.cache
def _statements(family: str) -> dict[str, str]:
    """The named statements of sql/publish/<family>.sql (see `query`), read once per process."""
    statements: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in read_sql(f"publish/{family}.sql").splitlines():
        marker = _STATEMENT_NAME.fullmatch(line.strip())
        if marker:
            if marker[1] in statements:
                raise ValueError(f"sql/publish/{family}.sql names {marker[1]!r} twice")
            current = statements[marker[1]] = []
        elif current is not None and not line.lstrip().startswith("--"):
            current.append(line)
    return {name: "\n".join(lines).strip() for name, lines in statements.items()}


def query(family: str, name: str, **parts: sql.Composable) -> str | sql.Composed:
    """Statement `name` of `sql/publish/<family>.sql`, with `parts` filled in.

    Convention: one file per query family (versions, tables, audit, pointer, experiments);
    in it, each statement starts at a line `-- name: <statement>` and runs to the next such
    line; other whole-line `--` comments are dropped. Values are always `%s` / `%(key)s`
    parameters passed to `execute`. Table, partition and constraint names (which cannot be
    parameters) are `{key}` placeholders: pass them as `sql.Identifier`, and a value that
    DDL needs inline (a partition bound, a column default) as `sql.Literal`; the result is
    then a `sql.Composed`. Without `parts` the plain text is returned.
    """
    statements = _statements(family)
    if name not in statements:
        raise KeyError(f"no statement {name!r} in sql/publish/{family}.sql")
    if not parts:
        return statements[name]
    return sql.SQL(statements[name]).format(**parts)


# ---------------------------------------------------------------------------- helpers
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


def _lock_version(cur, reco_version: str):
    """(status, table_name, model_version) of a version, locked for this transaction; or None."""
    cur.execute(query("versions", "lock"), (reco_version,))
    return cur.fetchone()


def _mark_failed(url: str | None, reco_version: str, model_version: str, table: str) -> None:
    """Record a failed load (best effort, so it never hides the error being handled); a
    version that another run audited or published meanwhile keeps its status."""
    try:
        conn = connect(url)
    except psycopg2.Error:
        return
    try:
        with conn, conn.cursor() as cur:
            cur.execute(query("versions", "mark_failed"), (reco_version, model_version, table))
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
    or a killed process rolls the whole load back and leaves what is served untouched. The
    status check, the table and its 'loaded' row are one transaction under the version's
    advisory lock, so a second loader of the same version (an Airflow retry beside a zombie
    task), its audit and `retire_old` wait for it instead of interleaving with it.
    """
    from tqdm import tqdm

    table = table_name(reco_version)
    if total is None and hasattr(rows, "__len__") and not isinstance(rows, Iterator):
        total = len(rows)
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            _register_load(cur, reco_version, model_version, table)
        stream = None
        try:
            with tqdm(total=total, unit="users", desc=f"COPY {reco_version}", disable=None) as bar:
                stream = _CopyStream(iter_rows(rows), bar)
                _write_table(conn, stream, reco_version, table)
            conn.commit()
        except BaseException as exc:
            conn.rollback()
            _mark_failed(url, reco_version, model_version, table)
            if isinstance(exc, psycopg2.errors.UniqueViolation):
                raise PublishError(f"{reco_version}: a user appears more than once") from exc
            if stream is not None and stream.error is not None and stream.error is not exc:
                raise stream.error from None  # the rows' own error, not COPY's wrapper
            raise
    except PublishError:
        conn.rollback()
        raise
    finally:
        conn.close()
    return table


def _register_load(cur, reco_version: str, model_version: str, table: str) -> None:
    """Take the version's lock and record it as 'loaded' (uncommitted, with the table), unless
    it is already audited, served or retired."""
    cur.execute(query("tables", "lock_name"), (table,))
    existing = _lock_version(cur, reco_version)
    if existing and existing[0] not in ("loaded", "failed"):
        raise PublishError(f"{reco_version} is already {existing[0]}; load a new version instead")
    cur.execute(query("versions", "register_load"), (reco_version, model_version, table))


def _write_table(conn, stream: _CopyStream, reco_version: str, table: str) -> None:
    """(Re)create the version's table, COPY the stream in, add its key and partition check."""
    ident = sql.Identifier(table)
    version = sql.Literal(reco_version)
    with conn.cursor() as cur:
        cur.execute(query("tables", "drop", table=ident))
        cur.execute(query("tables", "create", table=ident, version=version))
        copy = query("tables", "copy", table=ident).as_string(cur)
        cur.copy_expert(copy, stream, size=COPY_CHUNK)
        if stream.count == 0:
            raise PublishError(f"{reco_version}: no rows to load")
        cur.execute(
            query(
                "tables",
                "add_constraints",
                table=ident,
                pkey=sql.Identifier(f"{table}_pkey"),
                check=sql.Identifier(f"{table}_version"),
                version=version,
            )
        )
        cur.execute(query("tables", "analyze", table=ident))
        cur.execute(query("versions", "set_n_users"), (stream.count, reco_version))


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
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            table = _loaded_table(cur, reco_version)
            report = _measure_lists(cur, reco_version, table, k, expected_users)
            if catalog_ids is not None:
                _check_catalog(cur, table, catalog_ids, report)
            if report.problems:
                cur.execute(query("versions", "set_status"), ("failed", reco_version))
                conn.commit()
                raise AuditError(reco_version, report.problems)
            cur.execute(
                query(
                    "tables",
                    "attach",
                    table=sql.Identifier(table),
                    version=sql.Literal(reco_version),
                )
            )
            cur.execute(query("versions", "mark_audited"), (report.n_rows, reco_version))
        conn.commit()
        return report
    finally:
        conn.close()


def _loaded_table(cur, reco_version: str) -> str:
    """The table of a version waiting for its audit, or PublishError. Takes the loader's lock
    first, so an audit never reads a table that a second loader is replacing."""
    cur.execute(query("tables", "lock_name"), (table_name(reco_version),))
    row = _lock_version(cur, reco_version)
    if row is None:
        raise PublishError(f"{reco_version} was never loaded")
    status, table, _ = row
    if status != "loaded":
        raise PublishError(f"{reco_version} is {status}, not loaded; nothing to audit")
    return table


def _measure_lists(
    cur, reco_version: str, table: str, k: int, expected_users: int | None
) -> AuditReport:
    """Row count, lists not of length k, lists repeating an id; each failure as a problem."""
    cur.execute(query("audit", "list_shapes", table=sql.Identifier(table)), {"k": k})
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
    return report


def _check_catalog(cur, table: str, catalog_ids: list[str], report: AuditReport) -> None:
    """Count listed ids missing from the catalog into `report` (a problem when any)."""
    cur.execute(query("audit", "create_catalog"))
    cur.execute(query("audit", "fill_catalog"), (catalog_ids,))
    cur.execute(query("audit", "unknown_ids", table=sql.Identifier(table)))
    report.unknown_ids, sample = cur.fetchone()
    report.unknown_sample = list(sample or [])
    if report.unknown_ids:
        report.problems.append(
            f"{report.unknown_ids} ids are not in the catalog "
            f"(e.g. {', '.join(report.unknown_sample)})"
        )


# ---------------------------------------------------------------------------- publish
def _lock_pointer(cur) -> tuple:
    cur.execute(query("pointer", "lock"))
    row = cur.fetchone()
    if row is None:  # the schema inserts it; a hand-emptied table gets it back
        cur.execute(query("pointer", "insert"))
        return (None, None, None, None)
    return row


def _require_attached(cur, reco_version: str) -> None:
    row = _lock_version(cur, reco_version)
    if row is None:
        raise PublishError(f"{reco_version} does not exist")
    if row[0] not in ATTACHED:
        raise PublishError(f"{reco_version} is {row[0]}; only an audited version can be served")


def publish(reco_version: str, url: str | None = None) -> str | None:
    """Serve `reco_version` from now on (one transaction); return the version it replaced.

    The registry's production model becomes this version's model in the same transaction.
    """
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            current, *_ = _lock_pointer(cur)
            _require_attached(cur, reco_version)
            if current == reco_version:
                conn.commit()
                return current
            cur.execute(query("pointer", "switch_reco"), (reco_version,))
            cur.execute(query("versions", "mark_published"), (reco_version,))
            _sync_registry(cur, reco_version, f"published as {reco_version}", current)
        conn.commit()
        return current
    finally:
        conn.close()


def _sync_registry(cur, served: str, reason: str, replaced: str | None) -> None:
    """Make the registry's production model the one `served` now uses (same transaction)."""
    from jobs.train import registry

    cur.execute(query("versions", "model_of"), (served,))
    model_version = cur.fetchone()[0]
    registry.promote_in(cur, model_version, reason, f"{replaced} no longer served ({reason})")


def load_and_publish(
    out_dir: str | Path,
    reco_version: str,
    model_version: str,
    expected_users: int | None = None,
    catalog: list[str] | None = None,
    publish_now: bool = True,
    url: str | None = None,
) -> str:
    """COPY the scored Parquet at `out_dir` into a new table, audit it there, then switch the
    pointer. A failure anywhere before the switch leaves the served version as it was."""
    from jobs.publish import score

    rows = score.read_rows(out_dir)
    load_recommendations(rows, reco_version, model_version, url=url, total=expected_users)
    audit(reco_version, expected_users=expected_users, catalog=catalog, url=url, k=K)
    if publish_now:
        publish(reco_version, url=url)
    return reco_version


def rollback(url: str | None = None, popular: bool = False) -> tuple[str, str]:
    """Swap the live and previous versions (reco, or popular with popular=True); (new, old).

    A reco rollback updates the registry in the same transaction: the model served again is
    production, the rolled-back one is retired (so the next gate compares against what is
    served)."""
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            reco, pop, prev_reco, prev_pop = _lock_pointer(cur)
            if popular:
                if prev_pop is None:
                    raise PublishError("no previous popularity list to roll back to")
                cur.execute(query("pointer", "rollback_popular"))
                new, old = prev_pop, pop
            else:
                if prev_reco is None:
                    raise PublishError("no previous reco version to roll back to")
                _require_attached(cur, prev_reco)
                cur.execute(query("pointer", "rollback_reco"))
                _sync_registry(cur, prev_reco, f"served again: rolled back from {reco}", reco)
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
    *,
    baseline_version: str | None = None,
    dataset_path: str | None = None,
) -> str:
    """Store a popularity list (best first, at most K distinct ids) and serve it; its version.

    Its provenance goes in the same row: the evaluated popularity model whose configuration
    made it, the dataset it was fitted on, this code's commit and library versions.
    """
    from psycopg2.extras import Json

    from contracts import provenance

    ids = [str(x) for x in items]
    if not 1 <= len(ids) <= K or len(set(ids)) != len(ids):
        raise ValueError(f"a popularity list needs 1..{K} distinct ids, got {len(ids)}")
    text = encode_items(ids, "popular list: ")
    version = check_version(popular_version or popular_version_for(window_end))
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            current = _lock_pointer(cur)[1]
            cur.execute(
                query("pointer", "store_popular"),
                (
                    version,
                    text,
                    window_end,
                    baseline_version,
                    None if dataset_path is None else str(dataset_path),
                    provenance.git_commit(),
                    Json(provenance.library_versions()),
                ),
            )
            if current != version:
                cur.execute(query("pointer", "switch_popular"), (version,))
        conn.commit()
        return version
    finally:
        conn.close()


def retire_old(keep: int = 3, url: str | None = None) -> list[str]:
    """Drop the tables of versions that are not live, previous, in an active experiment, the
    active shadow, nor among the `keep` newest attached; failed loads are dropped too. Returns
    retired versions.

    Each version is retired in its own transaction that locks the pointer, the experiments
    and the version (and takes its loader's lock), re-reading what is protected under those
    locks: a concurrent publish, experiment or shadow start or reload either commits first (and
    the version is kept) or finds it 'retired' and fails cleanly. Attached tables are detached
    and dropped afterwards (DETACH … CONCURRENTLY cannot run inside a transaction)."""
    conn = connect(url)
    retired = []
    try:
        with conn.cursor() as cur:
            cur.execute(query("versions", "retire_candidates"))
            candidates = cur.fetchall()
        conn.rollback()
        attached_seen = 0
        for reco_version, table, status in candidates:
            if status in ATTACHED:
                attached_seen += 1
                if attached_seen <= keep:
                    continue
            if status == "retired" or _retire_one(conn, reco_version, table, status):
                _drop_version_table(conn, table)
                retired.append(reco_version)
    finally:
        conn.close()
    return retired


def _retire_one(conn, reco_version: str, table: str, status: str) -> bool:
    """Mark one version retired (committed) unless it is protected or changed; True if so."""
    with conn.cursor() as cur:
        _lock_pointer(cur)
        cur.execute(query("experiments", "lock_for_retire"))
        cur.execute(query("experiments", "lock_shadow_for_retire"))
        cur.execute(query("versions", "protected"))
        protected = {v for row in cur.fetchall() for v in row if v}
        cur.execute(query("tables", "try_lock_name"), (table,))
        free = cur.fetchone()[0]
        if reco_version in protected or not free:
            conn.rollback()
            return False
        cur.execute(query("versions", "lock_if_status"), (reco_version, status))
        if cur.fetchone() is None:  # published, reloaded or retired since the list was read
            conn.rollback()
            return False
        cur.execute(query("versions", "set_status"), ("retired", reco_version))
    conn.commit()
    return True


def _drop_version_table(conn, table: str) -> None:
    """Detach a retired version's table from `recommendations` if attached, then drop it."""
    conn.autocommit = True  # DETACH … CONCURRENTLY cannot run inside a transaction block
    try:
        with conn.cursor() as cur:
            cur.execute(query("tables", "is_attached"), (table,))
            row, ident = cur.fetchone(), sql.Identifier(table)
            if row and row[0]:  # a crashed retire left the detach pending: finish that one
                cur.execute(query("tables", "finalize_detach", table=ident))
            elif row:
                cur.execute(query("tables", "detach", table=ident))
            cur.execute(query("tables", "drop", table=ident))
    finally:
        conn.autocommit = False


def read_rows(statement, args: tuple = (), url: str | None = None) -> list[tuple]:
    """Every row of one read-only statement, in its own short transaction."""
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, args)
            rows = cur.fetchall()
        conn.rollback()
    finally:
        conn.close()
    return rows


def version_status(reco_version: str, url: str | None = None) -> str | None:
    """The status of one reco version (None: never loaded)."""
    rows = read_rows(query("experiments", "version_status"), (reco_version,), url)
    return rows[0][0] if rows else None


def served_rows(reco_version: str, url: str | None = None) -> int:
    """Rows the recommendations table holds for `reco_version`."""
    return int(read_rows(query("versions", "served_rows"), (reco_version,), url)[0][0])


def status(url: str | None = None) -> dict:
    """The pointer and every version, newest first (for `python -m jobs.publish.publish status`)."""
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(query("pointer", "show"))
            names = [d[0] for d in cur.description]
            pointer = dict(zip(names, cur.fetchone() or (None,) * len(names), strict=True))
            cur.execute(query("versions", "recent"))
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
