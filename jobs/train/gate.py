"""The publishing gate: paired bootstrap intervals over test users, not bare means.

Every model of a run is scored on the SAME test units (the (fold, user) pairs of the dataset's
evaluation protocol), so candidate, popularity baseline and the production configuration
(retrained on this dataset) can be compared user by user. For a difference of NDCG@20 means,
the interval is a cluster bootstrap over users: resample users with replacement (all of a
user's folds go together), recompute the mean difference, take the 2.5 and 97.5 percentiles.

Rules, in order (the first that fails decides):
1. the candidate has per-user scores, and at least `min_users` distinct test users
   (GATE_MIN_USERS, default 100): with fewer, no interval is trusted and production stays;
2. it beats popularity: the interval of (candidate - popularity) lies wholly above 0;
3. if a production model exists, it is non-inferior to the production configuration: the
   interval's lower bound of (candidate - production) is at least -tolerance x production's
   mean (GATE_NDCG_TOLERANCE, default 0.05, relative because NDCG levels differ tenfold
   between data sets).
4. fairness (docs/responsible-ml.md): the candidate's NDCG@20 by age band, gender and history
   band (jobs.online.fairness.gate_fairness) is always recorded in the decision; with
   FAIRNESS_GATE=block (default `record`) a violated requirement rejects a candidate that passed
   rules 1-3.
A rejected candidate changes nothing, except that when no model is in production yet the
popularity baseline is published as the model for everyone (`publish` names what to refit
and publish: the candidate, the baseline, or nothing).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from contracts import settings
from contracts.names import METRIC, USER_COL

log = logging.getLogger(__name__)

SCORE_COL = "ndcg"
FOLD_COL = "fold"
DEFAULT_TOLERANCE = 0.05  # unit-test default; the pipeline reads contracts.settings
DEFAULT_MIN_USERS = 100
RESAMPLES = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean difference with its bootstrap confidence interval."""

    estimate: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.estimate:+.4f} [{self.low:+.4f}, {self.high:+.4f}]"


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict on one candidate, with every number it was based on."""

    candidate: str
    passed: bool
    reason: str
    publish: str | None  # the version to refit and publish (None: production stays)
    metric: str
    users: int
    test_units: int
    candidate_score: float
    popularity: str
    popularity_score: float
    vs_popularity: Interval | None
    production: str | None
    production_score: float | None
    vs_production: Interval | None
    tolerance: float
    min_users: int
    confidence: float = CONFIDENCE
    fairness: dict | None = None  # quality by group and the violated requirements (rule 4)
    fairness_mode: str = "record"  # FAIRNESS_GATE: record | block

    def to_json(self) -> str:
        """JSON (for logs, task output, the run directory and the registry)."""
        return json.dumps(asdict(self), sort_keys=True)


def tolerance_from_env() -> float:
    """The relative tolerance from GATE_NDCG_TOLERANCE (contracts.settings), validated."""
    return check_tolerance(settings.gate_tolerance())


def min_users_from_env() -> int:
    """The minimum number of test users from GATE_MIN_USERS (contracts.settings), validated."""
    value = settings.gate_min_users()
    if value < 1:
        raise ValueError(f"GATE_MIN_USERS must be a positive integer, got {value}")
    return value


def check_tolerance(tolerance: float) -> float:
    """`tolerance` if it is a fraction in [0, 1), else ValueError saying why."""
    if not (isinstance(tolerance, int | float) and 0.0 <= tolerance < 1.0):
        raise ValueError(f"gate tolerance must be a fraction in [0, 1), got {tolerance!r}")
    return float(tolerance)


def paired(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Per test unit (fold, user): the two models' scores side by side (`a`, `b`)."""
    keys = [FOLD_COL, USER_COL]
    left = a[keys + [SCORE_COL]].rename(columns={SCORE_COL: "a"})
    right = b[keys + [SCORE_COL]].rename(columns={SCORE_COL: "b"})
    both = left.merge(right, on=keys, how="inner")
    if len(both) != len(left) or len(both) != len(right):
        raise ValueError(
            f"the two models were scored on different test units ({len(left)} vs {len(right)}, "
            f"{len(both)} shared): compare models of the same dataset only"
        )
    return both


def bootstrap_difference(
    frame: pd.DataFrame,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """Mean of (a - b) over test units, with a cluster bootstrap interval over users."""
    codes, _ = pd.factorize(frame[USER_COL])
    diff = frame["a"].to_numpy(np.float64) - frame["b"].to_numpy(np.float64)
    per_user_sum = np.bincount(codes, weights=diff)
    per_user_n = np.bincount(codes).astype(np.float64)
    n_users = len(per_user_n)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    step = max(1, 4_000_000 // max(n_users, 1))  # bounded memory: resamples in chunks
    for start in range(0, resamples, step):
        rows = min(step, resamples - start)
        pick = rng.integers(0, n_users, size=(rows, n_users))
        means[start : start + rows] = per_user_sum[pick].sum(1) / per_user_n[pick].sum(1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(float(diff.mean()), float(low), float(high))


def mean_score(per_user: pd.DataFrame | None) -> float:
    """The model's metric: the mean over its test units (nan without any)."""
    if per_user is None or per_user.empty:
        return math.nan
    return float(per_user[SCORE_COL].mean())


def decide(
    candidate: str,
    candidate_scores: pd.DataFrame | None,
    popularity: str,
    popularity_scores: pd.DataFrame,
    production: str | None = None,
    production_scores: pd.DataFrame | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    min_users: int = DEFAULT_MIN_USERS,
    seed: int = 0,
    fairness_mode: str = "record",
) -> GateDecision:
    """Apply the rules of the module docstring; the reason names the numbers that decided."""
    from jobs.online.fairness import gate_fairness

    fairness_mode = check_fairness_mode(fairness_mode)

    has_scores = candidate_scores is not None and not candidate_scores.empty
    numbers = {
        "candidate": candidate,
        "metric": METRIC,
        "users": int(candidate_scores[USER_COL].nunique()) if has_scores else 0,
        "test_units": int(len(candidate_scores)) if has_scores else 0,
        "candidate_score": mean_score(candidate_scores),
        "popularity": popularity,
        "popularity_score": mean_score(popularity_scores),
        "vs_popularity": None,
        "production": production,
        "production_score": mean_score(production_scores) if production else None,
        "vs_production": None,
        "tolerance": check_tolerance(tolerance),
        "min_users": min_users,
    }
    if not has_scores:
        passed, reason = False, f"{candidate} has no per-user {METRIC} on this dataset"
    else:
        compare_production = production not in (None, candidate) and production_scores is not None
        passed, reason = judge(
            numbers, candidate_scores, popularity_scores,
            production_scores if compare_production else None, seed,
        )  # fmt: skip
    fairness = gate_fairness(candidate_scores) if has_scores else None
    if passed and fairness_mode == "block" and fairness and fairness["violations"]:
        passed, reason = False, "fairness: " + "; ".join(fairness["violations"])
    elif fairness and fairness["violations"]:
        reason += f"; fairness recorded, not blocking: {'; '.join(fairness['violations'])}"
    publish = candidate if passed else (popularity if production is None else None)
    if not passed and publish:
        reason += "; no model in production yet: the popularity list is published"
    return GateDecision(
        passed=passed,
        reason=reason,
        publish=publish,
        fairness=fairness,
        fairness_mode=fairness_mode,
        **numbers,
    )


def check_fairness_mode(mode: str) -> str:
    """`mode` if it is record or block, else ValueError."""
    if mode not in ("record", "block"):
        raise ValueError(f"fairness mode must be 'record' or 'block', got {mode!r}")
    return mode


def judge(
    numbers: dict,
    candidate_scores: pd.DataFrame,
    popularity_scores: pd.DataFrame,
    production_scores: pd.DataFrame | None,
    seed: int,
) -> tuple[bool, str]:
    """(passed, reason) by rules 1-3; the intervals are recorded in `numbers` on the way."""
    users, min_users = numbers["users"], numbers["min_users"]
    if users < min_users:
        return (
            False,
            f"only {users} test users (< {min_users}): too few to decide, production stays",
        )
    vs_pop = bootstrap_difference(paired(candidate_scores, popularity_scores), seed=seed)
    numbers["vs_popularity"] = vs_pop
    if vs_pop.low <= 0.0:
        return False, (
            f"{METRIC} minus popularity {vs_pop} over {users} users: the interval does not "
            "lie above 0"
        )
    if production_scores is None:
        return True, f"{METRIC} minus popularity {vs_pop} over {users} users; no production model"
    vs_prod = bootstrap_difference(paired(candidate_scores, production_scores), seed=seed)
    numbers["vs_production"] = vs_prod
    prod_score, tolerance = numbers["production_score"], numbers["tolerance"]
    margin = tolerance * prod_score
    if vs_prod.low < -margin:
        return False, (
            f"{METRIC} minus production {numbers['production']} {vs_prod} over {users} users: "
            f"lower bound below -{margin:.4f} ({tolerance:.0%} of production's {prod_score:.4f})"
        )
    return True, (
        f"{METRIC} minus popularity {vs_pop}; minus production {vs_prod}, within "
        f"-{margin:.4f}; {users} users"
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m jobs.train.gate --candidate FILE --popularity FILE [--production FILE]`: per-user
    score Parquet files (as jobs.train.train writes them); prints the decision, exit 1 on reject."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--candidate", required=True)
    parser.add_argument("--popularity", required=True)
    parser.add_argument("--production")
    parser.add_argument("--tolerance", type=float, default=None)
    parser.add_argument("--min-users", type=int, default=None)
    args = parser.parse_args(argv)
    decision = decide(
        args.candidate,
        pd.read_parquet(args.candidate),
        args.popularity,
        pd.read_parquet(args.popularity),
        args.production,
        pd.read_parquet(args.production) if args.production else None,
        tolerance_from_env() if args.tolerance is None else args.tolerance,
        min_users_from_env() if args.min_users is None else args.min_users,
    )
    print(decision.to_json())
    return 0 if decision.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
