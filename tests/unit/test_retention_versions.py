"""Retention reads the versions retained answers name from every part, whatever its schema."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.online import predictions
from jobs.publish.retention import versions_named

pytestmark = pytest.mark.unit


def write_part(batch, name: str, columns: dict) -> None:
    path = batch / predictions.TABLE / "event_date=2025-03-01" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)


def test_a_shadow_named_only_in_a_later_part_is_found(tmp_path):
    old, new = tmp_path / "b000001", tmp_path / "b000002"
    # an old part, written before the log recorded shadows: no shadow column at all
    write_part(old, "part-00000.parquet", {"model_version": ["m1"], "reco_version": ["r1"]})
    write_part(
        new,
        "part-00000.parquet",
        {
            "model_version": ["m2", None],
            "reco_version": ["r2", None],
            "shadow_version": ["s9", None],
        },
    )
    models, recos = versions_named([old, new])
    assert models == {"m1", "m2"}
    assert recos == {"r1", "r2", "s9"}
    assert versions_named([]) == (set(), set())
