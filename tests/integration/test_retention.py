"""Retention on real Postgres (a private schema) and a private lake (RECS_VAR_DIR under tmp_path).

One small world of six models, each kept or not for one reason the rule names: the live and
the rollback version, a version in an experiment that ended recently, one a retained
prediction names, the evaluated twin of the live refit, and one old retired model whose
table, artifact, scored lists and dataset nothing needs. Prediction batches are written by the
real ingest from log files, one old and one recent. Checked: the dry run removes nothing; the
run removes exactly the old model's things and the old batch, leaves its registry row marked
(provenance says "removed by retention"), and a rerun removes nothing; a publish holding the
pointer lock makes retention wait, and the version it publishes keeps its table, artifact and
dataset.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import pytest

from contracts import settings
from contracts.names import PREDICTION_LOG_SEALED, PREDICTION_LOG_STAMP
from jobs.files import replace_dir
from jobs.ingest import lake, readmit
from jobs.online import predictions, provenance
from jobs.publish import publish, retention, score
from jobs.train import registry
from tests.conftest import private_schema
from tests.integration.test_publish_races import (
    Background,
    as_app,
    attached,
    begin_publish,
    rows_of,
    status_of,
    waits_on_a_lock,
)
from tests.support.harness import seed_version, wait_for

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=60)
USERS = range(1, 4)
# model -> (reco version, dataset)
MODELS = {
    "m-live": ("r-live", "d-shared"),
    "m-prev": ("r-prev", "d-shared"),
    "m-exp": ("r-exp", "d-exp"),
    "m-pred": ("r-pred", "d-pred"),
    "m-twin": (None, "d-shared"),
    "m-old": ("r-old", "d-old"),
}


@pytest.fixture
def url(postgres):
    with private_schema(postgres) as private:
        yield private


# (seq, topic, status, judged at): only s000001 may go. s000002 is accepted, s000004 was
# judged recently, s000005 comes just before a snapshot not judged yet, s000007 is the newest
# of its topic.
SNAPSHOTS = [
    (1, "movielog", "quarantined", OLD),
    (2, "movielog", "accepted", OLD),
    (4, "movielog", "quarantined", NOW),
    (5, "movielog", "quarantined", OLD),
    (6, "movielog", "ingested", OLD),
    (7, "other", "quarantined", OLD),
]


@pytest.fixture
def lake_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("RECS_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("RETENTION_DAYS", "30")
    return settings.load().lake_dir


def dataset(lake_dir: Path, name: str, built: datetime) -> Path:
    """A dataset directory laid out as jobs.train.dataset writes it (a replace_dir link)."""
    tmp = lake_dir / "datasets" / f"_tmp-{name}"
    (tmp / "train").mkdir(parents=True)
    (tmp / "train" / "part-0.parquet").write_bytes(b"rows of " + name.encode())
    (tmp / "manifest.json").write_text(
        json.dumps({"dataset_id": name, "built_at": built.isoformat()})
    )
    return replace_dir(tmp, lake_dir / "datasets" / name)


def artifact(model_version: str) -> tuple[Path, str]:
    """An artifact directory as jobs.train.train saves it, and its hash; plus scored lists."""
    root = settings.load().models_dir
    tmp = root / f".tmp-{model_version}"
    tmp.mkdir(parents=True)
    (tmp / "arrays.npz").write_bytes(model_version.encode())
    final = replace_dir(tmp, root / model_version)
    scored = score.scored_dir(model_version)
    scored.mkdir(parents=True)
    (scored / "part-0.parquet").write_bytes(b"lists")
    return final, registry.artifact_sha256(final)


def register(url: str, lake_dir: Path, model_version: str, evaluated_as: str | None = None) -> None:
    path, sha = artifact(model_version)
    data = lake_dir / "datasets" / MODELS[model_version][1]
    manifest = {"dataset_id": data.name, "snapshots": []}
    registry.register(
        model_version, "item_knn", {}, {}, manifest, data, path, sha, 1.0,
        database_url=url, evaluated_as=evaluated_as,
    )  # fmt: skip


def prediction_batch(lake_dir: Path, log_dir: Path, when: datetime, reco_version: str) -> str:
    """One batch of the lake table `predictions`, written by the real ingest from a sealed log
    file whose answers were served at `when` by `reco_version`."""
    log_dir.mkdir(parents=True, exist_ok=True)
    name = PREDICTION_LOG_SEALED.format(
        pid=os.getpid(), stamp=when.strftime(PREDICTION_LOG_STAMP), seq=1
    )
    record = {
        "request_id": f"req-{reco_version}",
        "time": when.isoformat(),
        "user_id": 1,
        "model_version": "m-" + reco_version.removeprefix("r-"),
        "reco_version": reco_version,
        "variant": None,
        "source": "model",
        "items": "a,b",
        "latency_ms": 1.0,
    }
    (log_dir / name).write_text(json.dumps(record) + "\n")
    return predictions.ingest(log_dir, lake_dir).batch_id


def snapshot(url: str, lake_dir: Path, seq: int, topic: str, status: str, when: datetime) -> None:
    """A snapshot directory with its manifest and summary, registered, judged `status` at
    `when` (`ingested`: not judged yet)."""
    snapshot_id = lake.snapshot_id(seq)
    path = lake.snapshot_path(snapshot_id, lake_dir)
    (path / "watch").mkdir(parents=True)
    (path / "watch" / "part-00000.parquet").write_bytes(b"events")
    manifest = {"snapshot_id": snapshot_id, "topic": topic, "offsets": {}, "row_counts": {}}
    lake.write_manifest(path, manifest)
    summary = lake_dir / "summaries" / snapshot_id
    summary.mkdir(parents=True)
    (summary / "users.parquet").write_bytes(b"ids")
    lake.register(manifest, path, database_url=url)
    if status != "ingested":
        lake.set_status(snapshot_id, status, database_url=url)
    rows_of(
        url,
        "UPDATE snapshots SET created_at = %s, validated_at = %s WHERE snapshot_id = %s "
        "RETURNING 1",
        (when, when, snapshot_id),
    )


def set_times(url: str, model_version: str, status: str, when: datetime) -> None:
    rows_of(
        url,
        "UPDATE model_registry SET status = %s, updated_at = %s WHERE model_version = %s "
        "RETURNING 1",
        (status, when, model_version),
    )


def build_world(url: str, lake_dir: Path, tmp_path: Path) -> dict[str, str]:
    """The six models (module docstring), their lists, datasets and two prediction batches."""
    for name in ("d-shared", "d-exp", "d-pred", "d-old"):
        dataset(lake_dir, name, OLD)
    dataset(lake_dir, "d-building", NOW)  # a training run in progress: no registry row yet
    register(url, lake_dir, "m-twin")
    for model in ("m-prev", "m-live", "m-exp", "m-pred", "m-old"):
        register(url, lake_dir, model, evaluated_as="m-twin" if model == "m-live" else None)
    for model in ("m-exp", "m-pred", "m-old"):
        seed_version(url, MODELS[model][0], model, USERS, publish_it=False)
    seed_version(url, "r-prev", "m-prev", USERS)
    seed_version(url, "r-live", "m-live", USERS)  # r-prev becomes the rollback target
    for model, status in (("m-twin", "candidate"), ("m-prev", "retired"), ("m-exp", "retired")):
        set_times(url, model, status, OLD)
    for model in ("m-pred", "m-old"):
        set_times(url, model, "retired", OLD)
    rows_of(url, "UPDATE reco_versions SET created_at = %s RETURNING 1", (OLD,))
    # Loaded recently, by a model the registry does not know (staged, or a hand-made list).
    seed_version(url, "r-fresh", "m-unregistered", USERS, publish_it=False)
    rows_of(
        url,
        "INSERT INTO experiments (experiment_id, salt, active, started_at, ended_at) "
        "VALUES ('exp-recent', 's', false, %s, %s) RETURNING 1",
        (NOW - timedelta(days=10), NOW - timedelta(days=5)),
    )
    rows_of(
        url,
        "INSERT INTO experiment_variants (experiment_id, variant, reco_version, share) "
        "VALUES ('exp-recent', 'a', 'r-live', 0.5), ('exp-recent', 'b', 'r-exp', 0.5) "
        "RETURNING 1",
    )
    for seq, topic, status, when in SNAPSHOTS:
        snapshot(url, lake_dir, seq, topic, status, when)
    return {
        "old_batch": prediction_batch(lake_dir, tmp_path / "log", OLD, "r-old"),
        "new_batch": prediction_batch(
            lake_dir, tmp_path / "log", NOW - timedelta(days=1), "r-pred"
        ),
    }


def on_disk(model_version: str) -> bool:
    return (settings.load().models_dir / model_version).exists() and score.scored_dir(
        model_version
    ).exists()


def removed_mark(url: str, model_version: str):
    return rows_of(
        url,
        "SELECT artifact_removed_at FROM model_registry WHERE model_version = %s",
        (model_version,),
    )[0][0]


def kept_everything_needed(url: str, lake_dir: Path, batches: dict[str, str]) -> None:
    for reco in ("r-live", "r-prev", "r-exp", "r-pred", "r-fresh"):
        assert attached(url, reco), reco
        assert publish.served_rows(reco, url) == len(USERS), reco
    for model in ("m-live", "m-prev", "m-exp", "m-pred", "m-twin"):
        assert on_disk(model) and removed_mark(url, model) is None, model
    for name in ("d-shared", "d-exp", "d-pred", "d-building"):
        assert (lake_dir / "datasets" / name / "manifest.json").exists(), name
    assert (predictions.predictions_dir(lake_dir) / batches["new_batch"]).exists()
    for seq, *_ in SNAPSHOTS[1:]:
        snapshot_id = lake.snapshot_id(seq)
        assert (lake.snapshot_path(snapshot_id, lake_dir) / lake.MANIFEST).exists(), snapshot_id
        assert (lake_dir / "summaries" / snapshot_id).exists(), snapshot_id
        assert lake.snapshot_row(snapshot_id, url)["removed_at"] is None, snapshot_id


def test_retention_removes_only_what_nothing_needs_and_a_rerun_is_a_no_op(url, lake_dir, tmp_path):
    batches = build_world(url, lake_dir, tmp_path)
    plan = retention.run(dry_run=True, url=url, root=lake_dir)
    assert plan["removed"] is None
    removals = [line for line in plan["plan"] if line.startswith("remove")]
    assert len(removals) == 5, removals
    expected = ("r-old", "m-old", "d-old", batches["old_batch"], "s000001")
    for line, item in zip(removals, expected, strict=True):
        assert item in line
    assert on_disk("m-old") and attached(url, "r-old")  # a dry run removes nothing

    removed = retention.run(url=url, root=lake_dir)["removed"]
    assert removed == {
        "reco_versions": ["r-old"],
        "artifacts": ["m-old"],
        "datasets": ["d-old"],
        "prediction_batches": [batches["old_batch"]],
        "snapshots": ["s000001"],
    }
    kept_everything_needed(url, lake_dir, batches)
    assert status_of(url, "r-old") == "retired" and not attached(url, "r-old")
    assert rows_of(url, "SELECT to_regclass(%s)", (publish.table_name("r-old"),)) == [(None,)]
    assert not (settings.load().models_dir / "m-old").exists()
    assert not score.scored_dir("m-old").exists()
    assert not (lake_dir / "datasets" / "d-old").exists()
    hidden = [
        p.name for d in (lake_dir / "datasets", settings.load().models_dir) for p in d.glob(".*")
    ]
    assert not [h for h in hidden if "old" in h]  # no half-removed sibling left behind
    assert [m["batch_id"] for m in predictions.completed_batches(lake_dir)] == [
        batches["new_batch"]
    ]
    # The snapshot's row stays, marked; its files are gone and it can no longer be re-admitted.
    assert not lake.snapshot_path("s000001", lake_dir).exists()
    assert not (lake_dir / "summaries" / "s000001").exists()
    assert lake.snapshot_row("s000001", url)["removed_at"] is not None
    with pytest.raises(readmit.NotQuarantined, match="removed by retention"):
        readmit.readmit("s000001", "looked fine after all", "test", url)

    # The registry keeps its history; provenance says what happened to the files.
    row = rows_of(
        url, "SELECT row_to_json(m)::jsonb FROM model_registry AS m WHERE model_version = 'm-old'"
    )[0][0]
    assert row["status"] == "retired" and row["artifact_removed_at"]
    assert provenance.check_artifact(row)["state"] == provenance.REMOVED

    again = retention.run(url=url, root=lake_dir)
    assert again["removed"] == {
        "reco_versions": [], "artifacts": [], "datasets": [], "prediction_batches": [],
        "snapshots": [],
    }  # fmt: skip
    assert not [line for line in again["plan"] if line.startswith("remove")]
    kept_everything_needed(url, lake_dir, batches)


def test_a_publish_holding_the_pointer_keeps_the_version_it_publishes(url, lake_dir, tmp_path):
    batches = build_world(url, lake_dir, tmp_path)
    holder = psycopg2.connect(url)
    try:
        begin_publish(holder, "r-old")  # the old model's version, served again mid-run
        run = Background(retention.run, url=as_app(url, "retention-race"), root=lake_dir)
        wait_for(lambda: waits_on_a_lock(url, "retention-race"), 20, "retention waiting")
        # While it waits, nothing of the version is half gone.
        assert attached(url, "r-old") and on_disk("m-old")
        assert (lake_dir / "datasets" / "d-old").exists()
        holder.commit()
    finally:
        holder.close()
    removed = run.result()["removed"]
    assert removed["reco_versions"] == removed["artifacts"] == removed["datasets"] == []
    assert removed["prediction_batches"] == [batches["old_batch"]]
    assert removed["snapshots"] == ["s000001"]
    assert rows_of(url, "SELECT reco_version, previous_reco_version FROM serving_pointer") == [
        ("r-old", "r-live")
    ]
    assert status_of(url, "r-old") == "published" and attached(url, "r-old")
    assert publish.served_rows("r-old", url) == len(USERS)
    assert on_disk("m-old") and removed_mark(url, "m-old") is None
    assert (lake_dir / "datasets" / "d-old" / "manifest.json").exists()
    # r-prev is no longer the rollback target, but its model changed status too long ago only
    # on paper: the experiment-free, prediction-free r-prev goes on the next run.
    nxt = retention.run(url=url, root=lake_dir)["removed"]
    assert nxt["reco_versions"] == ["r-prev"] and "m-old" not in nxt["artifacts"]


def test_a_readmission_in_flight_keeps_its_snapshot(url, lake_dir, tmp_path):
    from contracts import db

    build_world(url, lake_dir, tmp_path)
    holder = psycopg2.connect(url)
    try:
        with holder.cursor() as cur:  # readmit's own statement, not committed yet
            params = {"snapshot_id": "s000001", "by": "test", "reason": "inspected"}
            cur.execute(db.read_sql("ingest/readmit.sql"), params)
        run = Background(retention.run, url=as_app(url, "retention-readmit"), root=lake_dir)
        wait_for(lambda: waits_on_a_lock(url, "retention-readmit"), 20, "retention waiting")
        assert (lake.snapshot_path("s000001", lake_dir) / lake.MANIFEST).exists()
        holder.commit()
    finally:
        holder.close()
    assert run.result()["removed"]["snapshots"] == []
    row = lake.snapshot_row("s000001", url)
    assert (row["status"], row["removed_at"]) == ("accepted", None)
    assert (lake.snapshot_path("s000001", lake_dir) / lake.MANIFEST).exists()


def test_a_run_killed_midway_left_nothing_torn_and_the_next_run_finishes_it(
    url, lake_dir, tmp_path
):
    batches = build_world(url, lake_dir, tmp_path)
    models_dir = settings.load().models_dir
    # What a run killed after each item's first step leaves: rows marked, names gone, bytes not.
    rows_of(
        url, "UPDATE reco_versions SET status = 'retired' WHERE reco_version = 'r-old' RETURNING 1"
    )
    rows_of(
        url,
        "UPDATE model_registry SET artifact_removed_at = now() "
        "WHERE model_version = 'm-old' RETURNING 1",
    )
    rows_of(
        url, "UPDATE snapshots SET removed_at = now() WHERE snapshot_id = 's000001' RETURNING 1"
    )
    (models_dir / "m-old").unlink()
    (lake_dir / "datasets" / "d-old").unlink()
    for hidden in (lake_dir / "datasets").glob(".d-old@*"):
        os.utime(hidden, (OLD.timestamp(), OLD.timestamp()), follow_symlinks=False)
    old_batch = predictions.predictions_dir(lake_dir) / batches["old_batch"]
    os.rename(old_batch, old_batch.with_name(f".{old_batch.name}@removed-1"))
    # Readers see each item whole or gone, never half: no listed batch without its files, and
    # the artifact's row says why its files are missing.
    assert [m["batch_id"] for m in predictions.completed_batches(lake_dir)] == [
        batches["new_batch"]
    ]
    row = rows_of(
        url, "SELECT row_to_json(m)::jsonb FROM model_registry AS m WHERE model_version = 'm-old'"
    )[0][0]
    assert provenance.check_artifact(row)["state"] == provenance.REMOVED

    removed = retention.run(url=url, root=lake_dir)["removed"]
    assert removed == {
        "reco_versions": ["r-old"],
        "artifacts": ["m-old"],
        "datasets": ["d-old"],
        "prediction_batches": [],
        "snapshots": ["s000001"],
    }
    assert rows_of(url, "SELECT to_regclass(%s)", (publish.table_name("r-old"),)) == [(None,)]
    assert not score.scored_dir("m-old").exists()
    assert not lake.snapshot_path("s000001", lake_dir).exists()
    leftovers = [
        p
        for d in (models_dir, lake_dir / "datasets", predictions.predictions_dir(lake_dir))
        for p in d.glob(".*@*")
        if "old" in p.name or batches["old_batch"] in p.name
    ]
    assert leftovers == []
    kept_everything_needed(url, lake_dir, batches)
