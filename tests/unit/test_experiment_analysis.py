"""Experiment statistics against hand-worked or textbook answers (jobs/online/experiment_analysis).

- Sample size, 30 % vs 40 %, α 0.05 two-sided, power 0.8, equal arms: 356 per arm (Fleiss'
  formula without continuity correction, as printed in the usual tables); at 356 per arm the
  power is 0.80.
- z-test, 45/100 vs 60/100: pooled 0.525, se0 = sqrt(0.525 x 0.475 x 0.02) = 0.07062,
  z = 0.15 / 0.07062 = 2.124, two-sided p = 0.0337.
- mSPRT, difference 2, variance 1, tau 1: log Λ = ½ ln(½) + 4 / (2 x 1 x 2) = 0.6534, Λ = 1.922.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jobs.online import experiment_analysis as ea
from jobs.publish.experiments import VariantSpec, planned_users

pytestmark = pytest.mark.unit


def test_sample_size_and_power_match_the_textbook():
    assert ea.sample_size(ea.Plan(0.3, 0.1)) == (356, 356)
    assert ea.power(0.3, 0.4, 356, 356) == pytest.approx(0.80, abs=0.005)
    # Twice the users in treatment: the control needs fewer, the total more than 712.
    control, treatment = ea.sample_size(ea.Plan(0.3, 0.1), ratio=2.0)
    assert treatment == 2 * control and control + treatment > 712
    assert ea.power(0.3, 0.3, 1000, 1000) == pytest.approx(0.05, abs=1e-9)  # no effect: α
    with pytest.raises(ValueError):
        ea.sample_size(ea.Plan(0.95, 0.1))


def test_z_test_and_msprt_hand_worked():
    result = ea.z_test(45, 100, 60, 100)
    assert result["z"] == pytest.approx(2.124, abs=1e-3)
    assert result["p_value"] == pytest.approx(0.0337, abs=1e-4)
    assert result["low"] < 0.15 < result["high"]
    assert ea.msprt_lambda(2.0, 1.0, 1.0) == pytest.approx(1.922, abs=1e-3)
    assert ea.msprt_lambda(0.0, 1.0, 1.0) < 1  # no difference: evidence for the null


def test_planned_users_compare_every_variant_with_the_first():
    plan = ea.Plan(0.3, 0.1)
    even = planned_users([VariantSpec("a", "v1", 0.5), VariantSpec("b", "v2", 0.5)], plan)
    assert even == {"a": 356, "b": 356}
    three = planned_users(
        [VariantSpec("a", "v1", 0.5), VariantSpec("b", "v2", 0.25), VariantSpec("c", "v3", 0.25)],
        plan,
    )
    assert three["b"] == three["c"] == ea.sample_size(plan, ratio=0.5)[1]
    assert three["a"] == ea.sample_size(plan, ratio=0.5)[0]


def outcomes(rows: list[tuple[str, int, int]]) -> pd.DataFrame:
    """(variant, lists, hits) per user; requests = lists + 1 error line."""
    return pd.DataFrame(
        {
            "user_id": range(1, len(rows) + 1),
            "variant": [r[0] for r in rows],
            "requests": [r[1] + 1 for r in rows],
            "lists": [r[1] for r in rows],
            "hits": [r[2] for r in rows],
            "first_seen": pd.date_range("2026-01-01", periods=len(rows), freq="min"),
        }
    )


def test_per_variant_counts_and_the_clustered_accuracy_interval():
    # a: 100 users, 10 lists each; 10 users hit every list, 90 never: accuracy 0.1 but only
    # 10 independent "successes". A list-level Wilson interval would treat 1000 lists as
    # independent and be about three times too narrow.
    rows = [("a", 10, 10)] * 10 + [("a", 10, 0)] * 90 + [("b", 10, 1)] * 100
    report = ea.analyse(outcomes(rows), n_boot=2000, seed=1)
    a, b = report["variants"]["a"], report["variants"]["b"]
    assert (a["users"], a["requests"], a["lists"], a["hits"]) == (100, 1100, 1000, 100)
    assert (b["users"], b["users_with_hit"], b["user_hit_rate"]) == (100, 100, 1.0)
    assert a["online_accuracy"] == b["online_accuracy"] == 0.1
    from jobs.online.evaluate import wilson

    naive = wilson(100, 1000)
    clustered = a["online_accuracy_ci"]
    assert clustered[1] - clustered[0] > 2.5 * (naive[1] - naive[0])
    assert b["online_accuracy_ci"] == [0.1, 0.1]  # every b user has the same ratio
    diff = report["comparisons"]["b"]["online_accuracy"]
    assert diff["difference"] == pytest.approx(0.0) and diff["p_value"] > 0.5


def test_small_arms_use_the_bootstrap_and_a_clear_difference_is_found():
    # 12 users per arm, pooled rate 0.5: 6 expected hits per arm, fewer than 10.
    rows = [("a", 3, 0)] * 11 + [("a", 3, 1)] + [("b", 3, 1)] * 11 + [("b", 3, 0)]
    comparison = ea.analyse(outcomes(rows), n_boot=2000, seed=2)["comparisons"]["b"]
    assert comparison["user_hit_rate"]["z_test_holds"] is False
    assert comparison["primary"]["method"] == "bootstrap"
    assert comparison["primary"]["p_value"] < 0.01
    assert comparison["verdict"].startswith("The data support a higher user hit rate for b")


def test_reading_before_the_plan_is_peeking_with_an_always_valid_verdict():
    rng = np.random.default_rng(3)
    rows = [("a", 2, int(rng.random() < 0.3)) for _ in range(400)]
    rows += [("b", 2, int(rng.random() < 0.3)) for _ in range(400)]
    plan = ea.Plan(0.3, 0.05)
    report = ea.analyse(outcomes(rows), plan, {"a": 1400, "b": 1400}, "a", n_boot=200)
    assert report["peeking"] is True
    assert report["variants"]["a"]["progress"] == pytest.approx(400 / 1400)
    comparison = report["comparisons"]["b"]
    assert comparison["verdict"].startswith("Peeking")
    path = comparison["sequential"]["path"]
    assert [p["p_value"] for p in path] == sorted((p["p_value"] for p in path), reverse=True)
    assert comparison["sequential"]["p_value"] == path[-1]["p_value"]
    full = ea.analyse(outcomes(rows), plan, {"a": 400, "b": 400}, "a", n_boot=200)
    assert full["peeking"] is False and not full["comparisons"]["b"]["verdict"].startswith("Peek")


def test_one_variant_is_not_an_experiment():
    with pytest.raises(ValueError, match="two variants"):
        ea.analyse(outcomes([("a", 1, 1)] * 5))
