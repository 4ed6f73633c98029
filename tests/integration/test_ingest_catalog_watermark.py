"""Catalogue sync reads only accepted snapshots it has not synced (issue 13, "Memory stays
bounded"), on a private Postgres schema and lake; the metadata API is a counting stub."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from jobs.ingest import catalog, lake, summary
from tests.conftest import private_schema
from tests.unit.test_ingest_derive import day, make_snapshot

pytestmark = pytest.mark.integration


class CountingClient(catalog.MetadataClient):
    """Knows every id except those in `failing`; remembers what it was asked."""

    def __init__(self, failing: frozenset = frozenset()):
        super().__init__("http://stub.invalid")
        self.asked: list[tuple[str, str]] = []
        self.failing = failing

    def probe(self, kind, ident, timeout=catalog.PROBE_TIMEOUT):
        return None

    def get(self, kind, ident):
        self.asked.append((kind, str(ident)))
        if str(ident) in self.failing:
            return "failed", None
        return "known", {"age": 30} if kind == "user" else {"title": str(ident), "runtime": 90}


@pytest.fixture
def isolated(postgres, tmp_path, monkeypatch):
    with private_schema(postgres, ("020_snapshots.sql", "021_catalog.sql")) as url:
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("RECS_VAR_DIR", str(tmp_path / "var"))
        yield lake.lake_root()


def accept(root, seq: int, users: range, offset: int):
    path = make_snapshot(root, seq, day(f"2025-03-0{seq}", users, 3), first_offset=offset)
    lake.register(lake.read_manifest(path), path)
    lake.set_status(path.name, "accepted")
    return path


def test_each_run_reads_only_snapshots_it_has_not_synced(isolated, monkeypatch):
    root = isolated
    accept(root, 1, range(1, 31), 0)
    read = []
    original = summary.load
    monkeypatch.setattr(summary, "load", lambda p: read.append(p.name) or original(p))
    first = catalog.sync(client=(client := CountingClient()))
    assert read == ["s000001"] and first.status == "complete"
    assert (first.users_fetched, first.movies_fetched) == (30, 2) and len(client.asked) == 32
    dims = root / lake.DIMS
    assert pq.read_table(dims / "users.parquet").num_rows == 30
    assert pq.read_table(dims / "movies.parquet").column("runtime").to_pylist() == [90, 90]

    accept(root, 2, range(25, 41), 1000)
    read.clear()
    second = catalog.sync(client=(client := CountingClient()))
    assert read == ["s000002"]  # not s000001 again
    assert sorted(int(i) for _, i in client.asked) == list(range(31, 41))  # only the new users
    assert pq.read_table(dims / "users.parquet").num_rows == 40
    assert second.newest_snapshot == "s000002"

    read.clear()
    mtime = (dims / "users.parquet").stat().st_mtime_ns
    third = catalog.sync(client=(client := CountingClient()))
    assert read == [] and client.asked == [] and third.status == "complete"
    assert (dims / "users.parquet").stat().st_mtime_ns == mtime  # nothing new: not rewritten
    assert third.newest_snapshot == "s000002"  # the data time the catalogue covers


def test_a_snapshot_with_unfetched_ids_is_read_again_next_run(isolated):
    accept(isolated, 1, range(1, 11), 0)
    partial = catalog.sync(client=CountingClient(failing=frozenset({"7"})))
    assert (partial.status, partial.failed, partial.users_fetched) == ("partial", 1, 9)
    assert [s for s, _ in catalog.unsynced(None)] == ["s000001"]
    again = catalog.sync(client=(client := CountingClient()))
    assert client.asked == [("user", "7")] and again.status == "complete"
    assert catalog.unsynced(None) == []
    assert pq.read_table(isolated / lake.DIMS / "users.parquet").num_rows == 10
