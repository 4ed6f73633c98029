"""online_metrics: a run replaces exactly its hours (upsert on hour/version/variant)."""

from __future__ import annotations

from datetime import datetime

import pytest

from jobs.online import evaluate
from tests.conftest import private_schema

pytestmark = pytest.mark.integration


def _row(hour: int, model_version: str, requests: int = 10) -> dict:
    row = dict.fromkeys(evaluate.METRIC_COLUMNS, None)
    row.update(
        hour=datetime(2025, 1, 1, hour),
        model_version=model_version,
        variant="",
        requests=requests,
        ok_requests=requests,
        answers=requests,
        personalised=requests,
        lists=requests,
        hits=1,
        window_minutes=60,
        deadline_ms=800,
        complete=False,
    )
    return row


def _stored(url: str) -> list[tuple]:
    from contracts import db

    conn = db.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT hour, model_version, requests FROM online_metrics ORDER BY 1, 2")
            return cur.fetchall()
    finally:
        conn.close()


def test_a_rerun_replaces_its_hours_and_leaves_the_others(postgres):
    with private_schema(postgres, ("040_online.sql",)) as url:
        first = evaluate.Window(datetime(2025, 1, 1, 10), datetime(2025, 1, 1, 12))
        evaluate.store(first, [_row(10, "m1"), _row(11, "m1"), _row(11, "m2")], url)
        later = evaluate.Window(datetime(2025, 1, 1, 11), datetime(2025, 1, 1, 13))
        evaluate.store(later, [_row(11, "m1", requests=15), _row(12, "m1")], url)
        evaluate.store(later, [_row(11, "m1", requests=15), _row(12, "m1")], url)  # idempotent
        assert _stored(url) == [
            (datetime(2025, 1, 1, 10), "m1", 10),  # outside the rerun's hours: untouched
            (datetime(2025, 1, 1, 11), "m1", 15),  # replaced
            (datetime(2025, 1, 1, 12), "m1", 10),  # m2 no longer appears at 11: gone
        ]
