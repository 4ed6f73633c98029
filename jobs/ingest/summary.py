"""What later runs need to know about a snapshot, computed once: its distinct users and movies
and its star histogram.

Drift checks (jobs/ingest/validate.py) compare a snapshot with up to `reference_snapshots`
earlier ones, and the catalogue sync (jobs/ingest/catalog.py) asks which ids a snapshot holds.
Both used to re-read whole columns of every snapshot they looked at; they now read its summary,
written beside the lake the first time anyone asks (snapshots are immutable, so it never goes
stale) and read in a fraction of the time and memory:

    <lake>/summaries/<snapshot_id>/users.parquet    user_id: distinct, sorted (all event tables)
    <lake>/summaries/<snapshot_id>/movies.parquet   movie_id: distinct, sorted (watch and rate)
    <lake>/summaries/<snapshot_id>/stars.json       {"snapshot_id", "stars": [n1, ..., n5]}

Computing one reads the snapshot a file at a time: memory is one file plus the distinct ids.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from contracts.names import ITEM_COL, RATING_COL, TIME_COL, USER_COL
from jobs.ingest import lake, parse

SUMMARIES = "summaries"
MOVIE_TABLES = ("watch", "rate")


@dataclass(frozen=True)
class Summary:
    """Distinct user ids, distinct movie ids and counts of 1..5 stars of one snapshot."""

    snapshot_id: str
    users: pa.Array
    movies: pa.Array
    stars: tuple[int, ...]


def summary_dir(snapshot_dir: Path) -> Path:
    """Where the summary of the snapshot in `snapshot_dir` lives (<lake>/summaries/<id>)."""
    snapshot_dir = Path(snapshot_dir)
    return snapshot_dir.parent.parent / SUMMARIES / snapshot_dir.name


def column_batches(
    snapshot_dir: Path, tables: tuple[str, ...], column: str, since: datetime | None = None
):
    """One column of some tables of a snapshot, a file at a time (each a ChunkedArray);
    with `since`, only rows of that event time or later."""
    for table in tables:
        for path in lake.table_files(Path(snapshot_dir), table):
            if since is None:
                yield pq.read_table(path, columns=[column])[column]
                continue
            part = pq.read_table(path, columns=[column, TIME_COL])
            moment = pa.scalar(since, part.schema.field(TIME_COL).type)
            yield part.filter(pc.greater_equal(part[TIME_COL], moment))[column]


def distinct(snapshot_dir: Path, tables: tuple[str, ...], column: str) -> pa.Array:
    """Sorted distinct values of `column` over `tables`, read a file at a time."""
    kind = parse.SCHEMAS[tables[0]].field(column).type
    seen = pa.array([], kind)
    for values in column_batches(snapshot_dir, tables, column):
        seen = pc.unique(pa.concat_arrays([seen, *(c.cast(kind) for c in values.chunks)]))
    return pc.take(seen, pc.sort_indices(seen))


def star_counts(snapshot_dir: Path) -> tuple[int, ...]:
    """How many 1, 2, 3, 4 and 5 star ratings the snapshot holds."""
    counts = np.zeros(6, np.int64)
    for values in column_batches(snapshot_dir, ("rate",), RATING_COL):
        stars = values.to_numpy().astype(np.int64)
        counts += np.bincount(np.clip(stars, 0, 5), minlength=6)
    return tuple(int(n) for n in counts[1:6])


def compute(snapshot_dir: Path) -> Summary:
    """The summary of one snapshot, from its files."""
    return Summary(
        Path(snapshot_dir).name,
        distinct(snapshot_dir, parse.TABLES, USER_COL),
        distinct(snapshot_dir, MOVIE_TABLES, ITEM_COL),
        star_counts(snapshot_dir),
    )


def store(summary: Summary, directory: Path) -> Path:
    """Write a summary aside, then rename it into `directory` (kept if one is already there)."""
    tmp = directory.parent / f"{lake.TMP_PREFIX}{directory.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    pq.write_table(pa.table({USER_COL: summary.users}), tmp / "users.parquet")
    pq.write_table(pa.table({ITEM_COL: summary.movies}), tmp / "movies.parquet")
    doc = {"snapshot_id": summary.snapshot_id, "stars": list(summary.stars)}
    (tmp / "stars.json").write_text(json.dumps(doc) + "\n")
    try:
        os.rename(tmp, directory)
    except OSError:  # written meanwhile by another run: the same content, keep that one
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def load(snapshot_dir: Path) -> Summary:
    """The stored summary of a snapshot, computed and stored first when there is none."""
    directory = summary_dir(snapshot_dir)
    if (directory / "stars.json").is_file():
        return _read(directory)
    summary = compute(snapshot_dir)
    with contextlib.suppress(OSError):  # a read-only lake: use it without storing it
        store(summary, directory)
    return summary


def _read(directory: Path) -> Summary:
    doc = json.loads((directory / "stars.json").read_text())
    users = pq.read_table(directory / "users.parquet")[USER_COL].combine_chunks()
    movies = pq.read_table(directory / "movies.parquet")[ITEM_COL].combine_chunks()
    return Summary(doc["snapshot_id"], users, movies, tuple(doc["stars"]))
