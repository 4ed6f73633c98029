"""The shadow report on real Spark over a hand-built lake, and through jobs.pipeline on a private
Postgres schema. Every number below is worked out by hand.

Answers logged while shadow `cand` ran (another shadow's answer, and an older batch written
before the shadow columns existed, are not its):
  u1 served [a,b], shadow [a,c]  Jaccard 1/3, 1 shared
  u2 served [c,d], shadow [e,f]  Jaccard 0,   0 shared
  u3 served [a,b], shadow none   (no row in the shadow: not paired)
  u4 served [b,d], shadow [b,d]  Jaccard 1,   2 shared
  -> 4 answers, 3 paired, mean Jaccard (1/3 + 0 + 1) / 3 = 4/9, mean shared 1.
Stream lines (status 200) L0 u1 [a,b], L1 u2 [c,d], L2 u3 [a,b], L3 u4 [b,d] at 10:00; a 503.
Watches: u1 c 10:20 (shadow hit, production miss), u2 d 10:30 (production hit, shadow miss),
u4 b 12:00 (after the 60 min window: miss), u3 a 10:05, u9 a 09:00.
  -> production 1 hit of 3 paired lists, shadow 1 of 3.
Popularity by watches: a 2, then b, c, d 1 each (ties by id): ranks a1 b2 c3 d4, e/f 5.
  production lists (paired) a b c d b d -> mean rank 16/6, 4 distinct items;
  shadow lists a c e f b d -> 20/6, 6 distinct. Catalogue {a..f} = 6 movies.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import psycopg2
import pyarrow as pa
import pytest

from jobs import pipeline
from jobs.ingest import parse
from jobs.online import predictions, shadow_report
from tests.conftest import private_schema
from tests.unit.test_online_evaluate import _write

pytestmark = pytest.mark.integration

DAY = "2026-01-01"
RECO = [  # time, user, status, result
    ("10:00", 1, 200, ["a", "b"]),
    ("10:00", 2, 200, ["c", "d"]),
    ("10:00", 3, 200, ["a", "b"]),
    ("10:00", 4, 200, ["b", "d"]),
    ("10:30", 1, 503, []),
]
WATCH = [  # time, user, movie
    ("10:20", 1, "c"),
    ("10:30", 2, "d"),
    ("12:00", 4, "b"),
    ("10:05", 3, "a"),
    ("09:00", 9, "a"),
]
SERVED = [  # user, served, shadow version, shadow list
    (1, "a,b", "cand", "a,c"),
    (2, "c,d", "cand", "e,f"),
    (3, "a,b", "cand", None),
    (4, "b,d", "cand", "b,d"),
    (5, "x,y", "other", "x,z"),
]


def _t(hhmm: str) -> datetime:
    return datetime.fromisoformat(f"{DAY}T{hhmm}:00")


def build_lake(root):
    """One snapshot, one prediction batch from before shadows and one with them."""
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
    when = datetime(2026, 3, 1, 1, tzinfo=UTC)
    base = {"event_time": when, "model_version": "m1", "reco_version": "live", "variant": None,
            "source": "model", "latency_ms": 1.0, "log_file": "f"}  # fmt: skip
    old_schema = pa.schema(
        [f for f in predictions.SCHEMA if not f.name.startswith("shadow_")]
    )  # what batches held before shadows
    old = [{**base, "request_id": "o1", "user_id": 1, "items": ["a", "b"], "line_no": 0}]
    new = [
        {**base, "request_id": f"r{i}", "user_id": u, "items": items.split(","), "line_no": i,
         "shadow_version": version, "shadow_items": shadow.split(",") if shadow else None}
        for i, (u, items, version, shadow) in enumerate(SERVED)
    ]  # fmt: skip
    batches = []
    for n, (rows, schema) in enumerate(((old, old_schema), (new, predictions.SCHEMA)), start=1):
        batch = root / "predictions" / f"p{n:06d}"
        _write(batch / "predictions" / "part-0.parquet", rows, schema)
        (batch / "manifest.json").write_text(
            json.dumps({"batch_id": batch.name, "max_event_time": when.isoformat()})
        )
        batches.append(batch)
    return [snap], batches


def test_the_figures_match_the_hand_worked_lake(spark, tmp_path):
    snapshots, batches = build_lake(tmp_path / "lake")
    result = shadow_report.lake_result(spark, snapshots, batches, "cand", 60)
    overlap = result["overlap"]
    assert (overlap["answers"], overlap["paired_answers"]) == (4, 3)
    assert overlap["mean_jaccard"] == pytest.approx(4 / 9)
    assert overlap["mean_shared_items"] == pytest.approx(1.0)
    assert result["jaccard_histogram"] == [1, 0, 0, 1, 0, 0, 0, 0, 0, 1]
    prod, shadow = result["arms"]["production"], result["arms"]["shadow"]
    assert (prod["would_have_hit"]["lists"], prod["would_have_hit"]["hits"]) == (3, 1)
    assert (shadow["would_have_hit"]["lists"], shadow["would_have_hit"]["hits"]) == (3, 1)
    assert result["catalogue"] == {"movies": 6, "ranked_by_watches": 4}
    assert (prod["distinct_items"], shadow["distinct_items"]) == (4, 6)
    assert (prod["coverage"], shadow["coverage"]) == (pytest.approx(4 / 6), 1.0)
    assert prod["mean_popularity_rank"] == pytest.approx(16 / 6)
    assert shadow["mean_popularity_rank"] == pytest.approx(20 / 6)


def test_a_shadow_with_no_logged_answer_gets_an_empty_report(spark, tmp_path):
    snapshots, batches = build_lake(tmp_path / "lake")
    result = shadow_report.lake_result(spark, snapshots, batches[:1], "cand", 60)
    assert result["overlap"]["answers"] == 0
    out = shadow_report.write_report("cand", None, result, tmp_path / "out")
    assert "No paired answers" in (out / "report.html").read_text()


def test_the_pipeline_writes_html_plot_and_json_under_reports_shadow(
    postgres, spark, tmp_path, monkeypatch
):
    monkeypatch.setenv("RECS_VAR_DIR", str(tmp_path))
    snapshots, _ = build_lake(tmp_path / "lake")
    with private_schema(postgres) as url, psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO snapshots (snapshot_id, topic, status, path, offsets, row_counts, "
            "manifest) VALUES ('s000001', 't', 'accepted', %s, '{}', '{}', '{}')",
            (str(snapshots[0]),),
        )
        cur.execute(
            "INSERT INTO reco_versions (reco_version, model_version, table_name, n_users, status)"
            " VALUES ('cand', 'm2', 'none', 3, 'audited')"
        )
        cur.execute("INSERT INTO shadow_deployments (reco_version) VALUES ('cand')")
        conn.commit()
        out = pipeline.shadow_report("cand", 60, url)
    assert out == str(tmp_path / "reports" / "shadow" / "cand")
    report = json.loads((tmp_path / "reports/shadow/cand/report.json").read_text())
    assert report["deployment"]["active"] is True
    assert report["arms"]["shadow"]["would_have_hit"]["hits"] == 1
    assert report["overlap"]["paired_answers"] == 3
    assert report["charts"] == ["shadow.png"]
    assert (tmp_path / "reports/shadow/cand/shadow.png").stat().st_size > 1000
    assert "Shadow cand vs production" in (tmp_path / "reports/shadow/cand/report.html").read_text()
