"""Derived tables (jobs/ingest/derive.py): swapped in whole, even when killed between steps."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from jobs import files
from jobs.ingest import derive, lake, parse
from jobs.ingest import snapshot as ingest


def make_snapshot(
    root: Path, seq: int, lines: list[str], first_offset: int = 0, topic: str = "movielog"
) -> Path:
    """A complete snapshot of `lines` (partition 0) written as ingest writes one, no Kafka."""
    snapshot_id = lake.snapshot_id(seq)
    tmp, final = lake.tmp_path(snapshot_id, root), lake.snapshot_path(snapshot_id, root)
    tmp.mkdir(parents=True)
    writers, read = ingest.PartWriters(tmp), ingest.ReadCounts()
    offsets = np.arange(first_offset, first_offset + len(lines))
    values = [line.encode() for line in lines]
    tables = parse.parse_batch(values, np.zeros(len(lines), np.int32), offsets, read.seen)
    ingest._write_chunk(writers, tables, read.span)
    writers.close()
    read.lines = len(lines)
    read.reasons.update(tables["rejects"]["reason"].to_pylist())
    plan = ingest.Plan(snapshot_id, topic, {0: (first_offset, first_offset + len(lines))})
    lake.write_manifest(tmp, ingest.snapshot_manifest(plan, tmp, writers.files, read))
    os.rename(tmp, final)
    return final


def day(date: str, users: range, rating: int) -> list[str]:
    """Each user watches minutes 0..2 of two movies and rates the first `rating` stars."""
    out = []
    for u in users:
        for m in (1, 2):
            out += [
                f"{date}T10:0{k}:{u % 60:02d},{u},GET /data/m/film+{m}+1999/{k}.mpg"
                for k in range(3)
            ]
        out.append(f"{date}T11:00:{u % 60:02d},{u},GET /rate/film+1+1999={rating}")
    return out


def read(root: Path, name: str):
    return pq.read_table(root / lake.DERIVED / name).to_pandas()


@pytest.fixture
def lake_with_three(tmp_path):
    root = tmp_path / "lake"
    first = make_snapshot(root, 1, day("2025-03-01", range(1, 31), 2))
    second = make_snapshot(root, 2, day("2025-03-02", range(20, 41), 5), first_offset=1000)
    third = make_snapshot(root, 3, day("2025-03-03", range(40, 51), 4), first_offset=2000)
    return root, [first, second, third]


def test_a_kill_before_the_delete_leaves_the_new_table_whole_and_a_rerun_cleans_up(
    lake_with_three, monkeypatch
):
    root, snaps = lake_with_three
    derive.write_derived(snaps[:1], root=root)
    first_target = os.readlink(root / lake.DERIVED / "watch_sessions")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed before the old table was deleted")

    monkeypatch.setattr(files, "remove_leftovers", killed)
    with pytest.raises(KeyboardInterrupt):
        derive.write_derived(snaps[:2], root=root)
    sessions = read(root, "watch_sessions")  # the new table, complete
    assert len(sessions) == 40 * 2 and set(sessions.user_id) == set(range(1, 41))
    assert len(list((root / lake.DERIVED).glob(".watch_sessions@*"))) == 2  # new + old
    monkeypatch.undo()

    derive.write_derived(snaps[:2], root=root)  # the killed table is whole: nothing to do
    assert read(root, "watch_sessions").equals(sessions)
    derive.write_derived(snaps, root=root)  # the next replacement removes what was left
    assert len(read(root, "watch_sessions")) == 50 * 2
    ratings = read(root, "latest_ratings").set_index("user_id").rating
    assert len(ratings) == 50 and (ratings.loc[5], ratings.loc[25], ratings.loc[40]) == (2, 5, 4)
    assert not (root / lake.DERIVED / first_target).exists()
    for name in derive.DERIVED_TABLES:
        kept = {p.name for p in (root / lake.DERIVED).glob(f".{name}@*")}
        assert len(kept) == 2 and os.readlink(root / lake.DERIVED / name) in kept


def test_a_kill_before_the_swap_leaves_the_old_table_readable(lake_with_three, monkeypatch):
    root, snaps = lake_with_three
    derive.write_derived(snaps[:1], root=root)
    before = read(root, "watch_sessions")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed before the swap")

    monkeypatch.setattr(files.os, "symlink", killed)
    with pytest.raises(KeyboardInterrupt):
        derive.write_derived(snaps, root=root)
    monkeypatch.undo()
    assert read(root, "watch_sessions").equals(before) and len(before) == 30 * 2
    derive.write_derived(snaps, root=root)
    assert len(read(root, "watch_sessions")) == 50 * 2


def test_a_plain_directory_from_before_links_is_replaced(lake_with_three):
    root, snaps = lake_with_three
    plain = root / lake.DERIVED / "watch_sessions"
    plain.mkdir(parents=True)
    (plain / "part-00000.parquet").write_bytes(b"old layout")
    derive.write_derived(snaps[:2], root=root)
    assert plain.is_symlink() and len(read(root, "watch_sessions")) == 80
    derive.write_derived(snaps, root=root)  # the plain one is kept for one replacement
    assert not (root / lake.DERIVED / ".watch_sessions@plain").exists()


def test_incremental_runs_equal_one_full_computation(lake_with_three, monkeypatch):
    root, snaps = lake_with_three
    monkeypatch.setattr(derive, "MAX_BUCKET_ROWS", 7)  # many buckets, and doubling on the way
    for n in (1, 2, 3):
        derive.write_derived(snaps[:n], root=root)
    state = derive.read_state(root / lake.DERIVED / "watch_sessions")
    assert state["buckets"] >= 8 and state["sources"] == [str(s) for s in snaps]
    want = derive.watch_sessions(snaps)
    got = read(root, "watch_sessions").sort_values(["user_id", "movie_id"], ignore_index=True)
    assert got.equals(want) and len(want) == 100
    # users 20..30 watched in two snapshots: minutes add up, times span both days
    both = want[(want.user_id == 25) & (want.movie_id == "film+1+1999")].iloc[0]
    assert both.minutes_watched == 6 and both.max_minute == 2
    assert (
        str(both.first_time.date()) == "2025-03-01" and str(both.last_time.date()) == "2025-03-02"
    )
    ratings = read(root, "latest_ratings").sort_values(["user_id", "movie_id"], ignore_index=True)
    assert ratings[["user_id", "movie_id", "rating", "event_time"]].equals(
        derive.latest_ratings(snaps)
    )


def test_only_new_snapshots_are_read(lake_with_three, monkeypatch):
    root, snaps = lake_with_three
    derive.write_derived(snaps[:2], root=root)
    read_from = []
    original = derive._read
    monkeypatch.setattr(derive, "_read", lambda s, *a: read_from.append(Path(s)) or original(s, *a))
    derive.write_derived(snaps, root=root)
    assert set(read_from) == {snaps[2]}
    read_from.clear()
    derive.write_derived(snaps, root=root)
    assert read_from == []
    derive.write_derived(snaps[1:], root=root)  # a snapshot left: rebuilt from what is wanted
    assert set(read_from) == set(snaps[1:])
    assert set(read(root, "watch_sessions").user_id) == set(range(20, 51))
