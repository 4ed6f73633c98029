"""Rows in and rows out of each pipeline task, for the scale run's table (`make scenario`).

Each task's figure is read back from what the task left behind (its return value names it):
manifests, the registry, Parquet footers and the published table; nothing is re-counted by
reading data.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

Rows = tuple[int | None, int | None]
EVENT_TABLES = ("watch", "rate", "reco_request")


def snapshot_rows(snapshot_id: str) -> Rows:
    """Lines read from Kafka -> rows written (events and rejects)."""
    from jobs.ingest import lake

    manifest = lake.read_manifest(lake.snapshot_path(snapshot_id))
    return manifest["lines_read"], sum(manifest["row_counts"].values())


def validated_rows(snapshot_id: str) -> Rows:
    """Event rows checked -> event rows accepted (0 when quarantined)."""
    from jobs.ingest import lake

    row = lake.snapshot_row(snapshot_id) or {}
    events = sum(int(row.get("row_counts", {}).get(t, 0)) for t in EVENT_TABLES)
    return events, events if row.get("status") == "accepted" else 0


def accepted_events() -> int:
    """Watch and rate rows of every accepted snapshot (what the dataset reads)."""
    from jobs.ingest import lake

    total = 0
    for ref in lake.accepted_snapshots():
        counts = lake.read_manifest(ref.path)["row_counts"]
        total += counts.get("watch", 0) + counts.get("rate", 0)
    return total


def flagged_rows(detection_dir: str) -> Rows:
    """Events screened -> accounts flagged as spam."""
    flagged = pq.ParquetFile(Path(detection_dir) / "accounts.parquet").metadata.num_rows
    return accepted_events(), flagged


def dataset_rows(dataset_path: str) -> Rows:
    """Events -> interactions (one per user and movie)."""
    from jobs.train import dataset

    return accepted_events(), dataset.read_manifest(dataset_path)["counts"]["interactions"]


def fitted_rows(versions: str | list[str]) -> Rows:
    """Interactions fitted (largest candidate) -> models registered."""
    from jobs.train import registry

    versions = [versions] if isinstance(versions, str) else versions
    fitted = [int((registry.get(v) or {}).get("trained_on", {}).get("rows", 0)) for v in versions]
    return max(fitted, default=0), len(versions)


def scored_rows(scored_path: str) -> Rows:
    """Rows of the scored top-k lists (one per user)."""
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in Path(scored_path).glob("*.parquet"))
    return None, rows


def published_rows(reco_version: str) -> Rows:
    """Rows published for the reco version (the table serving reads)."""
    from jobs.publish import publish

    return None, publish.served_rows(reco_version)


ROWS: dict[str, Callable[[Any], Rows]] = {
    "snapshot": snapshot_rows,
    "validate": validated_rows,
    "detect_spam": flagged_rows,
    "build_dataset": dataset_rows,
    "train": fitted_rows,
    "refit": fitted_rows,
    "score": scored_rows,
    "publish": published_rows,
}


def stage_rows(task_id: str, value: Any) -> Rows:
    """(rows in, rows out) of one finished task from its return value; None where not known."""
    count = ROWS.get(task_id)
    if count is None or not value:
        return None, None
    return count(value)
