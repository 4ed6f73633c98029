"""Retention: remove what no model, experiment, shadow, rollback or recent answer still needs.

The rule (docs/operations.md "Retention"), with `cutoff` = the run's time - RETENTION_DAYS:

Kept (the keep-set), computed from Postgres and the lake at the start of a run:
- reco versions: live and previous (rollback) in `serving_pointer`; in an experiment that is
  active or ended after the cutoff; in a shadow deployment active or ended after the cutoff;
  named by a prediction in a retained batch; loaded after the cutoff; or the attached list of
  a kept model;
- models (registry rows): production; any whose status changed after the cutoff; the model
  of a kept reco version; one a retained prediction names; the baseline of a popularity list
  that is live, previous, named by a retained prediction or made after the cutoff; and the
  evaluated twin (`evaluated_as`) of each of these;
- datasets: the dataset of a kept model or kept popularity list, and any built after the
  cutoff (a training run in progress has no registry row yet);
- prediction batches: those with an answer after the cutoff, and always the newest (batch ids
  continue from it).

Removed, each item on its own and safe to rerun:
- the table of a reco version outside the keep-set (publish's own retire path: status
  'retired' under the pointer, experiment, shadow and loader locks, then detach and drop);
- the artifact directory and scored lists of a registry row outside the keep-set: the row is
  marked `artifact_removed_at` (never deleted) under the same locks, then the files go;
- dataset directories under lake/datasets/ outside the keep-set;
- prediction batches whose newest answer is before the cutoff (under the ingest's lock);
- quarantined snapshots ingested and judged before the cutoff that no kept dataset was built
  from, when every later snapshot of their topic is judged (validation compares a new
  snapshot's offsets with the one before it): the row is marked `removed_at` (a re-admission
  is refused from then on), then the directory and its summary go, under the ingest's lock.

Never removed: accepted snapshots (the source of truth: the next training reads every
accepted one) and snapshots not judged yet, the newest snapshot of each topic (ingest
continues from it); registry, reco-version, snapshot, experiment and popularity-list rows;
reports, logs, and artifacts no registry row names.

Removing a directory is one rename or unlink (jobs.files.remove_dir): a reader finds it
whole or not at all, and a kill leaves only hidden `.<name>@…` siblings the next run deletes.
Every decision that could race with publish is re-read under publish's locks just before it
is acted on, so a publish, rollback or experiment start that commits first keeps its version.

    python -m jobs.publish.retention [--dry-run] [--days N] [--at ISO-TIME]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from contracts import settings
from contracts.db import connect
from contracts.names import MODEL_VERSION_COL, RECO_VERSION_COL, SHADOW_VERSION_COL
from jobs.files import remove_dir
from jobs.ingest import lake
from jobs.online import predictions
from jobs.publish import publish, score
from jobs.publish.publish import query

log = logging.getLogger(__name__)

DATASETS = "datasets"  # lake/datasets/<dataset_id>, jobs.train.dataset.default_out
_BATCH_LEFTOVER = ".p*@removed-*"


@dataclass
class KeepSet:
    """What a run keeps, each item with the reasons it is kept (shown by --dry-run)."""

    reco_versions: dict[str, list[str]] = field(default_factory=dict)
    models: dict[str, list[str]] = field(default_factory=dict)
    popular: dict[str, list[str]] = field(default_factory=dict)
    datasets: dict[str, list[str]] = field(default_factory=dict)
    batches: dict[str, list[str]] = field(default_factory=dict)
    snapshots: dict[str, list[str]] = field(default_factory=dict)

    @staticmethod
    def add(kind: dict[str, list[str]], items: Iterable[str | None], why: str) -> None:
        for item in items:
            if item and why not in kind.get(item, ()):
                kind.setdefault(item, []).append(why)


@dataclass
class Plan:
    """What a run would remove, and the keep-set it was computed from."""

    at: datetime
    days: float
    cutoff: datetime
    keep: KeepSet
    reco_tables: list[tuple[str, str, str]]  # (reco_version, table, status)
    artifacts: list[tuple[str, list[Path]]]  # (model_version, paths that still exist)
    datasets: list[Path]
    batches: list[Path]
    snapshots: list[str]

    def lines(self, why: bool = False) -> list[str]:
        """The plan for a person: what goes, then what stays (with `why`: each kept version,
        model and dataset with its reasons)."""
        out = [f"retention at {self.at.isoformat()}: cutoff {self.cutoff.isoformat()}"]
        out += [
            f"remove reco table  {v} ({status}, {table})" for v, table, status in self.reco_tables
        ]
        out += [
            f"remove artifact    {m}: " + ", ".join(map(str, paths)) for m, paths in self.artifacts
        ]
        out += [f"remove dataset     {p}" for p in self.datasets]
        out += [f"remove predictions {p}" for p in self.batches]
        out += [f"remove snapshot    {s} (quarantined)" for s in self.snapshots]
        k = self.keep
        if why:
            for kind, items in (
                ("reco", k.reco_versions),
                ("model", k.models),
                ("dataset", k.datasets),
            ):
                out += [
                    f"keep {kind:<8} {item}: {'; '.join(r)}" for item, r in sorted(items.items())
                ]
        out.append(
            f"keep {len(k.reco_versions)} reco versions, {len(k.models)} models, "
            f"{len(k.datasets)} datasets, {len(k.batches)} prediction batches, "
            f"{len(k.snapshots)} snapshots"
        )
        return out


@dataclass
class Removed:
    """What a real run removed (each list may be shorter than the plan's: a concurrent publish,
    experiment or load that committed first keeps its item)."""

    reco_versions: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    batches: list[str] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "reco_versions": self.reco_versions,
            "artifacts": self.artifacts,
            "datasets": self.datasets,
            "prediction_batches": self.batches,
            "snapshots": self.snapshots,
        }


# ------------------------------------------------------------------ what Postgres keeps
def _rows(cur, statement, **params: Any) -> list[dict[str, Any]]:
    """Rows of one statement of sql/publish/retention.sql as dicts."""
    cur.execute(statement, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def read_database(cutoff: datetime, url: str | None = None) -> dict[str, Any]:
    """The rows the keep-set is computed from, read in one snapshot (repeatable read)."""
    conn = connect(url)
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cur:
            state = {
                "pointer": (_rows(cur, query("retention", "pointer")) or [{}])[0],
                "experiments": [
                    r["reco_version"]
                    for r in _rows(cur, query("retention", "experiment_versions"), cutoff=cutoff)
                ],
                "shadows": [],
                "models": _rows(cur, query("retention", "models"), cutoff=cutoff),
                "reco": _rows(cur, query("retention", "reco_versions"), cutoff=cutoff),
                "popular": _rows(cur, query("retention", "popular_lists"), cutoff=cutoff),
                "snapshots": _rows(cur, query("retention", "snapshots"), cutoff=cutoff),
                "trained": _rows(cur, query("retention", "trained_snapshots")),
            }
            cur.execute(query("retention", "has_shadows"))
            if cur.fetchone()[0]:
                state["shadows"] = [
                    r["reco_version"]
                    for r in _rows(cur, query("retention", "shadow_versions"), cutoff=cutoff)
                ]
        conn.rollback()
    finally:
        conn.close()
    return state


# ------------------------------------------------------------------ what the lake keeps
def _newest_answer(manifest: dict[str, Any]) -> datetime:
    raw = manifest.get("max_event_time") or manifest.get("created_at")
    when = datetime.fromisoformat(raw)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def split_batches(cutoff: datetime, root: Path | None = None) -> tuple[list[Path], list[Path]]:
    """(retained, expired) complete prediction batches: expired = newest answer before the
    cutoff; the newest batch is always retained (the next batch id continues from it)."""
    base = predictions.predictions_dir(root)
    manifests = predictions.completed_batches(root)
    retained, expired = [], []
    for i, manifest in enumerate(manifests):
        newest = i == len(manifests) - 1
        keep = newest or _newest_answer(manifest) >= cutoff
        (retained if keep else expired).append(base / manifest["batch_id"])
    return retained, expired


def versions_named(batches: Sequence[Path]) -> tuple[set[str], set[str]]:
    """(model versions, reco versions) that the answers of these batches name."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    found: dict[str, set[str]] = {MODEL_VERSION_COL: set(), RECO_VERSION_COL: set()}
    for batch in batches:
        for path in sorted((batch / predictions.TABLE).rglob("*.parquet")):
            # File by file: parts written before the log recorded a shadow lack its column,
            # and one dataset over all files would take the first file's schema.
            present = set(pq.read_schema(path).names)
            for column in (MODEL_VERSION_COL, RECO_VERSION_COL, SHADOW_VERSION_COL):
                if column in present:
                    values = pc.unique(pq.read_table(path, columns=[column])[column]).to_pylist()
                    key = MODEL_VERSION_COL if column == MODEL_VERSION_COL else RECO_VERSION_COL
                    found[key] |= {v for v in values if v}
    return found[MODEL_VERSION_COL], found[RECO_VERSION_COL]


def dataset_dirs(root: Path | None = None) -> list[Path]:
    """Every dataset under lake/datasets/ (links or plain directories; not hidden siblings)."""
    base = lake.lake_root(root) / DATASETS
    if not base.exists():
        return []
    return sorted(p for p in base.iterdir() if not p.name.startswith("."))


def orphaned_datasets(cutoff: datetime, root: Path | None = None) -> list[Path]:
    """Datasets whose name is gone but whose hidden `.<id>@…` directory a killed removal left,
    older than the cutoff (a young one may be a build between its rename and its link)."""
    base = lake.lake_root(root) / DATASETS
    found = set()
    for hidden in base.glob(".*@*") if base.exists() else []:
        final = base / hidden.name[1:].split("@", 1)[0]
        old = datetime.fromtimestamp(os.lstat(hidden).st_mtime, UTC) < cutoff
        if old and not (final.is_symlink() or final.exists()):
            found.add(final)
    return sorted(found)


def built_at(dataset: Path) -> datetime:
    """When a dataset was built: its manifest's `built_at`, else the directory's mtime."""
    try:
        raw = json.loads((dataset / "manifest.json").read_text())["built_at"]
        when = datetime.fromisoformat(raw)
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    except (OSError, KeyError, ValueError):
        return datetime.fromtimestamp(os.lstat(dataset).st_mtime, UTC)


# ------------------------------------------------------------------ the keep-set
def keep_set(
    db: dict[str, Any],
    named_models: set[str],
    named_recos: set[str],
    retained_batches: Sequence[Path],
) -> KeepSet:
    """Everything the rule keeps (module docstring), each with why."""
    keep = KeepSet()
    pointer = db["pointer"]
    keep.add(keep.batches, (b.name for b in retained_batches), "answers inside retention")
    keep.add(keep.reco_versions, [pointer.get("reco_version")], "live")
    keep.add(keep.reco_versions, [pointer.get("previous_reco_version")], "rollback target")
    keep.add(keep.reco_versions, db["experiments"], "experiment active or recent")
    keep.add(keep.reco_versions, db["shadows"], "shadow active or recent")
    keep.add(keep.reco_versions, named_recos, "named by a retained prediction")
    keep.add(
        keep.reco_versions,
        (r["reco_version"] for r in db["reco"] if r["recent"]),
        "loaded recently",
    )

    popular = {r["popular_version"]: r for r in db["popular"]}
    keep.add(keep.popular, [pointer.get("popular_version")], "live popularity list")
    keep.add(keep.popular, [pointer.get("previous_popular_version")], "rollback target")
    keep.add(keep.popular, (v for v in named_models if v in popular), "named by a prediction")
    keep.add(keep.popular, (v for v, r in popular.items() if r["recent"]), "made recently")

    models = {r["model_version"]: r for r in db["models"]}
    reco_model = {r["reco_version"]: r["model_version"] for r in db["reco"]}
    keep.add(keep.models, (m for m, r in models.items() if r["live"]), "in the registry")
    keep.add(keep.models, (reco_model.get(v) for v in keep.reco_versions), "serves a kept list")
    keep.add(keep.models, (m for m in named_models if m in models), "named by a prediction")
    keep.add(
        keep.models,
        (popular.get(v, {}).get("baseline_version") for v in keep.popular),
        "popularity baseline",
    )
    for model in list(keep.models):  # one level: an evaluated twin is never itself a refit
        keep.add(
            keep.models, [models.get(model, {}).get("evaluated_as")], f"evaluated twin of {model}"
        )
    keep.add(
        keep.reco_versions,
        (r["reco_version"] for r in db["reco"]
         if r["model_version"] in keep.models and r["status"] in publish.ATTACHED),
        "list of a kept model",
    )  # fmt: skip

    for model in (m for m in keep.models if m in models):
        keep.add(keep.datasets, [_name(models[model]["dataset_path"])], f"data of {model}")
    for version in keep.popular:
        keep.add(
            keep.datasets,
            [_name(popular.get(version, {}).get("dataset_path"))],
            f"data of {version}",
        )
    return keep


def _name(path: str | None) -> str | None:
    return Path(path).name if path else None


# ------------------------------------------------------------------ snapshots
def keep_snapshots(keep: KeepSet, db: dict[str, Any], root: Path | None = None) -> None:
    """Add the snapshots the rule keeps: those a kept model or kept dataset was built from,
    every one that is not an expired quarantined one, and the newest of each topic."""
    keep.add(
        keep.snapshots,
        (r["snapshot_id"] for r in db["trained"] if r["model_version"] in keep.models),
        "a kept model was trained on it",
    )
    base = lake.lake_root(root) / DATASETS
    for name in keep.datasets:
        try:
            manifest = json.loads((base / name / "manifest.json").read_text())
        except (OSError, ValueError):
            continue
        keep.add(
            keep.snapshots,
            (s.get("snapshot_id") for s in manifest.get("snapshots") or []),
            "in a kept dataset",
        )
    keep.add(
        keep.snapshots,
        (r["snapshot_id"] for r in db["snapshots"] if not r["expired"]),
        "source of truth",
    )
    newest: dict[str, str] = {}
    for manifest in lake.completed_snapshots(root):
        newest[manifest.get("topic")] = manifest["snapshot_id"]  # oldest first: the last wins
    keep.add(keep.snapshots, newest.values(), "newest of its topic")
    for row in db["snapshots"]:  # the one before a snapshot still waiting for its verdict
        if row["status"] == "ingested":
            keep.add(
                keep.snapshots, [_previous(row, db["snapshots"])], "validation compares with it"
            )


def _previous(row: dict[str, Any], rows: Sequence[dict[str, Any]]) -> str | None:
    """The registered snapshot of the same topic just before `row`."""
    seq = lake.snapshot_seq(row["snapshot_id"])
    earlier = [
        r["snapshot_id"]
        for r in rows
        if r["topic"] == row["topic"] and lake.snapshot_seq(r["snapshot_id"]) < seq
    ]
    return max(earlier, key=lake.snapshot_seq, default=None)


def expired_snapshots(keep: KeepSet, db: dict[str, Any], root: Path | None = None) -> list[str]:
    """Expired quarantined snapshots outside the keep-set whose directory is still there."""
    return sorted(
        r["snapshot_id"]
        for r in db["snapshots"]
        if r["expired"]
        and r["snapshot_id"] not in keep.snapshots
        and _snapshot_files(r["snapshot_id"], root)
    )


def _snapshot_files(snapshot_id: str, root: Path | None) -> list[Path]:
    """The snapshot's directory and summary, where they (or a killed removal's leftovers) are."""
    from jobs.ingest import summary

    snap = lake.snapshot_path(snapshot_id, root)
    paths = [snap, summary.summary_dir(snap)]
    return [p for p in paths if p.is_symlink() or p.exists() or _leftovers(p)]


# ------------------------------------------------------------------ the plan
def make_plan(
    at: datetime | None = None,
    days: float | None = None,
    url: str | None = None,
    root: Path | None = None,
) -> Plan:
    """What a run at `at` (default now) would keep and remove; reads only."""
    at = (at or datetime.now(UTC)).astimezone(UTC)
    days = settings.retention_days() if days is None else days
    if days <= 0:
        raise ValueError(f"a retention period of {days} days would keep nothing")
    cutoff = at - timedelta(days=days)
    db = read_database(cutoff, url)
    retained, expired = split_batches(cutoff, root)
    named_models, named_recos = versions_named(retained)
    keep = keep_set(db, named_models, named_recos, retained)
    datasets = []
    for path in dataset_dirs(root):
        if path.name in keep.datasets:
            continue
        if built_at(path) >= cutoff:
            keep.add(keep.datasets, [path.name], "built recently")
        else:
            datasets.append(path)
    datasets += orphaned_datasets(cutoff, root)
    keep_snapshots(keep, db, root)
    return Plan(
        at=at,
        days=days,
        cutoff=cutoff,
        keep=keep,
        reco_tables=_reco_tables(keep, url),
        artifacts=[
            (r["model_version"], _artifact_paths(r))
            for r in db["models"]
            if r["model_version"] not in keep.models and _artifact_paths(r)
        ],
        datasets=datasets,
        batches=expired,
        snapshots=expired_snapshots(keep, db, root),
    )


def _reco_tables(keep: KeepSet, url: str | None) -> list[tuple[str, str, str]]:
    """publish.retire_old's candidates (attached, failed, retired with a table left) not kept."""
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(query("versions", "retire_candidates"))
            rows = cur.fetchall()
        conn.rollback()
    finally:
        conn.close()
    return [(v, table, status) for v, table, status in rows if v not in keep.reco_versions]


def _artifact_paths(model: dict[str, Any]) -> list[Path]:
    """The model's files still on disk: artifact, scored lists and their scoring bundle."""
    scored = score.scored_dir(model["model_version"])
    paths = [Path(model["artifact_path"]), scored, scored.with_name(scored.name + score.BUNDLE_DIR)]
    return [p for p in paths if p.is_symlink() or p.exists() or _leftovers(p)]


def _leftovers(path: Path) -> bool:
    return path.parent.exists() and any(path.parent.glob(f".{path.name}@*"))


# ------------------------------------------------------------------ removal
def apply(plan: Plan, url: str | None = None, root: Path | None = None) -> Removed:
    """Remove what the plan lists, each item under publish's locks where it could race."""
    removed = Removed()
    for version, table, status in plan.reco_tables:
        if _retire_table(version, table, status, url):
            removed.reco_versions.append(version)
    for model_version, paths in plan.artifacts:
        if _remove_artifact(model_version, paths, plan.cutoff, url):
            removed.artifacts.append(model_version)
    # Read again after the locked steps: a publish or experiment that won a race above keeps
    # its model, and with it the model's dataset.
    again = make_plan(plan.at, plan.days, url, root)
    for path in (p for p in plan.datasets if p in again.datasets):
        if remove_dir(path):
            removed.datasets.append(path.name)
    removed.batches = _remove_batches(plan, root)
    removed.snapshots = _remove_snapshots(plan.snapshots, url, root)
    return removed


def _retire_table(version: str, table: str, status: str, url: str | None) -> bool:
    """publish's retire of one version (it re-reads what is protected under its locks)."""
    conn = connect(url)
    try:
        if status == "retired" or publish._retire_one(conn, version, table, status):
            publish._drop_version_table(conn, table)
            return True
        return False
    finally:
        conn.close()


def _remove_artifact(
    model_version: str, paths: list[Path], cutoff: datetime, url: str | None
) -> bool:
    """Mark the registry row (committed), then delete its files; False when it is needed now.

    The mark is made under the pointer, experiment and shadow locks publish and retire take,
    after re-reading that the model is not production, unchanged since before the cutoff, and
    serves no protected version: a publish or rollback that commits first keeps it. Marking
    before deleting means a reader never sees an unmarked row without its files.
    """
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            publish._lock_pointer(cur)
            cur.execute(query("experiments", "lock_for_retire"))
            shadows = _lock_shadows(cur)
            cur.execute(query("retention", "lock_registry"))  # as registry.promote_in does
            cur.execute(
                query("retention", "lock_model"), {"model_version": model_version, "cutoff": cutoff}
            )
            still_old = cur.fetchone() is not None
            served = _rows(cur, query("retention", "served_by_model"), model_version=model_version)
            model_of = {
                r["reco_version"]: r["model_version"]
                for r in _rows(cur, query("retention", "reco_versions"), cutoff=cutoff)
            }
            if not still_old or served or any(model_of.get(v) == model_version for v in shadows):
                conn.rollback()
                return False
            cur.execute(
                query("retention", "mark_artifact_removed"), {"model_version": model_version}
            )
        conn.commit()
    finally:
        conn.close()
    for path in paths:
        remove_dir(path)
    return True


def _lock_shadows(cur) -> list[str]:
    """Lock the shadow deployments as retire does (when the table exists); the active ones."""
    cur.execute(query("retention", "has_shadows"))
    if not cur.fetchone()[0]:
        return []
    cur.execute(query("retention", "lock_shadows"))
    return [r["reco_version"] for r in _rows(cur, query("retention", "protected_shadows"))]


def _remove_batches(plan: Plan, root: Path | None) -> list[str]:
    """Remove expired prediction batches under the ingest's lock: each is renamed out of the
    batch-id pattern (readers and the id sequence no longer see it), then deleted."""
    base = predictions.predictions_dir(root)
    if not base.exists():
        return []
    removed = []
    with predictions._lock(base):
        expired = {p.name for p in split_batches(plan.cutoff, root)[1]}  # re-read under the lock
        for path in plan.batches:
            if path.name in expired and path.exists():
                os.rename(path, base / f".{path.name}@removed-{os.getpid()}")
                removed.append(path.name)
        lake.fsync_dir(base)
        for leftover in base.glob(_BATCH_LEFTOVER):
            shutil.rmtree(leftover)
    return removed


def _remove_snapshots(snapshot_ids: Sequence[str], url: str | None, root: Path | None) -> list[str]:
    """Mark each snapshot's row (committed, under its row lock: a re-admission in flight
    commits first and keeps it), then remove its directory and summary; under the ingest's
    lock, so no ingest reads the lake's snapshot listing meanwhile. A snapshot an earlier,
    killed run marked only loses the files it still has."""
    if not snapshot_ids:
        return []
    removed = []
    with lake.ingest_lock(root):
        conn = connect(url)
        try:
            for snapshot_id in snapshot_ids:
                with conn.cursor() as cur:
                    cur.execute(query("retention", "lock_snapshot"), {"snapshot_id": snapshot_id})
                    if cur.fetchone() is None:  # re-admitted meanwhile: kept
                        conn.rollback()
                        continue
                    cur.execute(
                        query("retention", "mark_snapshot_removed"), {"snapshot_id": snapshot_id}
                    )
                conn.commit()
                for path in _snapshot_files(snapshot_id, root):
                    remove_dir(path)
                removed.append(snapshot_id)
        finally:
            conn.close()
    return removed


def run(
    at: datetime | None = None,
    days: float | None = None,
    dry_run: bool = False,
    url: str | None = None,
    root: Path | None = None,
) -> dict[str, Any]:
    """Plan, then (unless `dry_run`) remove; a summary of the plan and of what was removed."""
    plan = make_plan(at, days, url, root)
    for line in plan.lines(why=dry_run):
        log.info("%s", line)
    removed = None if dry_run else apply(plan, url, root)
    return {
        "at": plan.at.isoformat(),
        "cutoff": plan.cutoff.isoformat(),
        "dry_run": dry_run,
        "plan": plan.lines(why=dry_run),
        "removed": removed.as_dict() if removed else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """`[--dry-run] [--days N] [--at TIME]`: print the plan, or what was removed."""
    parser = argparse.ArgumentParser(
        prog="python -m jobs.publish.retention", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan, remove nothing")
    parser.add_argument(
        "--days", type=float, default=None, help="retention (default RETENTION_DAYS)"
    )
    parser.add_argument(
        "--at", default=None, help="ISO time the run counts back from (default now)"
    )
    args = parser.parse_args(argv)
    at = datetime.fromisoformat(args.at.replace("Z", "+00:00")) if args.at else None
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    summary = run(at, args.days, args.dry_run)
    print("\n".join(summary["plan"]))
    if summary["removed"] is not None:
        for kind, items in summary["removed"].items():
            print(f"removed {kind}: {', '.join(items) or 'nothing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
