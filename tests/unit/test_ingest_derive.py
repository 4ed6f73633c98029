"""Derived tables (jobs/ingest/derive.py): swapped in whole, even when killed between steps."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from jobs import files
from jobs.ingest import derive, lake, parse


def make_snapshot(root: Path, seq: int, lines: list[str], first_offset: int = 0) -> Path:
    """A snapshot directory of parsed `lines` (one file per table, partition 0)."""
    path = lake.snapshot_path(lake.snapshot_id(seq), root)
    offsets = np.arange(first_offset, first_offset + len(lines))
    tables = parse.parse_batch(
        [line.encode() for line in lines], np.zeros(len(lines), np.int32), offsets, None
    )
    for table in ("watch", "rate"):
        (path / table).mkdir(parents=True)
        pq.write_table(tables[table], path / table / "part-00000.parquet")
    return path


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
def lake_with_two(tmp_path):
    root = tmp_path / "lake"
    first = make_snapshot(root, 1, day("2025-03-01", range(1, 31), 2))
    second = make_snapshot(root, 2, day("2025-03-02", range(20, 41), 5), first_offset=1000)
    return root, [first, second]


def test_a_kill_before_the_delete_leaves_the_new_table_whole_and_a_rerun_cleans_up(
    lake_with_two, monkeypatch
):
    root, snaps = lake_with_two
    derive.write_derived(snaps[:1], root=root)

    first_target = os.readlink(root / lake.DERIVED / "watch_sessions")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed before the old table was deleted")

    monkeypatch.setattr(files, "remove_leftovers", killed)
    with pytest.raises(KeyboardInterrupt):
        derive.write_derived(snaps, root=root)
    sessions = read(root, "watch_sessions")  # the new table, complete
    assert len(sessions) == 40 * 2 and set(sessions.user_id) == set(range(1, 41))
    assert len(list((root / lake.DERIVED).glob(".watch_sessions@*"))) == 2  # new + old
    monkeypatch.undo()

    derive.write_derived(snaps, root=root)
    assert read(root, "watch_sessions").equals(sessions)
    ratings = read(root, "latest_ratings")
    assert len(ratings) == 40 and ratings.set_index("user_id").rating.loc[25] == 5
    assert ratings.set_index("user_id").rating.loc[5] == 2
    # what the killed run left is gone; only the current table and the one before it remain
    assert not (root / lake.DERIVED / first_target).exists()
    for name in derive.DERIVED_TABLES:
        kept = {p.name for p in (root / lake.DERIVED).glob(f".{name}@*")}
        assert len(kept) == 2 and os.readlink(root / lake.DERIVED / name) in kept


def test_a_kill_before_the_swap_leaves_the_old_table_readable(lake_with_two, monkeypatch):
    root, snaps = lake_with_two
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
    assert len(read(root, "watch_sessions")) == 40 * 2


def test_a_plain_directory_from_before_links_is_replaced(lake_with_two):
    root, snaps = lake_with_two
    plain = root / lake.DERIVED / "watch_sessions"
    plain.mkdir(parents=True)
    (plain / "part-00000.parquet").write_bytes(b"old layout")
    derive.write_derived(snaps, root=root)
    assert plain.is_symlink() and len(read(root, "watch_sessions")) == 80
    derive.write_derived(snaps, root=root)  # the plain one is kept for one replacement
    assert not (root / lake.DERIVED / ".watch_sessions@plain").exists()
