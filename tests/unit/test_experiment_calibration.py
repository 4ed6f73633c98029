"""Calibration of the experiment analysis (fast version of benchmarks/bench_experiment_calibration).

200 A/A experiments and 200 with the plan's minimum effect injected, each drawn with its own
seed from the simulated world's users (simulator/outcomes.py: long-tailed request counts,
per-user hit propensities from hidden tastes) at the planned sample size, each analysed by
`analyse`, the function the report calls.
"""

from __future__ import annotations

import pytest

from benchmarks.experiment_calibration import calibrate
from jobs.online.experiment_analysis import Plan, sample_size
from simulator.outcomes import UserPool
from simulator.world import Scale, World

pytestmark = pytest.mark.unit

RUNS = 200
ALPHA = 0.05
PLAN = Plan(baseline_rate=0.3, min_effect=0.05, alpha=ALPHA, power=0.8)


@pytest.fixture(scope="module")
def pool() -> UserPool:
    return UserPool.from_world(World(Scale(users=20_000, movies=1_000), seed=11), base_rate=0.3)


def test_the_pool_has_the_planned_baseline_and_heterogeneous_users(pool):
    assert pool.expected_rate() == pytest.approx(PLAN.baseline_rate, abs=1e-9)
    assert pool.expected_rate(pool.shift_for(PLAN.min_effect)) == pytest.approx(0.35, abs=1e-9)
    frame = pool.draw({"a": (5000, 0.0)}, seed=1)
    assert frame["requests"].quantile(0.9) >= 3 * frame["requests"].median()  # long tail
    assert (frame["hits"] <= frame["lists"]).all() and (frame["lists"] <= frame["requests"]).all()


def test_aa_false_positive_rate_and_uniform_p_values(pool):
    result = calibrate(pool, PLAN, RUNS, effect=0.0, first_seed=0)
    assert result.planned_users == sample_size(PLAN)
    rate, low, high = result.rate_interval(ALPHA)
    assert low <= ALPHA <= high, f"A/A false-positive rate {rate} [{low}, {high}]"
    assert result.ks_uniform() > 0.01
    assert result.methods == {"z-test"}
    assert result.sequential_rate(ALPHA) <= ALPHA + 0.02  # always-valid: never above α (noise)


def test_detection_rate_matches_the_planned_power(pool):
    result = calibrate(pool, PLAN, RUNS, effect=PLAN.min_effect, first_seed=10_000)
    rate, low, high = result.rate_interval(ALPHA)
    assert low <= PLAN.power <= high, f"detection rate {rate} [{low}, {high}]"
