"""Experiment lifecycle on real Postgres and the report on a real Spark over a hand-built lake.

The lake is tests/unit/test_online_evaluate.py's (worked out there by hand). With an experiment
that started at 00:30 (server clock) on variants A and B, the answers of 01:00 are its own;
u1's 00:00 answer is older. Attributed stream lines and outcomes (window 60 min):
  A: u1 L1 [a,b] hit + L5 timeout (nearest answer: L1) -> requests 2, lists 1, hits 1
     u3 L3 [p,q] hit (a popularity answer inside variant A) -> 1, 1, 1
  B: u2 L2 miss, L7 hit -> 2, 2, 1;  u4 L4 miss, L8 hit -> 2, 2, 1
  u5's 503 has no answer: in no variant.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import psycopg2
import pytest

from jobs import pipeline
from jobs.online import experiment_outcomes
from jobs.online.experiment_analysis import Plan, sample_size
from jobs.publish import experiments, publish
from tests.support.harness import PrivateDatabase, seed_version
from tests.unit.test_online_evaluate import build_lake

pytestmark = pytest.mark.integration

PLAN = Plan(baseline_rate=0.2, min_effect=0.05, alpha=0.05, power=0.8)
STARTED = datetime(2026, 3, 1, 0, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def url():
    """A throwaway cluster (only Postgres is needed) with v1 published, v2 audited, v3 loaded."""
    database = PrivateDatabase().create()
    url = database.owner_url
    seed_version(url, "exp-v1", "m1", range(1, 3), publish_it=True)
    seed_version(url, "exp-v2", "m2", range(1, 3), publish_it=False)
    publish.load_recommendations([(1, [f"x{i}" for i in range(20)])], "exp-v3", "m3", url)
    yield url
    database.destroy()


def sql(url: str, statement: str, params=None) -> None:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(statement, params)
    conn.close()


def arms(a: str = "exp-v1", b: str = "exp-v2", share_b: float = 0.5):
    return [experiments.VariantSpec("A", a, 1 - share_b), experiments.VariantSpec("B", b, share_b)]


def test_start_is_validated_and_records_the_plan(url):
    with pytest.raises(experiments.ExperimentError, match="exp-v3 is loaded, not audited"):
        experiments.start("e1", arms(b="exp-v3"), url=url, plan=PLAN)
    with pytest.raises(experiments.ExperimentError, match="nope is unknown"):
        experiments.start("e1", arms(b="nope"), url=url, plan=PLAN)
    with pytest.raises(ValueError, match="sum to 1.1"):
        experiments.start("e1", [*arms(), experiments.VariantSpec("C", "exp-v1", 0.1)], url=url)
    experiments.start("e1", arms(share_b=0.25), url=url, plan=PLAN)
    exp = experiments.describe("e1", url)
    control, treatment = sample_size(PLAN, ratio=0.25 / 0.75)
    assert exp["plan"] == PLAN and exp["control"] == "A" and exp["active"]
    assert exp["planned_users"] == {"A": control, "B": treatment}
    assert experiments.describe(None, url)["experiment_id"] == "e1"  # the active one
    assert experiments.stop(url=url) == "e1"
    with pytest.raises(experiments.ExperimentError, match="named e1 already exists"):
        experiments.start("e1", arms(), url=url, plan=PLAN)
    assert experiments.describe(None, url) is None


def test_status_counts_the_users_served_since_the_start(url, tmp_path, monkeypatch):
    monkeypatch.setenv("RECS_VAR_DIR", str(tmp_path))
    _, batches = build_lake(tmp_path / "lake")
    (batches[0] / "manifest.json").write_text(
        json.dumps({"batch_id": "p000001", "max_event_time": "2026-03-01T01:00:00+00:00"})
    )
    experiments.start("e2", arms(), url=url, replace=True, plan=PLAN)
    sql(url, "UPDATE experiments SET started_at = %s WHERE experiment_id = 'e2'", (STARTED,))
    progress = experiments.status("e2", url)["progress"]
    planned = sample_size(PLAN)[0]
    assert progress["A"] == {"users": 2, "planned_users": planned, "share_of_plan": 2 / planned}
    assert progress["B"]["users"] == 2
    sql(
        url,
        "UPDATE experiments SET started_at = %s WHERE experiment_id = 'e2'",
        (STARTED.replace(hour=2),),
    )
    assert experiment_outcomes.users_so_far(experiments.describe("e2", url)) == {}


def test_report_from_the_lake_matches_the_hand_worked_outcomes(url, spark, tmp_path, monkeypatch):
    monkeypatch.setenv("RECS_VAR_DIR", str(tmp_path))
    snapshots, batches = build_lake(tmp_path / "lake")
    (batches[0] / "manifest.json").write_text(
        json.dumps({"batch_id": "p000001", "max_event_time": "2026-03-01T01:00:00+00:00"})
    )
    sql(
        url,
        "INSERT INTO snapshots (snapshot_id, topic, status, path, offsets, row_counts, manifest) "
        "VALUES ('s000001', 't', 'accepted', %s, '{}', '{}', '{}')",
        (str(snapshots[0]),),
    )
    experiments.start("e3", arms(), url=url, replace=True, plan=PLAN)
    sql(url, "UPDATE experiments SET started_at = %s WHERE experiment_id = 'e3'", (STARTED,))

    out = pipeline.experiment_report("e3", 60, url)
    assert out == str(tmp_path / "reports" / "experiments" / "e3")
    report = json.loads((tmp_path / "reports/experiments/e3/report.json").read_text())
    got = {
        v: (s["users"], s["requests"], s["lists"], s["hits"])
        for v, s in report["analysis"]["variants"].items()
    }
    assert got == {"A": (2, 3, 2, 2), "B": (2, 4, 4, 2)}
    assert report["data"]["dropped_users"] == 0
    assert report["analysis"]["peeking"] is True
    comparison = report["analysis"]["comparisons"]["B"]
    assert comparison["primary"]["method"] == "bootstrap"  # 2 users per arm
    assert comparison["verdict"].startswith("Peeking")
    page = (tmp_path / "reports/experiments/e3/report.html").read_text()
    assert "Peeking" in page and 'src="rates.png"' in page
    assert (tmp_path / "reports/experiments/e3/sequential.png").stat().st_size > 1000
