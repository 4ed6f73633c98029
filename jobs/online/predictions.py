"""Ingest the serving prediction log into the lake table `predictions`, each file exactly once.

serving/telemetry.py seals each full (or stopped) log file under a unique name that is never
reused. A run takes every sealed file in the log directory (and first seals the active file
of a process that died without stopping: its flock is free), parses it, and writes one batch:

    predictions/<batch_id>/predictions/event_date=YYYY-MM-DD/part-NNNNN.parquet
    predictions/<batch_id>/rejects/part-NNNNN.parquet     malformed lines, with a reason
    predictions/<batch_id>/manifest.json                  written last (files, hashes, counts)
    predictions/_tmp-<batch_id>/                          a batch being written (never read)

Write aside, fsync, manifest last, rename; only then are the raw files deleted. A file whose
SHA-256 is already in a complete batch's manifest was ingested by a run that stopped before
deleting it: it is deleted, not read again. Lines read = rows + rejects, for every file.

    python -m jobs.online.predictions [--log-dir DIR] [--lake DIR]
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import io
import json
import logging
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from contracts import names, settings
from contracts.names import (
    MODEL_VERSION_COL,
    RECO_VERSION_COL,
    REQUEST_ID_COL,
    SERVED_LIST_COL,
    SHADOW_LIST_COL,
    SHADOW_VERSION_COL,
    SOURCE_COL,
    TIME_COL,
    USER_COL,
    VARIANT_COL,
)
from jobs.ingest import lake
from jobs.ingest.snapshot import PartWriters

log = logging.getLogger(__name__)

TABLE = "predictions"
REJECTS = "rejects"
BATCH_ID = re.compile(r"p(\d{6,})")
PARSER_VERSION = "predictions-2"  # 2: shadow_version, shadow_items
FILE_COL, LINE_COL = "log_file", "line_no"
_SEALED = re.compile(names.PREDICTION_LOG_SEALED_RE)
_ACTIVE = re.compile(names.PREDICTION_LOG_ACTIVE_RE)

SCHEMA = pa.schema(
    [
        (REQUEST_ID_COL, pa.string()),
        (TIME_COL, pa.timestamp("ms", tz="UTC")),
        (USER_COL, pa.int64()),
        (MODEL_VERSION_COL, pa.string()),
        (RECO_VERSION_COL, pa.string()),
        (VARIANT_COL, pa.string()),
        (SOURCE_COL, pa.string()),
        (SERVED_LIST_COL, pa.list_(pa.string())),
        ("latency_ms", pa.float64()),
        ("fallback_reason", pa.string()),
        (SHADOW_VERSION_COL, pa.string()),
        (SHADOW_LIST_COL, pa.list_(pa.string())),
        (FILE_COL, pa.string()),
        (LINE_COL, pa.int64()),
    ]
)
REJECT_SCHEMA = pa.schema(
    [
        (FILE_COL, pa.string()),
        (LINE_COL, pa.int64()),
        ("raw", pa.binary()),
        ("reason", pa.string()),
        ("detail", pa.string()),
    ]
)
SOURCES = ("model", "popular", "cache")
# Optional: null or absent (files written before a field existed ingest with it null).
_OPTIONAL_TEXT = (RECO_VERSION_COL, VARIANT_COL, "fallback_reason", SHADOW_VERSION_COL)
_REQUIRED = (REQUEST_ID_COL, "time", MODEL_VERSION_COL, SOURCE_COL, SERVED_LIST_COL)
CHUNK_LINES = 20_000
# What Arrow's reader is asked for: every record field as the writer writes it.
_JSON_OPTIONS = pa_json.ParseOptions(
    explicit_schema=pa.schema(
        [
            (REQUEST_ID_COL, pa.string()),
            ("time", pa.string()),
            (USER_COL, pa.int64()),
            (VARIANT_COL, pa.string()),
            (MODEL_VERSION_COL, pa.string()),
            (RECO_VERSION_COL, pa.string()),
            (SOURCE_COL, pa.string()),
            (SERVED_LIST_COL, pa.string()),
            ("latency_ms", pa.float64()),
            ("fallback_reason", pa.string()),
            (SHADOW_VERSION_COL, pa.string()),
            (SHADOW_LIST_COL, pa.string()),
        ]
    ),
    unexpected_field_behavior="ignore",
)
# Arrow would read two objects on one line as two rows: such a chunk takes the reference path.
_TWO_ON_A_LINE = re.compile(rb"\}[ \t]*\{")


class Rejected(ValueError):
    """A line that is not a prediction record; `reason` is its code (the rejects' column)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def predictions_dir(root: str | Path | None = None) -> Path:
    """Where the batches of the `predictions` table live in the lake."""
    return lake.lake_root(root) / TABLE


# ------------------------------------------------------------------ parsing
def parse_line(raw: bytes) -> dict[str, Any]:
    """One log line -> a row of SCHEMA (without file and line), or Rejected with a reason."""
    if not raw.endswith(b"\n"):
        raise Rejected("truncated", "the last line has no newline (the writer stopped mid-line)")
    try:
        record = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise Rejected("encoding", f"not UTF-8: {exc.reason}") from exc
    except ValueError as exc:
        raise Rejected("json", f"not JSON: {exc}") from exc
    if not isinstance(record, dict):
        raise Rejected("json", f"a JSON {type(record).__name__}, not an object")
    return _row(record)


def _row(record: dict) -> dict[str, Any]:
    for key in _REQUIRED:
        if not isinstance(record.get(key), str) or not record[key]:
            raise Rejected("missing_field", f"{key} is missing or not a non-empty string")
    try:
        when = datetime.fromisoformat(record["time"])
    except ValueError as exc:
        raise Rejected("bad_time", f"time {record['time'][:40]!r} is not ISO-8601") from exc
    if when.tzinfo is None:
        raise Rejected("bad_time", "time has no UTC offset")
    user = record.get(USER_COL)
    if user is not None and (not isinstance(user, int) or isinstance(user, bool) or user < 0):
        raise Rejected("bad_user", f"user_id {str(user)[:40]!r} is not a non-negative integer")
    if record[SOURCE_COL] not in SOURCES:
        raise Rejected("bad_source", f"source {record[SOURCE_COL][:40]!r} not in {SOURCES}")
    latency = record.get("latency_ms")
    if latency is not None and not isinstance(latency, int | float):
        raise Rejected("bad_type", "latency_ms is not a number")
    row = {key: record[key] for key in (REQUEST_ID_COL, MODEL_VERSION_COL, SOURCE_COL)}
    for key in _OPTIONAL_TEXT:
        value = record.get(key)
        if value is not None and not isinstance(value, str):
            raise Rejected("bad_type", f"{key} is not a string")
        row[key] = value
    shadow = record.get(SHADOW_LIST_COL)
    if shadow is not None and not isinstance(shadow, str):
        raise Rejected("bad_type", f"{SHADOW_LIST_COL} is not a string")
    row.update(
        {
            TIME_COL: when.astimezone(UTC),
            USER_COL: user,
            SERVED_LIST_COL: record[SERVED_LIST_COL].split(","),
            "latency_ms": None if latency is None else float(latency),
            SHADOW_LIST_COL: None if shadow is None else shadow.split(","),
        }
    )
    return row


@dataclass
class FileRead:
    """One raw file as read: its hash and size, lines, rows, rejects by reason, time span."""

    name: str
    sha256: str
    bytes: int
    lines: int = 0
    rows: int = 0
    reasons: Counter = field(default_factory=Counter)
    span: list = field(default_factory=lambda: [None, None])

    @property
    def rejects(self) -> int:
        return sum(self.reasons.values())


def read_file(path: Path, writers: PartWriters, chunk_lines: int = CHUNK_LINES) -> FileRead:
    """Parse one sealed file in chunks into `writers`; every line becomes a row or a reject.

    A chunk goes through Arrow's JSON reader when every one of its lines is a valid record
    (the fast path); otherwise line by line through parse_line (the reference), which says
    why each bad line is bad. Tests prove both give the same rows.
    """
    data = path.read_bytes()
    read = FileRead(path.name, hashlib.sha256(data).hexdigest(), len(data))
    lines = data.splitlines(keepends=True)
    del data
    for first in range(0, len(lines), chunk_lines):
        chunk = lines[first : first + chunk_lines]
        table = fast_chunk(chunk, path.name, first)
        if table is None:
            table, rejects = slow_chunk(chunk, path.name, first)
            if rejects:
                writers.write(REJECTS, None, pa.Table.from_pylist(rejects, schema=REJECT_SCHEMA))
                read.reasons.update(r["reason"] for r in rejects)
        _write_rows(writers, table, read)
        read.lines += len(chunk)
    return read


def slow_chunk(chunk: list[bytes], name: str, first: int) -> tuple[pa.Table, list[dict]]:
    """The reference path: each line through parse_line; (rows, rejects with reasons)."""
    rows, rejects = [], []
    for number, raw in enumerate(chunk, start=first):
        try:
            row = parse_line(raw)
        except Rejected as exc:
            detail = str(exc)[:200]
            rejects.append(
                {
                    FILE_COL: name,
                    LINE_COL: number,
                    "raw": raw,
                    "reason": exc.reason,
                    "detail": detail,
                }
            )
            continue
        row[FILE_COL], row[LINE_COL] = name, number
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=SCHEMA), rejects


def fast_chunk(chunk: list[bytes], name: str, first: int) -> pa.Table | None:
    """Arrow's JSON reader over a chunk of valid records; None when any line is not one."""
    blob = b"".join(chunk)
    if not blob.endswith(b"\n") or _TWO_ON_A_LINE.search(blob):
        return None
    try:
        raw = pa_json.read_json(
            io.BytesIO(blob),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=len(blob) + 1),
            parse_options=_JSON_OPTIONS,
        )
    except pa.ArrowInvalid:
        return None
    if raw.num_rows != len(chunk) or not _valid(raw):
        return None  # a blank line, or a record the reference path must judge
    try:
        times = pc.cast(raw["time"], pa.timestamp("us", tz="UTC"))
    except pa.ArrowInvalid:
        return None
    columns = {c: raw[c] for c in SCHEMA.names if c in raw.column_names}
    columns[TIME_COL] = pc.cast(times, SCHEMA.field(TIME_COL).type, safe=False)
    columns[SERVED_LIST_COL] = pc.split_pattern(raw[SERVED_LIST_COL], ",")
    columns[SHADOW_LIST_COL] = pc.split_pattern(raw[SHADOW_LIST_COL], ",")  # null stays null
    columns[FILE_COL] = pa.array([name] * len(chunk), pa.string())
    columns[LINE_COL] = pa.array(range(first, first + len(chunk)), pa.int64())
    return pa.table([columns[c] for c in SCHEMA.names], schema=SCHEMA)


def _valid(raw: pa.Table) -> bool:
    """Every record has the required non-empty strings, a known source, a user id >= 0."""
    for column in _REQUIRED:
        if raw[column].null_count or pc.min(pc.utf8_length(raw[column])).as_py() == 0:
            return False
    if not pc.all(pc.is_in(raw[SOURCE_COL], pa.array(SOURCES))).as_py():
        return False
    lowest = pc.min(raw[USER_COL]).as_py()
    return lowest is None or lowest >= 0


def _write_rows(writers: PartWriters, table: pa.Table, read: FileRead) -> None:
    """Rows of one chunk into the writers, by UTC event date; counts and span updated."""
    if table.num_rows == 0:
        return
    lo, hi = pc.min_max(table[TIME_COL]).values()
    read.span[0] = lo.as_py() if read.span[0] is None else min(read.span[0], lo.as_py())
    read.span[1] = hi.as_py() if read.span[1] is None else max(read.span[1], hi.as_py())
    days = pc.cast(table[TIME_COL], pa.date32())
    for day in pc.unique(days).to_pylist():
        part = table.filter(pc.equal(days, pa.scalar(day, pa.date32())))
        writers.write(TABLE, day.isoformat(), part)
    read.rows += table.num_rows


# ------------------------------------------------------------------ the raw files
def _alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (the log directory is local)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def seal_orphans(log_dir: Path) -> list[Path]:
    """Seal the active files of processes that died without stopping: the lock is free and
    no process has the pid (a writer older than the lock, still running, is left alone)."""
    sealed = []
    for path in sorted(log_dir.glob("predictions-*.jsonl")):
        match = _ACTIVE.fullmatch(path.name)
        if match is None or _alive(int(match[1])):
            continue
        with open(path, "rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer holds it
            if os.fstat(handle.fileno()).st_size == 0:
                path.unlink()  # nothing to keep; a writer opening it now sees it gone
                continue
            stamp = datetime.now(UTC).strftime(names.PREDICTION_LOG_STAMP)
            # Sequence 0: writers number their files from 1, so the name is never theirs.
            target = log_dir / names.PREDICTION_LOG_SEALED.format(pid=match[1], stamp=stamp, seq=0)
            path.rename(target)
            sealed.append(target)
            log.warning("sealed %s, left by a process that did not stop cleanly", target.name)
    return sealed


def sealed_files(log_dir: Path) -> list[Path]:
    """Sealed log files waiting for ingestion, oldest first (UTC time, sequence, pid)."""
    found = [
        (m[2], int(m[3]), int(m[1]), path)
        for path in log_dir.glob("predictions-*.jsonl")
        if (m := _SEALED.fullmatch(path.name))
    ]
    return [entry[-1] for entry in sorted(found)]


def completed_batches(root: str | Path | None = None) -> list[dict[str, Any]]:
    """Manifests of every complete batch of the `predictions` table, oldest first."""
    base = predictions_dir(root)
    if not base.exists():
        return []
    found = [
        lake.read_manifest(path)
        for path in base.iterdir()
        if BATCH_ID.fullmatch(path.name) and (path / lake.MANIFEST).exists()
    ]
    return sorted(found, key=lambda m: int(BATCH_ID.fullmatch(m["batch_id"])[1]))


def table_dirs(root: str | Path | None = None, table: str = TABLE) -> list[Path]:
    """The `predictions` (or `rejects`) directories of every complete batch, for readers."""
    base = predictions_dir(root)
    return [
        base / m["batch_id"] / table
        for m in completed_batches(root)
        if (base / m["batch_id"] / table).exists()
    ]


@contextmanager
def _lock(base: Path) -> Iterator[None]:
    """One ingest of the prediction log at a time, across processes."""
    with open(base / ".ingest.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def batch_dirs(root: str | Path | None = None, recent_hours: float | None = None) -> list[Path]:
    """Directories of the complete batches (readers take their `predictions` table); with
    `recent_hours`, only those holding answers served within that many hours of the newest
    answer in the table (the log's own clock: answers are served when they are logged)."""
    base = predictions_dir(root)
    manifests = [m for m in completed_batches(root) if m.get("max_event_time")]
    if recent_hours is not None and manifests:
        newest = max(datetime.fromisoformat(m["max_event_time"]) for m in manifests)
        since = newest - timedelta(hours=recent_hours)
        manifests = [m for m in manifests if datetime.fromisoformat(m["max_event_time"]) >= since]
    return [base / m["batch_id"] for m in manifests]


def _next_batch_id(base: Path) -> str:
    seqs = [int(m[1]) for p in base.iterdir() if (m := BATCH_ID.fullmatch(p.name))]
    return f"p{max(seqs, default=0) + 1:06d}"


def _delete_raw(paths: list[Path]) -> None:
    """Delete ingested raw files (after the batch holding them is durable)."""
    for path in paths:
        path.unlink(missing_ok=True)
    if paths:
        lake.fsync_dir(paths[0].parent)


# ------------------------------------------------------------------ the batch
def written_parts(writers: PartWriters, tmp: Path) -> list[dict[str, Any]]:
    """Every Parquet part written (closed first), fsync'd, with its rows and SHA-256."""
    writers.close()
    parts = []
    for table, path in writers.files:
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
        rows = pq.ParquetFile(path).metadata.num_rows
        rel = str(path.relative_to(tmp))
        parts.append({"table": table, "path": rel, "rows": rows, "sha256": lake.sha256_file(path)})
    for directory in {path.parent for _table, path in writers.files}:
        lake.fsync_dir(directory)
    return sorted(parts, key=lambda p: p["path"])


def batch_manifest(batch_id: str, reads: list[FileRead], parts: list[dict]) -> dict[str, Any]:
    """Files read (name, SHA-256, bytes, lines, rows, rejects), parts written, counts, span."""
    rows = sum(r.rows for r in reads)
    rejects = sum(r.rejects for r in reads)
    lines = sum(r.lines for r in reads)
    if rows + rejects != lines or sum(p["rows"] for p in parts) != lines:
        raise AssertionError(f"{batch_id}: lines read {lines} != rows {rows} + rejects {rejects}")
    starts = [r.span[0] for r in reads if r.span[0] is not None]
    ends = [r.span[1] for r in reads if r.span[1] is not None]
    reasons = sum((r.reasons for r in reads), Counter())
    return {
        "batch_id": batch_id,
        "table": TABLE,
        "files": [
            {
                "name": r.name,
                "sha256": r.sha256,
                "bytes": r.bytes,
                "offsets": [0, r.bytes],
                "lines": r.lines,
                "rows": r.rows,
                "rejects": r.rejects,
            }
            for r in reads
        ],
        "lines_read": lines,
        "row_counts": {TABLE: rows, REJECTS: rejects},
        "reject_reasons": dict(sorted(reasons.items())),
        "parts": parts,
        "parser_version": PARSER_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "min_event_time": min(starts).isoformat() if starts else None,
        "max_event_time": max(ends).isoformat() if ends else None,
    }


@dataclass
class IngestResult:
    """One run: the batch written (None: nothing new), files taken, files already ingested."""

    batch_id: str | None
    path: Path | None
    files: int
    already_ingested: int
    lines: int
    rejects: int
    seconds: float


def ingest(log_dir: str | Path | None = None, root: str | Path | None = None) -> IngestResult:
    """Take every sealed prediction-log file into one new batch, then delete the raw files."""
    log_dir = Path(log_dir) if log_dir is not None else settings.load().log_dir
    base = predictions_dir(root)
    base.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with _lock(base):
        for stale in base.glob(f"{lake.TMP_PREFIX}*"):
            log.warning("removing %s left by an interrupted ingest", stale)
            shutil.rmtree(stale)
        if log_dir.exists():
            seal_orphans(log_dir)
        files = sealed_files(log_dir) if log_dir.exists() else []
        done = {f["sha256"] for m in completed_batches(root) for f in m["files"]}
        taken, fresh = [], []
        for path in files:
            (taken if lake.sha256_file(path) in done else fresh).append(path)
        if taken:  # ingested by a run that stopped before deleting them: never read twice
            log.info("deleting %d files ingested by an earlier run", len(taken))
            _delete_raw(taken)
        if not fresh:
            return IngestResult(None, None, 0, len(taken), 0, 0, time.perf_counter() - started)
        batch_id, manifest = _write_batch(base, fresh)
        _delete_raw(fresh)
    seconds = time.perf_counter() - started
    log.info(
        "predictions %s: %d files, %d lines (%.0f lines/s), rejects by reason %s",
        batch_id,
        len(fresh),
        manifest["lines_read"],
        manifest["lines_read"] / max(seconds, 1e-9),
        manifest["reject_reasons"],
    )
    rejects = manifest["row_counts"][REJECTS]
    return IngestResult(
        batch_id, base / batch_id, len(fresh), len(taken), manifest["lines_read"], rejects, seconds
    )


def _write_batch(base: Path, paths: list[Path]) -> tuple[str, dict[str, Any]]:
    """Write aside, manifest last (durable), rename into place; (batch id, manifest)."""
    batch_id = _next_batch_id(base)
    tmp = base / f"{lake.TMP_PREFIX}{batch_id}"
    tmp.mkdir()
    writers = PartWriters(tmp)
    try:
        reads = [read_file(path, writers) for path in paths]
    finally:
        writers.close()
    manifest = batch_manifest(batch_id, reads, written_parts(writers, tmp))
    lake.write_manifest(tmp, manifest)
    os.rename(tmp, base / batch_id)
    lake.fsync_dir(base)
    return batch_id, manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log-dir", type=Path, help="default: the serving log directory")
    parser.add_argument("--lake", type=Path, help="lake directory (default: settings.lake_dir)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    result = ingest(args.log_dir, args.lake)
    print(json.dumps({"batch_id": result.batch_id, "path": str(result.path or "")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
