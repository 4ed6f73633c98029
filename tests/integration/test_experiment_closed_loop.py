"""The closed-loop experiment demonstration, reduced (benchmarks/bench_experiment_closed_loop.py
runs the full one, with production against popularity too). Each experiment gets its own
private platform on the small simulated world: a fresh topic, a throwaway Postgres, a private
RECS_VAR_DIR, and real gunicorn. It runs one simulated day of live users in closed loop, then
ingests its stream and prediction log, and jobs.pipeline.experiment_report writes its report.

1. Production (item_knn) against random lists. The simulator's ground truth serves the same
   users on the same day each arm's lists. It says random lists lose about 17 points of user
   hit rate. The plan is sized for 60% of that, and the report detects it.
2. An A/A on the production version: the report finds no significant difference.

World seed and hash salts are fixed, so the run is reproducible. This test checks one draw.
How often such a test detects, or an A/A rejects, is the calibration's claim
(docs/experiments.md), not this test's.
"""

from __future__ import annotations

import pytest

from benchmarks import bench_experiment_closed_loop as demo

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def results(kafka, tmp_path_factory):
    """Both experiments' results (the benchmark's dicts), by name."""
    config = demo.CONFIGS["small"]
    work = tmp_path_factory.mktemp("experiment-loop")
    done = demo.demonstrate(config, work, ("prod-vs-random", "a-a"))
    demo.print_table(done)  # shown with -s
    return {r["name"]: r for r in done}


def test_the_report_detects_the_difference_the_ground_truth_says_exists(results):
    r = results["prod-vs-random"]
    truth, analysis = r["truth"], r["analysis"]
    assert r["plan_basis"] == "truth" and truth["difference"] < -0.1
    assert r["plan"]["min_effect"] == pytest.approx(0.6 * truth["difference"], abs=1e-3)
    for arm, users in r["progress"].items():
        assert users >= r["planned_users"][arm]  # the plan is reached: no peeking
        measured = analysis["variants"][arm]
        assert measured["users"] == truth["assigned"][arm]["users"]
        # the same users, day and draws as the truth's: the measurement matches it
        assert measured["user_hit_rate"] == pytest.approx(
            truth["assigned"][arm]["user_hit_rate"], abs=0.03
        )
    assert not analysis["peeking"]
    comparison = analysis["comparisons"]["b"]
    primary = comparison["primary"]
    assert primary["method"] == "z-test" and primary["p_value"] < 0.001
    assert primary["low"] <= truth["difference"] <= primary["high"] < 0
    assert comparison["verdict"].startswith("The data support a lower user hit rate for b")
    assert sorted(p.name for p in demo.Path(r["report_dir"]).glob("*.png")) == [
        "rates.png",
        "sequential.png",
    ]


def test_the_a_a_finds_no_difference(results):
    r = results["a-a"]
    analysis = r["analysis"]
    assert r["arms"]["a"] == r["arms"]["b"] and r["truth"]["difference"] == 0
    assert r["plan_basis"] == "capacity"
    assert all(users >= r["planned_users"][a] for a, users in r["progress"].items())
    assert not analysis["peeking"]
    comparison = analysis["comparisons"]["b"]
    assert comparison["primary"]["p_value"] > 0.05
    assert comparison["sequential"]["p_value"] > 0.05
    assert comparison["verdict"].startswith("The data do not support a difference")
