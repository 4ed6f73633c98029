"""Training dataset job on a synthetic lake with planted tastes: windows, features, time split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.train import dataset
from simulator.importers import to_stars
from tests.support import movietweetings

pytestmark = pytest.mark.integration

GENRES = 4
MOVIES_PER_GENRE = 25
START = pd.Timestamp("1998-01-01")  # a replayed old log: windows must not use the wall clock


def planted_world(users: int = 160, per_user: int = 14, seed: int = 7):
    """Interactions with hidden tastes: each user mostly watches (and likes) one genre.

    Returns (watch, rate, tastes, genres): event frames in the lake's columns, the hidden genre
    of each user (Series by user_id) and of each movie (Series by movie_id).
    """
    rng = np.random.default_rng(seed)
    movies = [f"movie+{g}+{j}+19{50 + j}" for g in range(GENRES) for j in range(MOVIES_PER_GENRE)]
    genre_of = pd.Series([g for g in range(GENRES) for _ in range(MOVIES_PER_GENRE)], index=movies)
    # Within a genre, popularity is skewed so that the popularity baseline has signal too.
    weights = 1.0 / np.arange(1, MOVIES_PER_GENRE + 1) ** 0.8
    weights /= weights.sum()
    watch_rows, rate_rows, tastes = [], [], {}
    for u in range(1, users + 1):
        taste = int(rng.integers(GENRES))
        tastes[u] = taste
        n_own = int(per_user * 0.85)
        own = rng.choice(MOVIES_PER_GENRE, n_own, replace=False, p=weights)
        chosen = [movies[taste * MOVIES_PER_GENRE + j] for j in own]
        others = [m for m in movies if genre_of[m] != taste]
        chosen += list(rng.choice(others, per_user - n_own, replace=False))
        chosen = list(rng.permutation(chosen))  # tastes do not drift: any order in time
        days = np.sort(rng.uniform(0, 60, len(chosen)))
        for movie, day in zip(chosen, days, strict=True):
            t0 = START + pd.Timedelta(days=float(day))
            liked = genre_of[movie] == taste
            minutes = int(rng.integers(40, 90) if liked else rng.integers(3, 20))
            for minute in range(0, minutes, 10):  # a sparse sample of the minute events
                watch_rows.append((t0 + pd.Timedelta(minutes=minute), u, movie, minute))
            if rng.random() < 0.6:
                rating = int(rng.integers(4, 6) if liked else rng.integers(1, 3))
                rate_rows.append((t0 + pd.Timedelta(minutes=minutes + 1), u, movie, rating))
    watch = pd.DataFrame(watch_rows, columns=["event_time", "user_id", "movie_id", "minute"])
    rate = pd.DataFrame(rate_rows, columns=["event_time", "user_id", "movie_id", "rating"])
    return watch, rate, pd.Series(tastes), genre_of


def write_snapshot(root: Path, snapshot_id: str, watch: pd.DataFrame, rate: pd.DataFrame) -> Path:
    """Write frames as a lake snapshot: <root>/<id>/{watch,rate}/event_date=…/ + manifest."""
    snap = root / snapshot_id
    for name, frame in (("watch", watch), ("rate", rate)):
        frame = frame.astype({"user_id": "int64", "event_time": "datetime64[us]"}).assign(
            event_date=frame["event_time"].dt.strftime("%Y-%m-%d")
        )
        if name == "watch":
            frame = frame.astype({"minute": "int32"})
        else:
            frame = frame.astype({"rating": "int8"})
        pq.write_to_dataset(
            pa.Table.from_pandas(frame, preserve_index=False),
            snap / name,
            partition_cols=["event_date"],
        )
    manifest = {"snapshot_id": snapshot_id, "offsets": {"0": [0, len(watch) + len(rate)]}}
    (snap / "manifest.json").write_text(json.dumps(manifest))
    return snap


def with_late_arrivals(watch: pd.DataFrame, rate: pd.DataFrame, newest_day: float = 59.9):
    """Add what arrives after any cut: two new users, and a new movie watched by user 1."""
    at = START + pd.Timedelta(days=newest_day)
    known = watch["movie_id"].iloc[0]
    late = [(at, 10_001, known, 0), (at, 10_002, known, 10), (at, 1, "late+arrival+2000", 0)]
    late = pd.DataFrame(late, columns=watch.columns)
    return pd.concat([watch, late], ignore_index=True), rate


@pytest.fixture(scope="module")
def world():
    watch, rate, tastes, genres = planted_world()
    return (*with_late_arrivals(watch, rate), tastes, genres)


@pytest.fixture(scope="module")
def built(world, spark, tmp_path_factory):
    """Two snapshots (split by time), one dataset over both."""
    watch, rate, _, _ = world
    root = tmp_path_factory.mktemp("lake")
    cut = START + pd.Timedelta(days=30)
    snaps = [
        write_snapshot(root, "s1", watch[watch.event_time < cut], rate[rate.event_time < cut]),
        write_snapshot(root, "s2", watch[watch.event_time >= cut], rate[rate.event_time >= cut]),
    ]
    runtimes = pd.DataFrame({"movie_id": watch["movie_id"].unique(), "runtime": 100.0})
    out = dataset.build_dataset(
        snaps, root / "ds", window_days=None, runtimes=runtimes, spark=spark
    )
    return out, watch, rate


def test_interactions_hold_latest_rating_and_fraction_watched(built):
    out, watch, rate = built
    train, test = dataset.load_split(out)
    both = pd.concat([train, test, dataset.load_cold(out).drop(columns="cold")])
    assert not both.duplicated(["user_id", "movie_id"]).any()
    pairs = pd.concat([watch[["user_id", "movie_id"]], rate[["user_id", "movie_id"]]])
    assert len(both) == len(pairs.drop_duplicates())
    row = both.iloc[0]
    w = watch[(watch.user_id == row.user_id) & (watch.movie_id == row.movie_id)]
    assert row.minutes_watched == w.minute.nunique()
    assert row.fraction_watched == pytest.approx(min(1.0, w.minute.nunique() / 100.0))
    r = rate[(rate.user_id == row.user_id) & (rate.movie_id == row.movie_id)]
    expected_rating = r.sort_values("event_time").rating.iloc[-1] if len(r) else np.nan
    assert row.rating == pytest.approx(expected_rating, nan_ok=True)
    assert row.strength == pytest.approx(
        row.fraction_watched + (0 if np.isnan(expected_rating) else expected_rating / 5)
    )


def test_global_time_split_has_no_leakage(built):
    out, _, _ = built
    train, test = dataset.load_split(out)
    cold = dataset.load_cold(out)
    split = dataset.read_manifest(out)["split"]
    assert split["kind"] == "global" and len(test) > 0
    cutoff = pd.Timestamp(split["cutoff"]).tz_localize(None)
    # One cutoff for everybody: nothing at or after T is in train, nothing before T in test.
    assert train["event_time"].max() < cutoff <= test["event_time"].min()
    assert len(cold) > 0 and cold["event_time"].min() >= cutoff
    # The latest part of each user's history is held out: test after all of that user's train.
    last_train = train.groupby("user_id")["event_time"].max()
    first_test = test.groupby("user_id")["event_time"].min()
    assert (last_train.reindex(first_test.index) < first_test).all()
    # Test users and movies all have training history; the others are reported as cold.
    assert test["user_id"].isin(train["user_id"]).all()
    assert test["movie_id"].isin(train["movie_id"]).all()
    assert set(cold["cold"]) == {"user", "item"}
    # About test_fraction of the interactions are after T.
    total = len(train) + len(test) + len(cold)
    assert 0.15 <= (len(test) + len(cold)) / total <= 0.25


def test_per_user_split_is_still_available(built, spark, tmp_path):
    out, _, _ = built
    snaps = [Path(s["path"]) for s in dataset.read_manifest(out)["snapshots"]]
    per_user = dataset.build_dataset(
        snaps, tmp_path / "pu", window_days=None, split="per_user", spark=spark
    )
    train, test = dataset.load_split(per_user)
    last_train = train.groupby("user_id")["event_time"].max()
    first_test = test.groupby("user_id")["event_time"].min()
    assert (last_train.reindex(first_test.index) <= first_test).all()
    # Test fraction 0.2: floor(0.2 n) of each user's n interactions are held out (2 of 14).
    held_out = test.groupby("user_id").size()
    expected = (0.2 * pd.concat([train, test]).groupby("user_id").size()).astype(int)
    assert (held_out == expected.reindex(held_out.index)).all() and (held_out == 2).mean() > 0.9
    manifest = dataset.read_manifest(per_user)
    assert manifest["split"]["kind"] == "per_user" and "floor(0.2" in manifest["split"]["rule"]
    assert len(dataset.load_cold(per_user)) == 0


def test_holdout_days_sets_the_cutoff_back_from_the_newest_event(built, spark, tmp_path):
    out, watch, rate = built
    snaps = [Path(s["path"]) for s in dataset.read_manifest(out)["snapshots"]]
    path = dataset.build_dataset(
        snaps, tmp_path / "h5", window_days=None, holdout_days=5, spark=spark
    )
    newest = max(watch.event_time.max(), rate.event_time.max())
    cutoff = pd.Timestamp(dataset.read_manifest(path)["split"]["cutoff"]).tz_localize(None)
    # (the lake stores microseconds; the frames here carry nanoseconds)
    assert abs(cutoff - (newest - pd.Timedelta(days=5))) < pd.Timedelta(milliseconds=1)
    train, test = dataset.load_split(path)
    assert train["event_time"].max() < cutoff <= test["event_time"].min()
    with pytest.raises(ValueError, match="holdout_days"):
        dataset.build_dataset(
            snaps, tmp_path / "bad", holdout_days=5, split="per_user", spark=spark
        )


@pytest.mark.unit
def test_temporal_split_in_pandas_follows_the_same_rule():
    times = pd.date_range("2013-01-01", periods=10, freq="D")
    frame = pd.DataFrame(
        {
            "user_id": [1, 2, 1, 2, 1, 2, 1, 2, 3, 1],
            "movie_id": ["a", "b", "c", "a", "b", "c", "d", "a", "a", "z"],
            "event_time": times,
        }
    )
    train, test, cold = dataset.temporal_split(frame, test_fraction=0.3)
    assert len(train) == 7 and train["event_time"].max() < test["event_time"].min()
    # Rows 8..10 are after T: user 3 is cold, movie z is cold, (2, a) is a test row.
    assert test[["user_id", "movie_id"]].values.tolist() == [[2, "a"]]
    assert sorted(cold["cold"]) == ["item", "user"]
    train_days, test_days, cold_days = dataset.temporal_split(frame, holdout_days=1.5)
    assert len(train_days) == 8 and len(test_days) == 0 and len(cold_days) == 2


def test_manifest_lists_snapshots_window_counts(built):
    out, _, _ = built
    manifest = dataset.read_manifest(out)
    assert [s["snapshot_id"] for s in manifest["snapshots"]] == ["s1", "s2"]
    assert manifest["snapshots"][0]["manifest"]["offsets"]
    assert any(f.startswith("watch/event_date=") for f in manifest["snapshots"][0]["files"])
    train, test = dataset.load_split(out)
    assert manifest["counts"]["train"] == len(train)
    assert manifest["counts"]["test"] == len(test)
    assert manifest["window"]["newest_event"].startswith("1998-")
    assert "global temporal" in manifest["split"]["rule"]
    assert manifest["counts"]["test_cold_user"] + manifest["counts"]["test_cold_item"] == len(
        dataset.load_cold(out)
    )


def test_window_is_measured_from_newest_event(built, spark, tmp_path):
    out, watch, rate = built
    snaps = [Path(s["path"]) for s in dataset.read_manifest(out)["snapshots"]]
    small = dataset.build_dataset(snaps, tmp_path / "w10", window_days=10, spark=spark)
    train, test = dataset.load_split(small)
    newest = max(watch.event_time.max(), rate.event_time.max())
    both = pd.concat([train, test])
    assert len(both) > 0
    assert both["first_time"].min() >= newest - pd.Timedelta(days=10)
    assert dataset.read_manifest(small)["runtime_source"] == "max minute seen + 1"


def test_bad_input_is_a_clear_error(tmp_path, spark):
    with pytest.raises(ValueError, match="does not exist"):
        dataset.build_dataset([tmp_path / "nope"], tmp_path / "out", spark=spark)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has a watch or rate table"):
        dataset.build_dataset([tmp_path / "empty"], tmp_path / "out", spark=spark)


@pytest.mark.unit
def test_movietweetings_stars_are_the_importers_mapping():
    got = movietweetings.stars(np.arange(11))
    assert got.tolist() == [1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert got.tolist() == to_stars(np.arange(11), 10).tolist()
    with pytest.raises(ValueError, match="outside 0..10"):
        movietweetings.stars([3, 11])
