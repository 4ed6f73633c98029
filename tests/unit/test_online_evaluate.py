"""Online evaluation on a hand-built lake: every number below is worked out by hand.

Stream (event time, hour 10 unless said), window 60 min, deadline 800 ms:
  L1 10:00 u1 200 [a,b] 100 ms   served by m1/A (model; an older m0 served the same list
                                 earlier: the latest answer counts)   u1 watches b 10:30: hit
  L2 10:05 u2 200 [c,d] 300 ms   m1/B model   u2 watches c 11:10 (65 min) and d 11:49: miss
  L3 10:10 u3 200 [p,q] 900 ms   pop1/A popular (too slow)             u3 watches q 10:20: hit
  L4 10:20 u4 200 [a,c]  50 ms   m2/B model   u4 watched a at 10:19 (before), c 11:21 (61 min): miss
  L5 10:30 u1   0 []    800 ms   a timeout: u1's nearest answer (L1) gives m1/A, no source
  L6 10:40 u5 503 []     20 ms   nobody answered u5: model version and variant ""
  L7 10:50 u2 200 [c,d] 700 ms   m1/B model   c at 11:10 is 20 min later: hit
  L8 11:15 u4 200 [a,c]  40 ms   m2/B model   u4 watches c 11:21: hit
Newest event 12:30 (u9 watches z): hour 10 is complete (12:30 >= 11:00 + 60 min), 11 is not.
Latency percentiles interpolate linearly between order statistics (numpy's default).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.ingest import parse
from jobs.online import evaluate, predictions

pytestmark = pytest.mark.unit

DAY = "2026-01-01"


def _t(hhmm: str) -> datetime:
    return datetime.fromisoformat(f"{DAY}T{hhmm}:00")


RECO = [  # time, user, status, result, ms
    ("10:00", 1, 200, ["a", "b"], 100),
    ("10:05", 2, 200, ["c", "d"], 300),
    ("10:10", 3, 200, ["p", "q"], 900),
    ("10:20", 4, 200, ["a", "c"], 50),
    ("10:30", 1, 0, [], 800),
    ("10:40", 5, 503, [], 20),
    ("10:50", 2, 200, ["c", "d"], 700),
    ("11:15", 4, 200, ["a", "c"], 40),
]
WATCH = [  # time, user, movie
    ("10:30", 1, "b"),
    ("11:10", 2, "c"),
    ("11:49", 2, "d"),
    ("10:10", 2, "x"),
    ("10:20", 3, "q"),
    ("10:19", 4, "a"),
    ("11:21", 4, "c"),
    ("12:30", 9, "z"),
]
SERVED = [  # served at (UTC wall clock), user, list, model version, variant, source
    ("00:00", 1, "a,b", "m0", "A", "model"),
    ("01:00", 1, "a,b", "m1", "A", "model"),
    ("01:00", 2, "c,d", "m1", "B", "model"),
    ("01:00", 3, "p,q", "pop1", "A", "popular"),
    ("01:00", 4, "a,c", "m2", "B", "model"),
]


def _write(path, rows: list[dict], schema: pa.Schema) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def build_lake(root):
    """One snapshot (reco_request, watch) and one predictions batch, as the jobs write them."""
    snap = root / "snapshots" / "s000001"
    reco = [
        {"event_time": _t(t), "user_id": u, "server": "h:1", "status": s, "result": r,
         "response_time_ms": ms, "kafka_partition": 0, "kafka_offset": i}
        for i, (t, u, s, r, ms) in enumerate(RECO)
    ]  # fmt: skip
    watch = [
        {"event_time": _t(t), "user_id": u, "movie_id": m, "minute": 0,
         "kafka_partition": 1, "kafka_offset": i}
        for i, (t, u, m) in enumerate(WATCH)
    ]  # fmt: skip
    _write(snap / "reco_request" / f"event_date={DAY}" / "part-0.parquet", reco, parse.RECO_SCHEMA)
    _write(snap / "watch" / f"event_date={DAY}" / "part-0.parquet", watch, parse.WATCH_SCHEMA)
    served = [
        {"request_id": f"r{i}", "event_time": datetime.fromisoformat(f"2026-03-01T{t}:00+00:00"),
         "user_id": u, "model_version": mv, "reco_version": None, "variant": v, "source": src,
         "items": items.split(","), "latency_ms": 1.0, "fallback_reason": None,
         "log_file": "f", "line_no": i}
        for i, (t, u, items, mv, v, src) in enumerate(SERVED)
    ]  # fmt: skip
    batch = root / "predictions" / "p000001"
    _write(batch / "predictions" / "part-0.parquet", served, predictions.SCHEMA)
    return [snap], [batch]


# hour, model version, variant -> requests, ok, p50, p95, p99, answers, personalised, lists, hits
EXPECTED = {
    ("10", "m1", "A"): (2, 1, 450, 765, 793, 1, 1, 1, 1),
    ("10", "m1", "B"): (2, 2, 500, 680, 696, 2, 2, 2, 1),
    ("10", "pop1", "A"): (1, 0, 900, 900, 900, 1, 0, 1, 1),
    ("10", "m2", "B"): (1, 1, 50, 50, 50, 1, 1, 1, 0),
    ("10", "", ""): (1, 0, 20, 20, 20, 0, 0, 0, 0),
    ("10", "*", "A"): (3, 1, 800, 890, 898, 2, 1, 2, 2),
    ("10", "*", "B"): (3, 3, 300, 660, 692, 3, 3, 3, 1),
    ("10", "*", ""): (1, 0, 20, 20, 20, 0, 0, 0, 0),
    ("10", "*", "*"): (7, 4, 300, 870, 894, 5, 4, 5, 3),
    ("11", "m2", "B"): (1, 1, 40, 40, 40, 1, 1, 1, 1),
    ("11", "*", "B"): (1, 1, 40, 40, 40, 1, 1, 1, 1),
    ("11", "*", "*"): (1, 1, 40, 40, 40, 1, 1, 1, 1),
}
FIELDS = (
    "requests",
    "ok_requests",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "answers",
    "personalised",
    "lists",
    "hits",
)


def test_metrics_on_a_hand_built_lake_match_the_hand_worked_numbers(spark, tmp_path):
    snapshots, batches = build_lake(tmp_path)
    window, rows = evaluate.evaluate_lake(spark, snapshots, batches, hours=3)
    assert (window.start, window.end) == (_t("10:00"), _t("12:00").replace(hour=13))
    got = {
        (f"{r['hour']:%H}", r["model_version"], r["variant"]): tuple(
            pytest.approx(r[f]) for f in FIELDS
        )
        for r in rows
    }
    assert got == EXPECTED
    total = next(
        r for r in rows if r["hour"].hour == 10 and r["model_version"] == "*" == r["variant"]
    )
    assert total["availability"] == pytest.approx(4 / 7)
    assert total["personalised_share"] == pytest.approx(0.8)
    assert total["online_accuracy"] == pytest.approx(0.6)
    # Wilson 95% for 3 of 5: (0.2307, 0.8824), as printed in the usual tables.
    assert (total["accuracy_low"], total["accuracy_high"]) == pytest.approx(
        (0.2307, 0.8824), abs=1e-4
    )
    assert {r["complete"] for r in rows if r["hour"].hour == 10} == {True}
    assert {r["complete"] for r in rows if r["hour"].hour == 11} == {False}
    nobody = next(r for r in rows if r["model_version"] == "" and r["hour"].hour == 10)
    assert nobody["online_accuracy"] is None and nobody["personalised_share"] is None


def test_the_accuracy_window_is_a_parameter(spark, tmp_path):
    snapshots, batches = build_lake(tmp_path)
    _, rows = evaluate.evaluate_lake(spark, snapshots, batches, hours=3, window_minutes=62)
    total = next(
        r for r in rows if r["hour"].hour == 10 and r["model_version"] == "*" == r["variant"]
    )
    assert (total["hits"], total["lists"]) == (4, 5)  # L4 now counts: c at 61 min
    assert total["window_minutes"] == 62


def test_wilson_interval_edges():
    assert evaluate.wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert evaluate.wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    low, high = evaluate.wilson(50, 100)
    assert (low, high) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    assert all(x != x for x in evaluate.wilson(0, 0))  # nan: no lists, no interval


def test_hours_are_counted_back_from_the_newest_event_not_the_clock():
    newest = datetime(1998, 3, 14, 9, 26, 53)
    assert evaluate.hours_to_evaluate(newest, 2) == (
        datetime(1998, 3, 14, 8),
        datetime(1998, 3, 14, 10),
    )
    assert datetime.now(UTC).year != 1998
