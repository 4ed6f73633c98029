"""The Parquet lake of snapshots: paths, manifests, the Postgres `snapshots` mirror, listings.

Layout under settings.lake_dir (a contract, DESIGN.md "Data flow"):

    snapshots/<snapshot_id>/{watch,rate,reco_request}/event_date=YYYY-MM-DD/part-NNNNN.parquet
    snapshots/<snapshot_id>/rejects/part-NNNNN.parquet
    snapshots/<snapshot_id>/manifest.json          written last, inside the directory
    snapshots/_tmp-<snapshot_id>/                  a snapshot being written (never read)
    summaries/<snapshot_id>/                       distinct ids, stars (jobs/ingest/summary.py)
    derived/{watch_sessions,latest_ratings}/       jobs/ingest/derive.py (incremental)
    dims/{movies,users}.parquet                    jobs/ingest/catalog.py

A snapshot directory without the `_tmp-` prefix and with a manifest is complete. Training reads
only snapshots whose Postgres status is `accepted` (accepted_snapshots()).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from contracts import settings

SNAPSHOTS = "snapshots"
DERIVED = "derived"
DIMS = "dims"
MANIFEST = "manifest.json"
TMP_PREFIX = "_tmp-"
SNAPSHOT_ID = re.compile(r"s(\d{6,})")
STATUSES = ("ingested", "accepted", "quarantined")


def lake_root(root: str | Path | None = None) -> Path:
    """The lake directory (settings.lake_dir unless given)."""
    return Path(root) if root is not None else settings.load().lake_dir


def snapshots_dir(root: str | Path | None = None) -> Path:
    return lake_root(root) / SNAPSHOTS


def snapshot_path(snapshot_id: str, root: str | Path | None = None) -> Path:
    """Directory of a (complete) snapshot."""
    return snapshots_dir(root) / snapshot_id


def tmp_path(snapshot_id: str, root: str | Path | None = None) -> Path:
    """Directory a snapshot is written in before it is renamed into place."""
    return snapshots_dir(root) / f"{TMP_PREFIX}{snapshot_id}"


def snapshot_id(seq: int) -> str:
    """`s000042` for the 42nd snapshot of a lake."""
    return f"s{seq:06d}"


def snapshot_seq(snapshot: str) -> int:
    """42 for `s000042`."""
    match = SNAPSHOT_ID.fullmatch(snapshot)
    if match is None:
        raise ValueError(f"{snapshot!r} is not a snapshot id like s000042")
    return int(match[1])


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(directory: Path, manifest: dict[str, Any]) -> Path:
    """Write `manifest.json` into `directory` durably (fsync'd file and directory)."""
    path = directory / MANIFEST
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    fsync_dir(directory)
    return path


def read_manifest(snapshot: str | Path, root: str | Path | None = None) -> dict[str, Any]:
    """The manifest of a snapshot given by id or directory."""
    path = Path(snapshot)
    if not path.is_dir():
        path = snapshot_path(str(snapshot), root)
    return json.loads((path / MANIFEST).read_text(encoding="utf-8"))


def completed_snapshots(root: str | Path | None = None, topic: str | None = None) -> list[dict]:
    """Manifests of every complete snapshot in the lake (of `topic` if given), oldest first."""
    base = snapshots_dir(root)
    if not base.exists():
        return []
    found = []
    for path in base.iterdir():
        if not SNAPSHOT_ID.fullmatch(path.name) or not (path / MANIFEST).exists():
            continue
        manifest = read_manifest(path)
        if topic is None or manifest.get("topic") == topic:
            found.append(manifest)
    return sorted(found, key=lambda m: snapshot_seq(m["snapshot_id"]))


def previous_complete(manifest: dict[str, Any], root: str | Path | None = None) -> dict | None:
    """Manifest of the last complete snapshot of the same topic before this one, any status.

    Ingest starts where that one ended, quarantined or not, so offsets are judged against it.
    """
    base = snapshots_dir(root)
    seq = snapshot_seq(manifest["snapshot_id"])
    earlier = sorted(
        (snapshot_seq(p.name), p)
        for p in base.iterdir()
        if SNAPSHOT_ID.fullmatch(p.name) and (p / MANIFEST).exists()
    )
    for other_seq, path in reversed(earlier):
        if other_seq < seq:
            other = read_manifest(path)
            if other.get("topic") == manifest.get("topic"):
                return other
    return None


def next_seq(root: str | Path | None = None) -> int:
    """Sequence number of the next snapshot: one more than any complete one in the lake."""
    base = snapshots_dir(root)
    seqs = (
        [snapshot_seq(p.name) for p in base.iterdir() if SNAPSHOT_ID.fullmatch(p.name)]
        if (base.exists())
        else []
    )
    return max(seqs, default=0) + 1


@contextmanager
def ingest_lock(root: str | Path | None = None) -> Iterator[None]:
    """Exclusive lock on the lake's snapshot directory (one ingest at a time, any process)."""
    import fcntl

    base = snapshots_dir(root)
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".ingest.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def table_files(snapshot_dir: Path, table: str) -> list[Path]:
    """The Parquet files of one table of a snapshot, in a stable order."""
    return sorted((snapshot_dir / table).rglob("*.parquet"))


# --- Postgres mirror -------------------------------------------------------------------------
def register(manifest: dict[str, Any], path: Path, database_url: str | None = None) -> None:
    """Insert a completed snapshot as `ingested` (a no-op when already registered)."""
    from sqlalchemy import text

    from contracts import db

    with db.engine(database_url).begin() as conn:
        conn.execute(
            text(
                """
                INSERT INTO snapshots (snapshot_id, topic, status, path, offsets, row_counts,
                                       manifest, min_event_time, max_event_time)
                VALUES (:id, :topic, 'ingested', :path, CAST(:offsets AS jsonb),
                        CAST(:rows AS jsonb), CAST(:manifest AS jsonb), :tmin, :tmax)
                ON CONFLICT (snapshot_id) DO NOTHING
                """
            ),
            {
                "id": manifest["snapshot_id"],
                "topic": manifest["topic"],
                "path": str(path),
                "offsets": json.dumps(manifest["offsets"]),
                "rows": json.dumps(manifest["row_counts"]),
                "manifest": json.dumps(manifest),
                "tmin": manifest.get("min_event_time"),
                "tmax": manifest.get("max_event_time"),
            },
        )


def set_status(
    snapshot: str, status: str, reasons: str | None = None, database_url: str | None = None
) -> None:
    """Record the validation outcome of a snapshot (`accepted` or `quarantined`)."""
    from sqlalchemy import text

    from contracts import db

    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {STATUSES}")
    with db.engine(database_url).begin() as conn:
        updated = conn.execute(
            text(
                "UPDATE snapshots SET status = :status, reasons = :reasons, validated_at = now() "
                "WHERE snapshot_id = :id"
            ),
            {"status": status, "reasons": reasons, "id": snapshot},
        ).rowcount
    if updated != 1:
        raise LookupError(f"snapshot {snapshot} is not registered in Postgres")


def snapshot_row(snapshot: str, database_url: str | None = None) -> dict[str, Any] | None:
    """The Postgres row of one snapshot (None when not registered)."""
    from sqlalchemy import text

    from contracts import db

    with db.engine(database_url).connect() as conn:
        row = (
            conn.execute(text("SELECT * FROM snapshots WHERE snapshot_id = :id"), {"id": snapshot})
            .mappings()
            .first()
        )
    return dict(row) if row is not None else None


def unjudged_snapshots(topic: str, database_url: str | None = None) -> list[str]:
    """Ids of registered snapshots of `topic` that validation never judged, oldest first."""
    from contracts import db

    conn = db.connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute(db.read_sql("ingest/unjudged_snapshots.sql"), {"topic": topic})
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


@dataclass(frozen=True)
class SnapshotRef:
    """An accepted snapshot as training sees it: its id, directory and event-time span."""

    snapshot_id: str
    path: Path
    min_event_time: datetime | None
    max_event_time: datetime | None

    def __fspath__(self) -> str:
        return str(self.path)


def accepted_snapshots(
    start: datetime | None = None,
    end: datetime | None = None,
    topic: str | None = None,
    database_url: str | None = None,
) -> list[SnapshotRef]:
    """Accepted snapshots, oldest first; with start/end only those overlapping [start, end).

    Quarantined or merely ingested snapshots are never returned.
    """
    from sqlalchemy import text

    from contracts import db

    query = (
        "SELECT snapshot_id, path, min_event_time, max_event_time FROM snapshots "
        "WHERE status = 'accepted'"
        " AND (CAST(:topic AS text) IS NULL OR topic = :topic)"
        " AND (CAST(:start AS timestamp) IS NULL OR max_event_time >= :start)"
        " AND (CAST(:end AS timestamp) IS NULL OR min_event_time < :end)"
        " ORDER BY snapshot_id"
    )
    with db.engine(database_url).connect() as conn:
        rows = conn.execute(text(query), {"topic": topic, "start": start, "end": end}).all()
    return [SnapshotRef(r[0], Path(r[1]), r[2], r[3]) for r in rows]
