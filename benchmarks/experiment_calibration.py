"""Calibration of the experiment analysis on simulated outcome logs (simulator/outcomes.py); a
harness for the benchmark and its fast test (the simulator itself never imports jobs/).

Each run draws one experiment with its own seed at the planned sample size and passes it to
`jobs.online.experiment_analysis.analyse`, the function the report calls, and keeps the
primary p-value and the always-valid (mSPRT) p-value of the treatment. With no injected
effect (A/A: the same model in both arms) the rejection rate at α must be α within its
binomial interval and the p-values uniform; with the planned minimum effect injected, the
detection rate must be the planned power within its interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from jobs.online.experiment_analysis import Plan, analyse, sample_size
from simulator.outcomes import UserPool

CONTROL, TREATMENT = "a", "b"


@dataclass
class Calibration:
    """The outcome of `runs` simulated analyses with one injected effect."""

    effect: float
    planned_users: tuple[int, int]
    p_values: list[float] = field(default_factory=list)
    sequential_p: list[float] = field(default_factory=list)
    methods: set[str] = field(default_factory=set)

    @property
    def runs(self) -> int:
        return len(self.p_values)

    def rejections(self, alpha: float) -> int:
        return int(np.count_nonzero(np.asarray(self.p_values) <= alpha))

    def rate_interval(self, alpha: float, level: float = 0.95) -> tuple[float, float, float]:
        """Rejection rate at α and its Clopper-Pearson interval."""
        k = self.rejections(alpha)
        ci = stats.binomtest(k, self.runs).proportion_ci(level, method="exact")
        return k / self.runs, float(ci.low), float(ci.high)

    def ks_uniform(self) -> float:
        """p-value of the Kolmogorov-Smirnov test of the p-values against uniform(0, 1)."""
        return float(stats.kstest(self.p_values, "uniform").pvalue)

    def sequential_rate(self, alpha: float) -> float:
        return float(np.mean(np.asarray(self.sequential_p) <= alpha))


def calibrate(
    pool: UserPool,
    plan: Plan,
    runs: int,
    effect: float = 0.0,
    first_seed: int = 0,
    n_boot: int = 200,
) -> Calibration:
    """`runs` analyses of experiments at the planned size, `effect` injected in the treatment.

    `n_boot` only sets the bootstrap of the secondary intervals: the primary p-value is the
    z-test's at these sizes (the analysis records the method it used in `methods`).
    """
    n_control, n_treatment = sample_size(plan)
    shift = pool.shift_for(effect) if effect else 0.0
    result = Calibration(effect, (n_control, n_treatment))
    planned = {CONTROL: n_control, TREATMENT: n_treatment}
    for seed in range(first_seed, first_seed + runs):
        outcomes = pool.draw({CONTROL: (n_control, 0.0), TREATMENT: (n_treatment, shift)}, seed)
        report = analyse(outcomes, plan, planned, CONTROL, n_boot=n_boot, seed=seed)
        comparison = report["comparisons"][TREATMENT]
        result.p_values.append(comparison["primary"]["p_value"])
        result.sequential_p.append(comparison["sequential"]["p_value"])
        result.methods.add(comparison["primary"]["method"])
    return result
