"""Rating-spam detector: flags accounts that took part in a burst of unwatched high ratings.

A pipeline step before the dataset (DAG train_and_publish, task detect_spam). Input: the lake's
accepted snapshots (`rate` and `watch` tables). Output, under lake_dir/flagged/<detection_id>/:
  accounts.parquet   user_id, reasons (codes, comma-separated), movies (attacked movie ids),
                     burst_size (largest burst the account was in), first_time, last_time
  movies.parquet     movie_id, accounts, start, end: the attacked movies and their bursts
  detection.json     detector version, thresholds, snapshots, counts, the paths above
jobs/train/dataset.py drops the flagged accounts' events and records the detection in the
dataset manifest (`exclusion`).

Rule (docs/responsible-ml.md, "Threat model"): a *suspect rating* is a rating of
>= HIGH_STARS for a movie the account never watched (when the lake has no watch events at
all, as in imported rating logs, a high rating by an account with at most THIN_MAX_MOVIES
rated movies instead). A *burst* is >= MIN_BURST_ACCOUNTS suspect ratings of one movie by
distinct accounts within BURST_WINDOW. Every account with a rating in a burst is flagged.
Reason codes (data, not prose): `burst` always; `unwatched` (never watched the movie),
`thin` (at most THIN_MAX_MOVIES rated movies), `identical` (its whole rating vector equals
another burst account's).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from contracts import settings
from contracts.names import ITEM_COL, RATING_COL, TIME_COL, USER_COL
from jobs.ingest import lake

log = logging.getLogger(__name__)

DETECTOR_VERSION = "spam-burst-1"
HIGH_STARS = 4
MIN_BURST_ACCOUNTS = 5
BURST_WINDOW = pd.Timedelta(hours=1)
THIN_MAX_MOVIES = 3
FLAGGED_DIR = "flagged"
ACCOUNTS_FILE = "accounts.parquet"
MOVIES_FILE = "movies.parquet"
DETECTION_FILE = "detection.json"
BATCH_ROWS = 1_000_000  # watch rows read at once (one file can hold a day: 29M rows at 1M users)
ACCOUNT_COLUMNS = [USER_COL, "reasons", "movies", "burst_size", "first_time", "last_time"]
MOVIE_COLUMNS = [ITEM_COL, "accounts", "start", "end"]


def read_snapshot_table(snapshots: Sequence[Path], table: str, columns: list[str]) -> pd.DataFrame:
    """One lake table over the snapshots, only `columns` (empty frame when none has it)."""
    import pyarrow.parquet as pq

    frames = [
        pq.read_table(s / table, columns=columns, partitioning=None).to_pandas()
        for s in snapshots
        if (s / table).is_dir() and any((s / table).rglob("*.parquet"))
    ]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)


def watched_pairs(
    snapshots: Sequence[Path], among: pd.DataFrame | None = None
) -> pd.DataFrame | None:
    """Distinct (user_id, movie_id) with any watch event, only those among the pairs `among`
    when given; None when the lake has no watch data at all.

    Read a file at a time and reduced in Arrow: the watch table has a row per minute watched
    (58M in one day of the scenario world). With `among` (the high ratings, the only pairs
    the rule asks about) memory is bounded by those pairs, not by every watched pair.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    keys = [USER_COL, ITEM_COL]
    wanted = (
        None
        if among is None
        else pa.Table.from_pandas(among[keys].drop_duplicates(), preserve_index=False)
    )
    pairs, seen_any = None, False
    for path in (f for s in snapshots for f in lake.table_files(s, "watch")):
        for batch in pq.ParquetFile(path).iter_batches(BATCH_ROWS, columns=keys):
            part = pa.Table.from_batches([batch])
            seen_any = seen_any or part.num_rows > 0
            if wanted is not None:
                wanted = wanted.cast(part.schema)
                part = part.filter(pc.is_in(part[USER_COL], value_set=wanted[USER_COL]))
                part = part.join(wanted, keys, join_type="inner")
            merged = part if pairs is None else pa.concat_tables([pairs, part])
            pairs = merged.group_by(keys).aggregate([])
    if not seen_any:
        return None
    return pairs.to_pandas() if pairs is not None else pd.DataFrame(columns=keys)


def high_ratings(rates: pd.DataFrame) -> pd.DataFrame:
    """Each account's first high rating of a movie, with its account's rated-movie count and
    the `thin` flag."""
    rated = rates.groupby(USER_COL)[ITEM_COL].nunique().rename("rated_movies")
    high = rates[rates[RATING_COL] >= HIGH_STARS].sort_values(TIME_COL)
    high = high.drop_duplicates([USER_COL, ITEM_COL]).join(rated, on=USER_COL)
    high["thin"] = high["rated_movies"] <= THIN_MAX_MOVIES
    return high


def suspect_ratings(high: pd.DataFrame, watched: pd.DataFrame | None) -> pd.DataFrame:
    """The high ratings (`high_ratings`) that are suspect, with the `unwatched` flag:
    unwatched; or thin when there is no watch data."""
    high = high.copy()
    if watched is None:
        high["unwatched"] = False
        return high[high["thin"]]
    seen = high.merge(watched.assign(_seen=True), on=[USER_COL, ITEM_COL], how="left")
    high["unwatched"] = seen["_seen"].isna().to_numpy()
    return high[high["unwatched"]]


def burst_members(times: np.ndarray, window: pd.Timedelta, min_accounts: int) -> np.ndarray:
    """For one movie's sorted suspect-rating times: the size of the largest window of length
    `window` with >= min_accounts ratings that covers each rating (0: in no burst)."""
    ends = np.searchsorted(times, times + np.timedelta64(window), side="left")
    counts = ends - np.arange(len(times))
    size = np.zeros(len(times), dtype=np.int64)
    for i in np.flatnonzero(counts >= min_accounts):
        size[i : ends[i]] = np.maximum(size[i : ends[i]], counts[i])
    return size


def find_bursts(suspects: pd.DataFrame) -> pd.DataFrame:
    """The suspect ratings that are in a burst, with `burst_size`."""
    kept = []
    for _, group in suspects.groupby(ITEM_COL, sort=True):
        group = group.sort_values(TIME_COL)
        times = group[TIME_COL].to_numpy(dtype="datetime64[ns]")
        size = burst_members(times, BURST_WINDOW, MIN_BURST_ACCOUNTS)
        kept.append(group.assign(burst_size=size)[size > 0])
    if not kept:
        return suspects.assign(burst_size=pd.Series(dtype="int64")).iloc[0:0]
    return pd.concat(kept, ignore_index=True)


def identical_vectors(rates: pd.DataFrame, users: pd.Index) -> set[int]:
    """Accounts among `users` whose whole (movie, stars) vector equals another one's."""
    mine = rates[rates[USER_COL].isin(users)].sort_values([USER_COL, ITEM_COL])
    mine = mine.drop_duplicates([USER_COL, ITEM_COL], keep="last")
    keys = mine.groupby(USER_COL).apply(
        lambda g: tuple(zip(g[ITEM_COL], g[RATING_COL], strict=True)), include_groups=False
    )
    dup = keys[keys.duplicated(keep=False)]
    return {int(u) for u in dup.index}


def flagged_accounts(bursts: pd.DataFrame, rates: pd.DataFrame) -> pd.DataFrame:
    """One row per flagged account: reasons, attacked movies, burst size, first/last time."""
    if bursts.empty:
        return pd.DataFrame(columns=ACCOUNT_COLUMNS)
    same = identical_vectors(rates, pd.Index(bursts[USER_COL].unique()))
    rows = []
    for user, group in bursts.groupby(USER_COL, sort=True):
        reasons = ["burst"] + [r for r in ("unwatched", "thin") if group[r].any()]
        if int(user) in same:
            reasons.append("identical")
        rows.append(
            {
                USER_COL: int(user),
                "reasons": ",".join(reasons),
                "movies": ",".join(sorted(group[ITEM_COL].unique())),
                "burst_size": int(group["burst_size"].max()),
                "first_time": group[TIME_COL].min(),
                "last_time": group[TIME_COL].max(),
            }
        )
    return pd.DataFrame(rows, columns=ACCOUNT_COLUMNS)


def attacked_movies(bursts: pd.DataFrame) -> pd.DataFrame:
    """One row per attacked movie: distinct accounts in its bursts, first and last rating."""
    if bursts.empty:
        return pd.DataFrame(columns=MOVIE_COLUMNS)
    per = bursts.groupby(ITEM_COL).agg(
        accounts=(USER_COL, "nunique"), start=(TIME_COL, "min"), end=(TIME_COL, "max")
    )
    return per.reset_index()[MOVIE_COLUMNS]


def detect(snapshots: Sequence[Path]) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(flagged accounts, attacked movies, facts for detection.json) of the snapshots."""
    rates = read_snapshot_table(snapshots, "rate", [TIME_COL, USER_COL, ITEM_COL, RATING_COL])
    high = high_ratings(rates)
    watched = watched_pairs(snapshots, among=high)
    bursts = find_bursts(suspect_ratings(high, watched))
    accounts, movies = flagged_accounts(bursts, rates), attacked_movies(bursts)
    facts = {
        "ratings": len(rates),
        "rating_accounts": int(rates[USER_COL].nunique()),
        "watch_data": watched is not None,
        "flagged": len(accounts),
        "attacked_movies": movies[ITEM_COL].tolist(),
    }
    return accounts, movies, facts


def thresholds() -> dict[str, Any]:
    """The rule's parameters, as detection.json records them."""
    return {
        "high_stars": HIGH_STARS,
        "min_burst_accounts": MIN_BURST_ACCOUNTS,
        "burst_window_s": BURST_WINDOW.total_seconds(),
        "thin_max_movies": THIN_MAX_MOVIES,
    }


def detection_id(snapshots: Sequence[Path]) -> str:
    """`det-<hash8>` of the detector version and the snapshot ids: the same input, same id."""
    key = json.dumps({"version": DETECTOR_VERSION, "snapshots": [s.name for s in snapshots]})
    return f"det-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def write_detection(
    out: Path, accounts: pd.DataFrame, movies: pd.DataFrame, record: dict[str, Any]
) -> Path:
    """accounts/movies Parquet + detection.json under `out`, swapped in atomically."""
    from jobs.files import replace_dir

    tmp = out.with_name(f".{out.name}.tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    accounts.to_parquet(tmp / ACCOUNTS_FILE, index=False)
    movies.to_parquet(tmp / MOVIES_FILE, index=False)
    (tmp / DETECTION_FILE).write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
    return replace_dir(tmp, out)


def run(snapshots: Sequence[str | Path], out: str | Path | None = None) -> Path:
    """Detect over the snapshots and write the detection directory; its path."""
    snaps = [Path(s) for s in snapshots]
    if not snaps:
        raise ValueError("no snapshots given: nothing to detect on")
    accounts, movies, facts = detect(snaps)
    ident = detection_id(snaps)
    out = Path(out) if out else settings.load().lake_dir / FLAGGED_DIR / ident
    record = {
        "detection_id": ident,
        "detector_version": DETECTOR_VERSION,
        "thresholds": thresholds(),
        "snapshots": [s.name for s in snaps],
        "path": str(out),
        "accounts_file": str(out / ACCOUNTS_FILE),
        **facts,
    }
    write_detection(out, accounts, movies, record)
    log.info("detection %s: %d accounts flagged, movies %s", ident, len(accounts), facts)
    return out


def read_detection(path: str | Path) -> dict[str, Any]:
    """detection.json of a detection directory."""
    return json.loads((Path(path) / DETECTION_FILE).read_text())


def flagged_users(path: str | Path) -> list[int]:
    """The flagged account ids of a detection directory."""
    frame = pd.read_parquet(Path(path) / ACCOUNTS_FILE, columns=[USER_COL])
    return sorted(int(u) for u in frame[USER_COL])


def exclusion_record(path: str | Path) -> dict[str, Any]:
    """What a dataset manifest records of the exclusion it applied."""
    record = read_detection(path)
    keys = ("detection_id", "detector_version", "flagged", "attacked_movies", "accounts_file")
    return {k: record.get(k) for k in keys}


def main(argv: Sequence[str] | None = None) -> Path:
    """`python -m jobs.train.detect [--snapshot DIR ...] [--out DIR]`: print the directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshot", type=Path, action="append", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from jobs.train.dataset import default_snapshots

    path = run(args.snapshot or default_snapshots(), args.out)
    print(path)
    return path


if __name__ == "__main__":
    main(sys.argv[1:])
