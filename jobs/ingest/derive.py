"""Derived tables over accepted snapshots: watch sessions and the latest rating per (user, movie).

    watch_sessions:  user_id, movie_id, minutes_watched, max_minute, first_time, last_time
    latest_ratings:  user_id, movie_id, rating, event_time (the newest rating; ties -> the
                     later Kafka position), kafka_partition, kafka_offset (that position)

`minutes_watched` counts distinct minutes within each snapshot, summed over snapshots: a
minute watched again in a later snapshot counts again (a re-watch), which is what lets the
table grow by merging instead of re-reading every watch event ever seen.

write_derived() stores each table as Parquet under <lake>/derived/<table>/part-NNNNN.parquet,
rows split by user_id % buckets (readable whole with `spark.read.parquet(path)` or
`pyarrow.parquet.read_table(path)`), with `_STATE.json` naming the snapshots it covers.
**Incremental**: a run reads only snapshots the table does not cover yet, aggregates them, and
merges them bucket by bucket into the previous table (unchanged buckets are hard-linked). So
memory is one snapshot's aggregates plus one bucket (at most MAX_BUCKET_ROWS rows; the bucket
count doubles when the table outgrows it), whatever the length of history. When the wanted
snapshots are not a superset of the covered ones (a window moved, a snapshot left `accepted`)
the table is rebuilt by folding snapshots in one at a time, with the same bound.
Each table is written aside, then swapped in by jobs.files.replace_dir (one rename of a link):
a kill at any step leaves the old or the new table whole, never none.

    python -m jobs.ingest.derive [--start ISO] [--end ISO]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from contracts.names import (
    ITEM_COL,
    MINUTE_COL,
    OFFSET_COL,
    PARTITION_COL,
    RATING_COL,
    TIME_COL,
    USER_COL,
)
from jobs.files import replace_dir
from jobs.ingest import lake, parse

DERIVED_TABLES = ("watch_sessions", "latest_ratings")
STATE_FILE = "_STATE.json"
MAX_BUCKET_ROWS = 2_000_000  # rows of one bucket in memory at once (pandas merge)
MAX_PENDING_ROWS = 2_000_000  # aggregated new rows gathered before one merge pass

SESSIONS_SCHEMA = pa.schema(
    [
        (USER_COL, pa.int64()),
        (ITEM_COL, pa.string()),
        ("minutes_watched", pa.int32()),
        ("max_minute", pa.int32()),
        ("first_time", pa.timestamp("ms")),
        ("last_time", pa.timestamp("ms")),
    ]
)
RATINGS_SCHEMA = pa.schema(
    [parse.RATE_SCHEMA.field(c) for c in (USER_COL, ITEM_COL, RATING_COL, TIME_COL)]
    + [parse.RATE_SCHEMA.field(PARTITION_COL), parse.RATE_SCHEMA.field(OFFSET_COL)]
)
KEY = [USER_COL, ITEM_COL]


def _read(snapshot: str | Path, table: str, columns: list[str]) -> pa.Table:
    files = lake.table_files(Path(snapshot), table)
    schema = pa.schema([parse.SCHEMAS[table].field(c) for c in columns])
    if not files:
        return schema.empty_table()
    return pa.concat_tables(pq.read_table(f, columns=columns).cast(schema) for f in files)


def _frame(data: pd.DataFrame | pa.Table, schema: pa.Schema) -> pd.DataFrame:
    """`data` with exactly the columns and dtypes of `schema`, sorted by (user, movie)."""
    if isinstance(data, pd.DataFrame):
        data = pa.Table.from_pandas(data[schema.names], schema=schema, preserve_index=False)
    frame = data.select(schema.names).cast(schema).to_pandas()
    return frame.sort_values(KEY, ignore_index=True)


def snapshot_sessions(snapshot: str | Path) -> pd.DataFrame:
    """Sessions of one snapshot: distinct minutes, highest minute, first and last watch time."""
    data = _read(snapshot, "watch", [USER_COL, ITEM_COL, MINUTE_COL, TIME_COL])
    grouped = data.group_by(KEY).aggregate(
        [(MINUTE_COL, "count_distinct"), (MINUTE_COL, "max"), (TIME_COL, "min"), (TIME_COL, "max")]
    )
    names = {
        f"{MINUTE_COL}_count_distinct": "minutes_watched",
        f"{MINUTE_COL}_max": "max_minute",
        f"{TIME_COL}_min": "first_time",
        f"{TIME_COL}_max": "last_time",
    }
    grouped = grouped.rename_columns([names.get(n, n) for n in grouped.column_names])
    return _frame(grouped, SESSIONS_SCHEMA)


def merge_sessions(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Sessions of several disjoint sets of snapshots as one table."""
    data = pd.concat([f for f in frames if len(f)] or [frames[0]], ignore_index=True)
    merged = data.groupby(KEY, as_index=False, sort=False).agg(
        minutes_watched=("minutes_watched", "sum"),
        max_minute=("max_minute", "max"),
        first_time=("first_time", "min"),
        last_time=("last_time", "max"),
    )
    return _frame(merged, SESSIONS_SCHEMA)


def snapshot_ratings(snapshot: str | Path) -> pd.DataFrame:
    """The newest rating of every (user, movie) in one snapshot, with its Kafka position."""
    return merge_ratings([_frame(_read(snapshot, "rate", RATINGS_SCHEMA.names), RATINGS_SCHEMA)])


def merge_ratings(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The newest rating per (user, movie) over several frames (time, then Kafka position)."""
    data = pd.concat([f for f in frames if len(f)] or [frames[0]], ignore_index=True)
    data = data.sort_values([TIME_COL, PARTITION_COL, OFFSET_COL], kind="stable")
    return _frame(data.drop_duplicates(KEY, keep="last"), RATINGS_SCHEMA)


@dataclass(frozen=True)
class Derived:
    """One derived table: how to aggregate one snapshot, merge aggregates, and its schema."""

    name: str
    one: Callable[[str | Path], pd.DataFrame]
    merge: Callable[[Sequence[pd.DataFrame]], pd.DataFrame]
    schema: pa.Schema


TABLES = (
    Derived("watch_sessions", snapshot_sessions, merge_sessions, SESSIONS_SCHEMA),
    Derived("latest_ratings", snapshot_ratings, merge_ratings, RATINGS_SCHEMA),
)


def _fold(table: Derived, snapshots: Sequence[str | Path]) -> pd.DataFrame:
    acc = table.schema.empty_table().to_pandas()
    for snapshot in snapshots:
        acc = table.merge([acc, table.one(snapshot)])
    return acc


def watch_sessions(snapshots: Sequence[str | Path]) -> pd.DataFrame:
    """Per (user, movie) over `snapshots`, in memory (write_derived keeps memory bounded)."""
    return _fold(TABLES[0], snapshots)


def latest_ratings(snapshots: Sequence[str | Path]) -> pd.DataFrame:
    """The newest rating of every (user, movie) with its event time, in memory."""
    return _fold(TABLES[1], snapshots)[[USER_COL, ITEM_COL, RATING_COL, TIME_COL]]


# --- the stored, incremental tables -----------------------------------------------------------
def read_state(directory: Path) -> dict | None:
    """{"buckets": n, "sources": [snapshot dirs]} of a stored table (None: no usable table)."""
    path = Path(directory) / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _pending(table: Derived, todo: Sequence[str]) -> Iterator[pd.DataFrame]:
    """Aggregates of the new snapshots, merged in groups of at most about MAX_PENDING_ROWS."""
    pending = None
    for snapshot in todo:
        frame = table.one(snapshot)
        pending = frame if pending is None else table.merge([pending, frame])
        if len(pending) >= MAX_PENDING_ROWS:
            yield pending
            pending = None
    if pending is not None:
        yield pending


def _part(directory: Path, bucket: int) -> Path:
    return directory / f"part-{bucket:05d}.parquet"


def _bucket_count(base: Path | None, buckets: int, new_rows: int) -> int:
    rows = new_rows
    if base is not None:
        rows += sum(pq.ParquetFile(p).metadata.num_rows for p in base.glob("part-*.parquet"))
    while rows > buckets * MAX_BUCKET_ROWS:
        buckets *= 2
    return buckets


def merge_into(table: Derived, base: Path | None, old_buckets: int, new: pd.DataFrame, out: Path):
    """Write `base` (split into `old_buckets` by user) merged with `new` into `out`; buckets."""
    buckets = _bucket_count(base, old_buckets, len(new))
    out.mkdir(parents=True)
    of_new = new[USER_COL].to_numpy() % buckets
    for bucket in range(buckets):
        fresh = new[of_new == bucket]
        old = _part(base, bucket % old_buckets) if base is not None else None
        if old is not None and len(fresh) == 0 and buckets == old_buckets:
            os.link(old, _part(out, bucket))  # unchanged: the same bytes, no copy
            continue
        frames = [fresh]
        if old is not None:
            prior = pq.read_table(old).to_pandas()
            frames.insert(0, prior[prior[USER_COL].to_numpy() % buckets == bucket])
        merged = table.merge(frames)
        data = pa.Table.from_pandas(merged, schema=table.schema, preserve_index=False)
        pq.write_table(data, _part(out, bucket))
    return buckets


def update_table(table: Derived, final: Path, wanted: list[str]) -> bool:
    """Bring one stored table up to `wanted` snapshots (incrementally when it can); changed?"""
    state = read_state(final) if final.exists() else None
    incremental = state is not None and set(state["sources"]) <= set(wanted)
    covered = state["sources"] if incremental else []
    todo = [s for s in wanted if s not in set(covered)]
    if incremental and not todo:
        return False
    base, buckets = (final, state["buckets"]) if incremental else (None, 1)
    step = 0
    work = final.parent / f"{lake.TMP_PREFIX}{final.name}"
    for stale in final.parent.glob(f"{work.name}*"):
        shutil.rmtree(stale)
    for new in _pending(table, todo):
        out = work.with_name(f"{work.name}-{step}")
        buckets = merge_into(table, base, buckets, new, out)
        if base is not None and base != final:
            shutil.rmtree(base)
        base, step = out, step + 1
    if base is None:  # no snapshots at all: an empty table
        base = work.with_name(f"{work.name}-{step}")
        buckets = merge_into(table, None, 1, table.schema.empty_table().to_pandas(), base)
    (base / STATE_FILE).write_text(json.dumps({"buckets": buckets, "sources": wanted}, indent=1))
    replace_dir(base, final)
    return True


def write_derived(
    snapshots: Sequence[str | Path] | None = None,
    root: str | Path | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, str]:
    """Bring both tables up to `snapshots` (default: accepted ones) and store them; paths."""
    root = lake.lake_root(root)
    if snapshots is None:
        snapshots = [ref.path for ref in lake.accepted_snapshots(start, end)]
    wanted = [str(s) for s in snapshots]
    out = {}
    for table in TABLES:
        final = root / lake.DERIVED / table.name
        update_table(table, final, wanted)
        out[table.name] = str(final)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", type=datetime.fromisoformat)
    parser.add_argument("--end", type=datetime.fromisoformat)
    args = parser.parse_args(argv)
    print(json.dumps(write_derived(start=args.start, end=args.end)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
