"""The DAG and the CLI build the same dataset: `jobs.pipeline.build_dataset` (what the
train_and_publish DAG calls) and `python -m jobs.train.dataset` (its `main`) read the same
accepted snapshots and the same catalogue runtimes, and write the same id, manifest (but for
`built_at`) and Parquet rows. Real Spark and Postgres; the lake and the snapshots/movies tables
are private to the test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import psycopg2
import pytest

from jobs import pipeline
from jobs.ingest import lake
from jobs.train import dataset
from tests.conftest import private_schema
from tests.integration.test_dataset import START, planted_world, write_snapshot

pytestmark = pytest.mark.integration

RUNTIME = 120  # catalogue minutes; the planted world never watches past minute 89
PARTS = ("train", "test", "test_cold")


@pytest.fixture
def lake_dir(postgres, spark, tmp_path, monkeypatch):
    """Two accepted snapshots and one quarantined, registered in a private snapshots table, and
    a catalogue of runtimes for every movie; DATABASE_URL and RECS_VAR_DIR point at them."""
    watch, rate, _, _ = planted_world(users=60, per_user=10, seed=3)
    root = tmp_path / "snapshots"
    cut, late = START + pd.Timedelta(days=30), START + pd.Timedelta(days=50)
    snaps = {
        "s1": (watch[watch.event_time < cut], rate[rate.event_time < cut], "accepted"),
        "s2": (watch[watch.event_time >= cut], rate[rate.event_time >= cut], "accepted"),
        "s3": (watch[watch.event_time >= late], rate[rate.event_time >= late], "quarantined"),
    }
    shuffle = spark.conf.get("spark.sql.shuffle.partitions")
    with private_schema(postgres, ("020_snapshots.sql", "021_catalog.sql")) as url:
        for snapshot_id, (w, r, status) in snaps.items():
            times = pd.concat([w.event_time, r.event_time])
            manifest = {
                "snapshot_id": snapshot_id,
                "topic": "movielog",
                "offsets": {"0": [0, len(w) + len(r)]},
                "row_counts": {"watch": len(w), "rate": len(r)},
                "min_event_time": times.min().isoformat(),
                "max_event_time": times.max().isoformat(),
            }
            lake.register(manifest, write_snapshot(root, snapshot_id, w, r), database_url=url)
            lake.set_status(snapshot_id, status, database_url=url)
        movies = sorted(set(watch.movie_id) | set(rate.movie_id))
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO movies (movie_id, status, runtime) VALUES (%s, 'known', %s)",
                [(m, RUNTIME) for m in movies],
            )
        conn.close()
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("RECS_VAR_DIR", str(tmp_path / "var"))
        yield tmp_path
    # Both paths ask get_spark for a session, which re-tunes the shared one: restore it.
    spark.conf.set("spark.sql.shuffle.partitions", shuffle)


def rows(path: Path, part: str) -> pd.DataFrame:
    frame = pd.read_parquet(path / part)
    return frame.sort_values(["user_id", "movie_id"]).reset_index(drop=True)


def manifest_without_build_time(path: Path) -> dict:
    manifest = dataset.read_manifest(path)
    manifest.pop("built_at")
    return manifest


@pytest.mark.parametrize(
    ("window_days", "cli_args"), [(None, []), (30.0, ["--window-days", "30"])], ids=["all", "30d"]
)
def test_dag_and_cli_build_the_same_dataset(lake_dir, window_days, cli_args):
    built = Path(pipeline.build_dataset(window_days))
    # The CLI writes to the same default directory (and swaps it in): keep a copy of this one.
    dag = Path(shutil.copytree(built, lake_dir / "dag"))
    cli = dataset.main(cli_args)
    assert cli == built  # same id: same snapshots and parameters

    expected = manifest_without_build_time(dag)
    assert manifest_without_build_time(cli) == expected
    for part in PARTS:
        pd.testing.assert_frame_equal(rows(cli, part), rows(dag, part))

    # What the comparison covers: accepted snapshots only, and the catalogue's runtimes used.
    assert [s["snapshot_id"] for s in expected["snapshots"]] == ["s1", "s2"]
    assert expected["runtime_source"] == "catalogue runtime, else max minute seen + 1"
    watched = pd.concat([rows(dag, p) for p in PARTS]).query("minutes_watched > 0")
    assert len(watched) > 0
    fraction = (watched["minutes_watched"] / RUNTIME).clip(upper=1.0)
    assert watched["fraction_watched"].to_numpy() == pytest.approx(fraction.to_numpy())
