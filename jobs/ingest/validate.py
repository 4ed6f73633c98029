"""Validate a snapshot with Great Expectations (1.x) and record it `accepted` or `quarantined`.

Suites are files in expectations/ (one per table, plus `snapshot` for reconciliation, reject
rate and drift); thresholds live in expectations/thresholds.yml and reach the suites as
$PARAMETERs. Row-level suites see a bounded, evenly spread sample of each table (pandas);
the `snapshot` suite sees one row of aggregates computed over the whole snapshot with pyarrow.
Every checkpoint run updates the Data Docs site (settings.data_docs_dir).

    python -m jobs.ingest.validate s000042 [--mark]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from contracts import settings
from contracts.names import ITEM_COL, USER_COL
from jobs.ingest import lake, parse, summary

log = logging.getLogger(__name__)

EXPECTATIONS_DIR = settings.REPO_ROOT / "expectations"
SUITES = ("watch", "rate", "reco_request", "rejects", "snapshot")
DATASOURCE = "lake"
SUMMARY_FIELD = {USER_COL: "users", ITEM_COL: "movies"}


class SnapshotQuarantined(RuntimeError):
    """Raised when a snapshot fails validation; the message says which expectations failed."""


@dataclass
class Outcome:
    """The result of validating one snapshot (also written as JSON beside the GX stores)."""

    snapshot_id: str
    success: bool
    failures: list[str]
    aggregates: dict[str, Any]
    data_docs: str

    @property
    def status(self) -> str:
        return "accepted" if self.success else "quarantined"

    @property
    def reasons(self) -> str:
        return "; ".join(self.failures)


def thresholds() -> dict[str, Any]:
    """expectations/thresholds.yml as a dict."""
    import yaml

    return yaml.safe_load((EXPECTATIONS_DIR / "thresholds.yml").read_text())


def load_suite_file(name: str) -> dict[str, Any]:
    """One suite as kept in the repo: {"name", "meta", "expectations": [{"type", "kwargs"}]}."""
    return json.loads((EXPECTATIONS_DIR / f"{name}.json").read_text())


def gx_root(var_dir: Path | None = None) -> Path:
    """Root of the run-time GX project (its `gx/` folder holds stores and Data Docs)."""
    return Path(var_dir) if var_dir is not None else settings.load().var_dir


def gx_context(var_dir: Path | None = None):
    """The file context under <var_dir>/gx, configured from expectations/great_expectations.yml."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    project = gx_root(var_dir)
    config = project / "gx" / "great_expectations.yml"
    config.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(EXPECTATIONS_DIR / "great_expectations.yml", config)
    return gx.get_context(mode="file", project_root_dir=str(project))


# --- data the suites see ----------------------------------------------------------------------
def sample_table(snapshot_dir: Path, table: str, rows: int) -> pa.Table:
    """Up to about `rows` rows of a table: whole row groups spread evenly over its files."""
    groups = []
    for path in lake.table_files(snapshot_dir, table):
        meta = pq.ParquetFile(path).metadata
        groups += [(path, g, meta.row_group(g).num_rows) for g in range(meta.num_row_groups)]
    total = sum(n for _, _, n in groups)
    if total == 0:
        return parse.SCHEMAS[table].empty_table()
    keep = groups
    if total > rows:
        step = total / rows
        keep, taken, next_at, seen = [], 0, 0.0, 0
        for group in groups:  # take a group whenever the running row count passes a stride
            if seen >= next_at and taken < rows:
                keep.append(group)
                taken += group[2]
                next_at = seen + group[2] * step
            seen += group[2]
    parts = [pq.ParquetFile(p).read_row_group(g) for p, g, _ in keep]
    return pa.concat_tables(parts).cast(parse.SCHEMAS[table])


def _hours(manifest: dict) -> float:
    lo, hi = manifest.get("min_event_time"), manifest.get("max_event_time")
    if not lo or not hi:
        return 0.0
    span = np.datetime64(hi) - np.datetime64(lo)
    return max(1.0, span / np.timedelta64(1, "h"))


def newest_hours(manifest: dict, limits: dict) -> datetime | None:
    """Start of the snapshot's last `drift_window_hours` of event time (None: all of it)."""
    hi = manifest.get("max_event_time")
    if not hi:
        return None
    return datetime.fromisoformat(str(hi)) - timedelta(hours=float(limits["drift_window_hours"]))


def _events(manifest: dict) -> int:
    counts = manifest["row_counts"]
    return sum(counts.get(t, 0) for t in parse.TABLES)


def rating_kl(current: Sequence[int], reference: Sequence[int]) -> float:
    """KL divergence D(current || reference) of two 1..5 star histograms, add-one smoothed."""
    p = np.asarray(current, float) + 1.0
    q = np.asarray(reference, float) + 1.0
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * np.log(p / q)))


def share_outside(
    snapshot_dir: Path,
    tables: tuple[str, ...],
    column: str,
    known: pa.Array,
    since: datetime | None = None,
) -> float | None:
    """Share of the snapshot's rows (of event time `since` or later) whose `column` is not in
    `known`, read a file at a time."""
    rows = inside = 0
    for values in summary.column_batches(snapshot_dir, tables, column, since):
        rows += len(values)
        inside += pc.sum(pc.is_in(values, value_set=known)).as_py() or 0
    return None if rows == 0 else 1.0 - inside / rows


def drift(
    snapshot_dir: Path,
    references: list[tuple[Path, dict]],
    min_rows: int,
    since: datetime | None = None,
) -> dict:
    """Rating KL and shares of new users / movies against the references' stored summaries.

    The shares count the events from `since` on: the snapshot's newest event-time hours, so
    that a long snapshot does not dilute a change that began during it (new movies released
    at midnight are a small share of a snapshot from 18:00 to 06:00, most of which came
    before them).

    Memory: one file of this snapshot plus the references' distinct ids (never their rows).
    """
    current = summary.load(snapshot_dir)
    refs = [summary.load(path) for path, _ in references]
    ref_stars = np.sum([r.stars for r in refs], axis=0)
    out: dict[str, Any] = {"rating_kl": None}
    if sum(current.stars) >= min_rows and ref_stars.sum() >= min_rows:
        out["rating_kl"] = rating_kl(current.stars, ref_stars)
    for column, tables, key in (
        (USER_COL, parse.TABLES, "new_user_share"),
        (ITEM_COL, summary.MOVIE_TABLES, "new_movie_share"),
    ):
        known = pc.unique(pa.concat_arrays([getattr(r, SUMMARY_FIELD[column]) for r in refs]))
        out[key] = share_outside(snapshot_dir, tables, column, known, since)
    return out


def files_verified(snapshot_dir: Path, manifest: dict) -> bool:
    """Every file of the manifest is there with the bytes it had when the snapshot was written."""
    for entry in manifest["files"]:
        path = snapshot_dir / entry["path"]
        if not path.is_file() or lake.sha256_file(path) != entry["sha256"]:
            return False
    return True


def rows_on_disk(snapshot_dir: Path, manifest: dict) -> int:
    """Rows in the snapshot's Parquet files as they are now (footers only; a lost file = 0)."""
    rows = 0
    for entry in manifest["files"]:
        path = snapshot_dir / entry["path"]
        if path.is_file():
            with contextlib.suppress(pa.ArrowInvalid):  # unreadable footer: counts as lost
                rows += pq.ParquetFile(path).metadata.num_rows
    return rows


def offsets_contiguous(manifest: dict, previous: dict | None) -> bool:
    """Each partition starts where the previous complete snapshot (any status) ended.

    Offsets lost to retention (`skipped_offsets`) are accounted for; a partition the previous
    snapshot did not know is new and starts wherever the broker says.
    """
    if previous is None:
        return True
    prev_end = {p: end for p, (_start, end) in previous["offsets"].items()}
    skipped = manifest.get("skipped_offsets", {})
    return all(
        prev_end[part] + skipped.get(part, 0) == start
        for part, (start, _end) in manifest["offsets"].items()
        if part in prev_end
    )


def aggregates(
    snapshot_dir: Path,
    manifest: dict,
    references: list[tuple[Path, dict]],
    limits: dict,
    previous: dict | None = None,
) -> dict[str, Any]:
    """One row of whole-snapshot facts for the `snapshot` suite (drift None without reference).

    `previous` is the last complete snapshot before this one whatever its status (offsets);
    `references` are the last accepted ones (drift).
    """
    counts = manifest["row_counts"]
    rows = rows_on_disk(snapshot_dir, manifest)
    out: dict[str, Any] = {
        "snapshot_id": manifest["snapshot_id"],
        "lines_read": manifest["lines_read"],
        "rows_and_rejects": rows,
        "reconciled": rows == manifest["lines_read"] == sum(counts.values()),
        "offsets_contiguous": offsets_contiguous(manifest, previous),
        "files_verified": files_verified(snapshot_dir, manifest),
        "reject_rate": counts.get("rejects", 0) / max(1, manifest["lines_read"]),
        "volume_ratio": None,
        "rating_kl": None,
        "new_user_share": None,
        "new_movie_share": None,
        "reference": [m["snapshot_id"] for _, m in references],
    }
    events = _events(manifest)
    ref_events = sum(_events(m) for _, m in references)
    min_rows = limits["min_rows_for_drift"]
    if not references or events < min_rows or ref_events < min_rows:
        return out
    ref_hours = sum(_hours(m) for _, m in references)
    out["volume_ratio"] = (events / _hours(manifest)) / (ref_events / ref_hours)

    out.update(drift(snapshot_dir, references, min_rows, newest_hours(manifest, limits)))
    return out


def table_frames(snapshot_dir: Path, sample_rows: int) -> dict[str, Any]:
    """pandas frames the row-level suites validate (a bounded sample per table)."""
    frames = {}
    for table in parse.SCHEMAS:
        data = sample_table(snapshot_dir, table, sample_rows)
        frame = data.to_pandas()
        if table == "reco_request":
            frame["result_length"] = pc.list_value_length(data["result"]).to_numpy(
                zero_copy_only=False
            )
        frames[table] = frame
    return frames


def reference_snapshots(
    manifest: dict, root: Path, count: int, database_url: str | None
) -> list[tuple[Path, dict]]:
    """The last `count` accepted snapshots of the same topic before this one, oldest first."""
    seq = lake.snapshot_seq(manifest["snapshot_id"])
    accepted = [
        ref
        for ref in lake.accepted_snapshots(topic=manifest["topic"], database_url=database_url)
        if lake.snapshot_seq(ref.snapshot_id) < seq
    ]
    chosen = accepted[-count:] if count > 0 else []
    return [(ref.path, lake.read_manifest(ref.path)) for ref in chosen]


# --- Great Expectations -------------------------------------------------------------------------
def _describe_failure(suite: str, result) -> str:
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k not in ("batch_id", "result_format")}
    column = kwargs.pop("column", None)
    what = f"{suite}.{column}" if column else suite
    observed = result.result.get("observed_value")
    if observed is None and "partial_unexpected_list" in result.result:
        observed = f"unexpected e.g. {result.result['partial_unexpected_list'][:3]}"
        if "unexpected_count" in result.result:
            observed = f"{result.result['unexpected_count']} {observed}"
    if result.exception_info and result.exception_info.get("raised_exception"):
        observed = f"error: {result.exception_info.get('exception_message')}"
    return f"{what}: {config.type} {kwargs} failed (observed {observed})"


def run_checkpoints(
    snapshot_id: str, frames: dict[str, Any], limits: dict, var_dir: Path | None = None
) -> tuple[bool, list[str]]:
    """Run every suite on its frame through a Checkpoint that updates Data Docs."""
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.core.run_identifier import RunIdentifier

    context = gx_context(var_dir)
    try:
        source = context.data_sources.get(DATASOURCE)
    except (KeyError, ValueError):
        source = context.data_sources.add_pandas(DATASOURCE)
    params = {k: v for k, v in limits.items() if not isinstance(v, (list, dict))}
    failures: list[str] = []
    success = True
    run_id = RunIdentifier(run_name=snapshot_id)
    for name in SUITES:
        spec = load_suite_file(name)
        try:
            asset = source.get_asset(name)
        except LookupError:
            asset = source.add_dataframe_asset(name)
        try:
            batch = asset.get_batch_definition("whole")
        except (KeyError, ValueError):
            batch = asset.add_batch_definition_whole_dataframe("whole")
        # The repo file is the truth: replace whatever the store holds under this name.
        for store, key in (
            (context.checkpoints, f"{name}_checkpoint"),
            (context.validation_definitions, f"{name}_validation"),
            (context.suites, name),
        ):
            with contextlib.suppress(Exception):  # absent on a fresh context
                store.delete(key)
        suite = context.suites.add(
            gx.ExpectationSuite(name=name, expectations=spec["expectations"], meta=spec["meta"])
        )
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{name}_validation", data=batch, suite=suite)
        )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=f"{name}_checkpoint",
                validation_definitions=[definition],
                actions=[UpdateDataDocsAction(name="update_data_docs")],
                result_format={"result_format": "SUMMARY"},
            )
        )
        result = checkpoint.run(
            batch_parameters={"dataframe": frames[name]},
            expectation_parameters=params,
            run_id=run_id,
        )
        for validation in result.run_results.values():
            for item in validation.results:
                if not item.success:
                    failures.append(_describe_failure(name, item))
        success = success and result.success
    return success, failures


def validate_snapshot(
    snapshot_id: str,
    root: str | Path | None = None,
    database_url: str | None = None,
    var_dir: str | Path | None = None,
) -> Outcome:
    """Run all suites on one snapshot; write the outcome JSON; does not touch its status."""
    root = lake.lake_root(root)
    var = Path(var_dir) if var_dir is not None else settings.load().var_dir
    path = lake.snapshot_path(snapshot_id, root)
    manifest = lake.read_manifest(path)
    limits = thresholds()
    references = reference_snapshots(manifest, root, limits["reference_snapshots"], database_url)
    previous = lake.previous_complete(manifest, root)
    facts = aggregates(path, manifest, references, limits, previous)
    frames = table_frames(path, limits["sample_rows"])
    import pandas as pd

    frames["snapshot"] = pd.DataFrame([{k: v for k, v in facts.items() if k != "reference"}])
    success, failures = run_checkpoints(snapshot_id, frames, limits, var)
    docs = var / "gx" / "data_docs" / "index.html"
    outcome = Outcome(snapshot_id, success, failures, _jsonable(facts), str(docs))
    out = outcome_path(snapshot_id, var)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(asdict(outcome), indent=2, default=str))
    log.info("snapshot %s validated: %s", snapshot_id, outcome.status)
    return outcome


def _jsonable(facts: dict) -> dict:
    def clean(v):
        if isinstance(v, float) and math.isnan(v):
            return None
        if isinstance(v, (np.bool_, np.integer, np.floating)):
            return v.item()
        return v

    return {k: clean(v) for k, v in facts.items()}


def outcome_path(snapshot_id: str, var_dir: Path | None = None) -> Path:
    return gx_root(var_dir) / "gx" / "outcomes" / f"{snapshot_id}.json"


def read_outcome(snapshot_id: str, var_dir: str | Path | None = None) -> Outcome:
    data = json.loads(outcome_path(snapshot_id, Path(var_dir) if var_dir else None).read_text())
    return Outcome(**data)


def mark(
    snapshot_id: str, database_url: str | None = None, var_dir: str | Path | None = None
) -> str:
    """Set the snapshot's Postgres status from its outcome; raise SnapshotQuarantined if bad."""
    outcome = read_outcome(snapshot_id, var_dir)
    lake.set_status(snapshot_id, outcome.status, outcome.reasons or None, database_url)
    if not outcome.success:
        log.error(
            "snapshot %s QUARANTINED (never read by training): %s; Data Docs: %s",
            snapshot_id,
            outcome.reasons,
            outcome.data_docs,
        )
        raise SnapshotQuarantined(f"snapshot {snapshot_id} quarantined: {outcome.reasons}")
    log.info("snapshot %s accepted", snapshot_id)
    return snapshot_id


def build_docs(var_dir: str | Path | None = None) -> str:
    """Rebuild the Data Docs site; return the path of its index.html."""
    context = gx_context(Path(var_dir) if var_dir else None)
    context.build_data_docs()
    return str(gx_root(Path(var_dir) if var_dir else None) / "gx" / "data_docs" / "index.html")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("snapshot_id")
    parser.add_argument("--mark", action="store_true", help="also set the Postgres status")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    outcome = validate_snapshot(args.snapshot_id)
    print(
        json.dumps(
            {
                "snapshot_id": outcome.snapshot_id,
                "status": outcome.status,
                "failures": outcome.failures,
                "data_docs": outcome.data_docs,
            },
            indent=2,
        )
    )
    if args.mark:
        try:
            mark(args.snapshot_id)
        except SnapshotQuarantined:
            return 2
    return 0 if outcome.success else 2


if __name__ == "__main__":
    raise SystemExit(main())
