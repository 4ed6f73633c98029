"""The publishing gate: a candidate must beat popularity and stay close to production on NDCG@20.

Both comparisons use scores measured on the SAME held-out split (the evaluation step scores
the candidate, the popularity baseline and the current production model on this run's
dataset), never a number remembered from an older dataset.

Rules, in order:
1. the candidate's NDCG@20 must be a finite number;
2. it must be strictly above the popularity baseline's;
3. if a production model exists, it must not be more than `tolerance` (relative) below the
   production model's: candidate >= production * (1 - tolerance).

Tolerance is relative (default 0.05 = 5 %), because NDCG@20 levels differ a lot between data
sets (0.02 on sparse real logs, 0.3 on dense simulations), so an absolute margin would be
either meaningless or prohibitive. It comes from `GATE_NDCG_TOLERANCE` or the DAG param.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from dataclasses import asdict, dataclass

log = logging.getLogger(__name__)

METRIC = "ndcg@20"
DEFAULT_TOLERANCE = 0.05
TOLERANCE_ENV = "GATE_NDCG_TOLERANCE"


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict on one candidate, with every number it was based on."""

    candidate: str
    passed: bool
    reason: str
    metric: str
    candidate_score: float
    popularity_score: float
    production: str | None
    production_score: float | None
    tolerance: float

    def to_json(self) -> str:
        """One-line JSON (for logs, task output and the registry)."""
        return json.dumps(asdict(self), sort_keys=True)


def tolerance_from_env() -> float:
    """The relative tolerance from GATE_NDCG_TOLERANCE (default 0.05), validated."""
    raw = os.environ.get(TOLERANCE_ENV)
    return check_tolerance(float(raw) if raw else DEFAULT_TOLERANCE)


def check_tolerance(tolerance: float) -> float:
    """`tolerance` if it is a fraction in [0, 1), else ValueError saying why."""
    if not (isinstance(tolerance, int | float) and 0.0 <= tolerance < 1.0):
        raise ValueError(f"gate tolerance must be a fraction in [0, 1), got {tolerance!r}")
    return float(tolerance)


def decide(
    candidate: str,
    candidate_score: float,
    popularity_score: float,
    production: str | None = None,
    production_score: float | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    metric: str = METRIC,
) -> GateDecision:
    """Apply the three rules; the reason names the numbers that decided."""
    tolerance = check_tolerance(tolerance)

    def verdict(passed: bool, reason: str) -> GateDecision:
        return GateDecision(
            candidate=candidate,
            passed=passed,
            reason=reason,
            metric=metric,
            candidate_score=float(candidate_score),
            popularity_score=float(popularity_score),
            production=production,
            production_score=None if production_score is None else float(production_score),
            tolerance=tolerance,
        )

    if candidate_score is None or not math.isfinite(candidate_score):
        return verdict(False, f"{metric} of {candidate} is not a number ({candidate_score})")
    if popularity_score is None or not math.isfinite(popularity_score):
        return verdict(False, f"{metric} of the popularity baseline is missing")
    if candidate_score <= popularity_score:
        return verdict(
            False,
            f"{metric} {candidate_score:.4f} does not beat popularity {popularity_score:.4f}",
        )
    if production is None or production == candidate:
        return verdict(
            True,
            f"{metric} {candidate_score:.4f} beats popularity {popularity_score:.4f}; "
            "no production model to compare with",
        )
    if production_score is None or not math.isfinite(production_score):
        return verdict(False, f"{metric} of production model {production} was not measured")
    floor = production_score * (1.0 - tolerance)
    if candidate_score < floor:
        return verdict(
            False,
            f"{metric} {candidate_score:.4f} is more than {tolerance:.0%} below production "
            f"{production} ({production_score:.4f}; floor {floor:.4f})",
        )
    return verdict(
        True,
        f"{metric} {candidate_score:.4f} beats popularity {popularity_score:.4f} and is within "
        f"{tolerance:.0%} of production {production} ({production_score:.4f})",
    )


def decide_from_scores(
    candidate: str,
    scores: dict[str, float],
    popularity: str,
    production: str | None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> GateDecision:
    """decide() from one {model_version: ndcg@20} mapping measured on the same held-out split."""
    if popularity not in scores:
        raise ValueError(f"no {METRIC} for the popularity baseline {popularity!r}")
    if candidate not in scores:
        raise ValueError(f"no {METRIC} for candidate {candidate!r}")
    return decide(
        candidate,
        scores[candidate],
        scores[popularity],
        production,
        scores.get(production) if production is not None else None,
        tolerance,
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m jobs.gate --scores FILE.json --candidate V --popularity V [--production V]`."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--scores", required=True, help="JSON {model_version: ndcg@20}")
    parser.add_argument("--candidate", required=True)
    parser.add_argument("--popularity", required=True)
    parser.add_argument("--production")
    parser.add_argument("--tolerance", type=float, default=None)
    args = parser.parse_args(argv)
    with open(args.scores) as fh:
        scores = json.load(fh)
    tolerance = tolerance_from_env() if args.tolerance is None else args.tolerance
    decision = decide_from_scores(
        args.candidate, scores, args.popularity, args.production, tolerance
    )
    print(decision.to_json())
    return 0 if decision.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
