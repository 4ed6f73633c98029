"""MovieTweetings ratings.dat as a lake snapshot, for tests and benchmarks that need real data
without the simulator's Kafka import. Stars come from simulator.importers.to_stars, the one
rating map the importer uses too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from contracts.names import DATE_COL, ITEM_COL, RATING_COL, TIME_COL, USER_COL
from simulator.importers import to_stars

SCALE_MAX = 10  # MovieTweetings rates 0..10


def stars(rating_0_10: np.ndarray | pd.Series) -> np.ndarray:
    """MovieTweetings' 0..10 ratings as 1..5 stars (int8, as the lake stores them) by to_stars.

    0, 1, 2 -> 1; 3, 4 -> 2; 5, 6 -> 3; 7, 8 -> 4; 9, 10 -> 5. Values outside 0..10 are an error.
    """
    r = np.asarray(rating_0_10, dtype=np.int64)
    bad = (r < 0) | (r > SCALE_MAX)
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} MovieTweetings ratings outside 0..10, e.g. {r[bad][:3]}"
        )
    return to_stars(r, SCALE_MAX).astype(np.int8)


def rate_snapshot(ratings_dat: str | Path, out: str | Path) -> Path:
    """Write ratings.dat as a lake-shaped snapshot (a `rate` table + manifest) under `out`.

    ratings.dat lines are `user::imdb_id::rating_0_10::unix_time`; movie IDs keep the IMDb
    number as text.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    raw = pd.read_csv(
        ratings_dat,
        sep="::",
        engine="python",
        header=None,
        names=[USER_COL, ITEM_COL, "r10", "ts"],
        dtype={ITEM_COL: str},
    )
    event_time = pd.to_datetime(raw["ts"], unit="s").astype("datetime64[us]")  # Spark-readable
    frame = pd.DataFrame(
        {
            TIME_COL: event_time,
            USER_COL: raw[USER_COL].astype(np.int64),
            ITEM_COL: raw[ITEM_COL].astype(str),
            RATING_COL: stars(raw["r10"]),
            DATE_COL: event_time.dt.strftime("%Y-%m-%d"),
        }
    )
    out = Path(out)
    shutil.rmtree(out / "rate", ignore_errors=True)
    pq.write_to_dataset(
        pa.Table.from_pandas(frame, preserve_index=False), out / "rate", partition_cols=[DATE_COL]
    )
    (out / "manifest.json").write_text(
        json.dumps({"snapshot_id": out.name, "source": str(ratings_dat), "rows": len(frame)})
    )
    return out
