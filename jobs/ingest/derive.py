"""Derived tables over accepted snapshots: watch sessions and the latest rating per (user, movie).

    watch_sessions:  user_id, movie_id, minutes_watched (distinct minutes), max_minute,
                     first_time, last_time
    latest_ratings:  user_id, movie_id, rating, event_time (the newest rating; ties -> the
                     later Kafka position)

Functions return pandas frames; write_derived() stores them as Parquet under
<lake>/derived/<table>/part-00000.parquet, readable from Spark with `spark.read.parquet(path)`.
Each table is written aside, then swapped in by jobs.files.replace_dir (one rename of a link):
a kill at any step leaves the old or the new table whole, never none.

    python -m jobs.ingest.derive [--start ISO] [--end ISO]
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
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


def _read(snapshots: Sequence[str | Path], table: str, columns: list[str]) -> pa.Table:
    files = [f for s in snapshots for f in lake.table_files(Path(s), table)]
    schema = pa.schema([parse.SCHEMAS[table].field(c) for c in columns])
    if not files:
        return schema.empty_table()
    return pa.concat_tables(pq.read_table(f, columns=columns).cast(schema) for f in files)


def watch_sessions(snapshots: Sequence[str | Path]) -> pd.DataFrame:
    """Per (user, movie): distinct minutes watched, highest minute, first and last watch time."""
    data = _read(snapshots, "watch", [USER_COL, ITEM_COL, MINUTE_COL, TIME_COL])
    grouped = data.group_by([USER_COL, ITEM_COL]).aggregate(
        [
            (MINUTE_COL, "count_distinct"),
            (MINUTE_COL, "max"),
            (TIME_COL, "min"),
            (TIME_COL, "max"),
        ]
    )
    frame = grouped.to_pandas().rename(
        columns={
            f"{MINUTE_COL}_count_distinct": "minutes_watched",
            f"{MINUTE_COL}_max": "max_minute",
            f"{TIME_COL}_min": "first_time",
            f"{TIME_COL}_max": "last_time",
        }
    )
    columns = [USER_COL, ITEM_COL, "minutes_watched", "max_minute", "first_time", "last_time"]
    frame = frame[columns].sort_values([USER_COL, ITEM_COL], ignore_index=True)
    return frame.astype({"minutes_watched": "int32", "max_minute": "int32"})


def latest_ratings(snapshots: Sequence[str | Path]) -> pd.DataFrame:
    """The newest rating of every (user, movie) with its event time."""
    data = _read(
        snapshots, "rate", [USER_COL, ITEM_COL, RATING_COL, TIME_COL, PARTITION_COL, OFFSET_COL]
    )
    frame = data.to_pandas()
    frame = frame.sort_values([TIME_COL, PARTITION_COL, OFFSET_COL], kind="stable")
    frame = frame.drop_duplicates([USER_COL, ITEM_COL], keep="last")
    frame = frame[[USER_COL, ITEM_COL, RATING_COL, TIME_COL]]
    return frame.sort_values([USER_COL, ITEM_COL], ignore_index=True)


def write_derived(
    snapshots: Sequence[str | Path] | None = None,
    root: str | Path | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, str]:
    """Compute both tables over `snapshots` (default: accepted ones) and store them; paths."""
    root = lake.lake_root(root)
    if snapshots is None:
        snapshots = [ref.path for ref in lake.accepted_snapshots(start, end)]
    out = {}
    for name, build in (("watch_sessions", watch_sessions), ("latest_ratings", latest_ratings)):
        final = root / lake.DERIVED / name
        tmp = root / lake.DERIVED / f"{lake.TMP_PREFIX}{name}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        table = pa.Table.from_pandas(build(snapshots), preserve_index=False)
        pq.write_table(table, tmp / "part-00000.parquet")
        (tmp / "_SOURCES.json").write_text(json.dumps([str(s) for s in snapshots], indent=1))
        replace_dir(tmp, final)  # swapped in by one rename: never a moment without it
        out[name] = str(final)
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
