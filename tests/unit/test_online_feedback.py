"""Feedback-loop measures on a hand-built lake: every number below is worked out by hand.

Day 2026-01-01, window 60 min. Catalogue: a, b, c, d (d is only watched) = 4 movies.
  L1 10:00 u1 200 [a,b] m1      u1 watches a 10:10 (and 10:11, 10:40: one start) -> listed
                                u1 watches d 11:30: latest list m1, d not listed
  L2 10:00 u2 200 [a,c] m1      u2 watches c 11:30: 90 min after the list -> not listed
  L3 12:00 u3 200 [a,b] m2      u3 watches b 12:05 -> listed
  L4 13:00 u4 503 []            no answer: no exposure
                                u5 watches a 09:00: no list before it -> version ""
Exposure slots: m1 a2 b1 c1 (4), m2 a1 b1 (2), all a3 b2 c1 (6).
  Gini of [0,1,2,3] = 2*(1*0+2*1+3*2+4*3)/(4*6) - 5/4 = 5/12; top 1% (1 movie) = 3/6.
  m1 [0,1,1,2]: 2*13/16 - 5/4 = 0.375, top 2/4, coverage 3/4; m2 [0,0,1,1]: 0.5, 1/2, 2/4.
Watch starts: all a2 b1 c1 d1 (5, 2 listed): Gini [1,1,1,2] = 2*14/20 - 5/4 = 0.15, top 2/5.
  m1 a1 c1 d1 (3, 1 listed): Gini [0,1,1,1] = 0.25, top 1/3; m2 b1 (1, 1 listed): 0.75, 1;
  "" a1 (1, 0 listed): 0.75, 1, no exposure.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.ingest import parse
from jobs.online import feedback, predictions

pytestmark = pytest.mark.unit

DAY = "2026-01-01"
RECO = [  # time, user, status, result
    ("10:00", 1, 200, ["a", "b"]),
    ("10:00", 2, 200, ["a", "c"]),
    ("12:00", 3, 200, ["a", "b"]),
    ("13:00", 4, 503, []),
]
WATCH = [  # time, user, movie
    ("10:10", 1, "a"),
    ("10:11", 1, "a"),
    ("10:40", 1, "a"),
    ("11:30", 1, "d"),
    ("11:30", 2, "c"),
    ("12:05", 3, "b"),
    ("09:00", 5, "a"),
]
SERVED = [("a,b", 1, "m1"), ("a,c", 2, "m1"), ("a,b", 3, "m2")]  # list, user, model version

# (model version) -> slots, exposure Gini, exposure top-1%, coverage,
#                    watches, watch Gini, watch top-1%, listed watches, listed share
EXPECTED = {
    "*": (6, 5 / 12, 0.5, 0.75, 5, 0.15, 0.4, 2, 0.4),
    "m1": (4, 0.375, 0.5, 0.75, 3, 0.25, 1 / 3, 1, 1 / 3),
    "m2": (2, 0.5, 0.5, 0.5, 1, 0.75, 1.0, 1, 1.0),
    "": (0, None, None, 0.0, 1, 0.75, 1.0, 0, 0.0),
}
FIELDS = (
    "slots", "exposure_gini", "exposure_top1_share", "coverage",
    "watches", "watch_gini", "watch_top1_share", "rec_watches", "rec_share",
)  # fmt: skip


def _t(hhmm: str) -> datetime:
    return datetime.fromisoformat(f"{DAY}T{hhmm}:00")


def _write(path, rows: list[dict], schema: pa.Schema) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def build_lake(root):
    """One snapshot (reco_request, watch) and one predictions batch, as the jobs write them."""
    snap = root / "snapshots" / "s000001"
    reco = [
        {"event_time": _t(t), "user_id": u, "server": "h:1", "status": s, "result": r,
         "response_time_ms": 10, "kafka_partition": 0, "kafka_offset": i}
        for i, (t, u, s, r) in enumerate(RECO)
    ]  # fmt: skip
    watch = [
        {"event_time": _t(t), "user_id": u, "movie_id": m, "minute": 0,
         "kafka_partition": 1, "kafka_offset": i}
        for i, (t, u, m) in enumerate(WATCH)
    ]  # fmt: skip
    _write(snap / "reco_request" / f"event_date={DAY}" / "part-0.parquet", reco, parse.RECO_SCHEMA)
    _write(snap / "watch" / f"event_date={DAY}" / "part-0.parquet", watch, parse.WATCH_SCHEMA)
    served = [
        {"request_id": f"r{i}", "event_time": datetime.fromisoformat("2026-03-01T01:00:00+00:00"),
         "user_id": u, "model_version": mv, "reco_version": None, "variant": None,
         "source": "model", "items": items.split(","), "latency_ms": 1.0,
         "fallback_reason": None, "log_file": "f", "line_no": i}
        for i, (items, u, mv) in enumerate(SERVED)
    ]  # fmt: skip
    batch = root / "predictions" / "p000001"
    _write(batch / "predictions" / "part-0.parquet", served, predictions.SCHEMA)
    return [snap], [batch]


def test_gini_and_top_share_by_hand():
    assert feedback.gini([0, 0, 1, 3]) == pytest.approx(0.625)  # 2*15/(4*4) - 5/4
    assert feedback.gini([5, 5, 5]) == pytest.approx(0.0)
    assert feedback.gini([0] * 9 + [7]) == pytest.approx(0.9)  # (n-1)/n: all on one
    assert feedback.top_share([0, 0, 1, 3]) == pytest.approx(0.75)  # 1% of 4 -> 1 movie
    assert feedback.top_share([1] * 198 + [50, 50]) == pytest.approx(100 / 298)  # 2 of 200
    assert feedback.gini([]) != feedback.gini([])  # nan: nothing to measure
    assert feedback.top_share([0, 0]) != feedback.top_share([0, 0])


def test_measures_of_the_hand_built_lake(spark, tmp_path):
    snapshots, batches = build_lake(tmp_path)
    result = feedback.measure_lake(spark, snapshots, batches, days=1, window_minutes=60)
    assert result["catalogue"] == 4
    rows = {r["model_version"]: r for r in result["rows"]}
    assert set(rows) == set(EXPECTED)
    assert {r["day"] for r in result["rows"]} == {DAY}
    for version, expected in EXPECTED.items():
        got = tuple(rows[version][f] for f in FIELDS)
        assert got == pytest.approx(expected), (version, dict(zip(FIELDS, got, strict=True)))
    versions = {v["model_version"]: v for v in result["versions"]}
    assert versions["m1"]["coverage"] == pytest.approx(0.75)
    assert versions["m2"]["served_movies"] == 2


def test_a_longer_window_counts_the_late_watch(spark, tmp_path):
    snapshots, batches = build_lake(tmp_path)
    result = feedback.measure_lake(spark, snapshots, batches, days=1, window_minutes=95)
    total = next(r for r in result["rows"] if r["model_version"] == "*")
    assert (total["rec_watches"], total["watches"]) == (3, 5)  # u2's c at 90 min now counts


def test_write_stores_json_and_plot(tmp_path):
    rows = feedback.summarise(
        pd.DataFrame({"day": [DAY], "model_version": ["m1"], "movie_id": ["a"], "n": [2]}),
        pd.DataFrame(
            {"day": [DAY], "model_version": ["m1"], "movie_id": ["a"], "n": [1], "from_rec": [1]}
        ),
        catalogue_size=2,
    )
    path = feedback.write({"rows": rows, "versions": []}, tmp_path / "out")
    assert path.exists() and (tmp_path / "out" / feedback.PLOT_FILE).stat().st_size > 1000
    page = (tmp_path / "out" / feedback.HTML_FILE).read_text()
    assert f"src='{feedback.PLOT_FILE}'" in page and f"<td>{DAY}</td>" in page
    star = next(r for r in rows if r["model_version"] == "*")
    assert star["exposure_gini"] == pytest.approx(0.5) and star["rec_share"] == 1.0
