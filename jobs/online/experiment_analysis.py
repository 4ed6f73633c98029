"""A/B experiment statistics on a user-level outcome table (pure numpy/scipy, no services).

The unit of randomisation is the user (serving/ab.py hashes user ids), so the unit of analysis
is the user too. One row per (user, variant): `requests` (stream lines attributed to the
variant), `lists` (served lists), `hits` (lists followed by a watch of a listed movie within the
window, jobs/online/evaluate.py), `first_seen` (event time of the user's first line, for the
sequential reading). Two metrics per variant:

- **user hit rate** (the primary metric, the one the plan is sized on): the share of users
  with at least one hit. Users are independent Bernoulli trials, so the two-proportion z-test
  holds once every arm has at least `MIN_EXPECTED` expected hits and misses; below that the
  cluster bootstrap over users gives the p-value instead.
- **online accuracy** (hits / lists, as online_metrics defines it): lists of one user are not
  independent (a user who likes the model hits again), so a z-test over lists would understate
  the variance. Its intervals and its difference always come from the cluster bootstrap over
  users (resample whole users, recompute the ratio).

A report read before every arm reached its planned users is "peeking": a fixed-horizon p-value
read repeatedly rejects far more often than α. The always-valid alternative is the mixture
sequential probability ratio test (mSPRT, Johari et al. 2017, normal approximation for two
proportions) computed at checkpoints in the order users arrived; its p-value is the running
minimum of 1/Λ and may be read at any time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from contracts.names import (
    FIRST_SEEN_COL,
    HITS_COL,
    LISTS_COL,
    REQUESTS_COL,
    USER_COL,
    VARIANT_COL,
)

OUTCOME_COLUMNS = (USER_COL, VARIANT_COL, REQUESTS_COL, LISTS_COL, HITS_COL, FIRST_SEEN_COL)

ALPHA = 0.05
POWER = 0.8
N_BOOT = 2000
MIN_EXPECTED = 10  # expected hits and misses per arm under the null for the z-test to hold
CHECKPOINTS = 20  # looks of the sequential test, at equal shares of the users in arrival order
BOOT_CHUNK = 200  # bootstrap replicates drawn at once (bounds memory at ~chunk x users)


@dataclass(frozen=True)
class Plan:
    """What an experiment was sized for: baseline user hit rate, minimum effect, α, power."""

    baseline_rate: float
    min_effect: float  # absolute difference in user hit rate worth detecting
    alpha: float = ALPHA
    power: float = POWER


# ------------------------------------------------------------------ planning and power
def _z(q: float) -> float:
    return float(stats.norm.ppf(q))


def sample_size(plan: Plan, ratio: float = 1.0) -> tuple[int, int]:
    """Users needed in (control, treatment) for a two-sided two-proportion z-test; `ratio` =
    treatment users / control users (the shares' ratio)."""
    p1 = plan.baseline_rate
    p2 = p1 + plan.min_effect
    if not (0 < p1 < 1 and 0 < p2 < 1 and plan.min_effect != 0):
        raise ValueError(f"baseline {p1} and baseline + effect {p2} must lie strictly in 0..1")
    pbar = (p1 + ratio * p2) / (1 + ratio)
    null_sd = math.sqrt(pbar * (1 - pbar) * (1 + 1 / ratio))
    alt_sd = math.sqrt(p1 * (1 - p1) + p2 * (1 - p2) / ratio)
    z_a, z_b = _z(1 - plan.alpha / 2), _z(plan.power)
    n1 = math.ceil(((z_a * null_sd + z_b * alt_sd) / plan.min_effect) ** 2)
    return n1, math.ceil(ratio * n1)


def power(p1: float, p2: float, n1: int, n2: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided pooled two-proportion z-test for true rates p1, p2 (the inverse
    of `sample_size`: the same null and alternative standard errors)."""
    if n1 <= 0 or n2 <= 0 or not (0 <= p1 <= 1 and 0 <= p2 <= 1):
        return math.nan
    pbar = (n1 * p1 + n2 * p2) / (n1 + n2)
    se0 = math.sqrt(pbar * (1 - pbar) * (1 / n1 + 1 / n2))
    se1 = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    if se1 == 0:
        return 1.0 if p1 != p2 else alpha
    z_a, delta = _z(1 - alpha / 2), abs(p2 - p1)
    return float(
        stats.norm.cdf((delta - z_a * se0) / se1) + stats.norm.cdf((-delta - z_a * se0) / se1)
    )


# ------------------------------------------------------------------ fixed-horizon tests
def z_test(x1: int, n1: int, x2: int, n2: int) -> dict[str, float]:
    """Pooled two-proportion z-test of rate2 - rate1; with the unpooled 95% interval."""
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    diff = p2 - p1
    z = diff / se0 if se0 > 0 else 0.0
    se1 = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    half = _z(0.975) * se1
    return {
        "difference": diff,
        "low": diff - half,
        "high": diff + half,
        "z": z,
        "p_value": float(2 * stats.norm.sf(abs(z))),
    }


def z_test_holds(x1: int, n1: int, x2: int, n2: int) -> bool:
    """Whether every arm expects at least MIN_EXPECTED hits and misses under the null."""
    pooled = (x1 + x2) / (n1 + n2)
    return min(n1, n2) * min(pooled, 1 - pooled) >= MIN_EXPECTED


def _arm_arrays(frame: pd.DataFrame) -> np.ndarray:
    """(users, 3) float: hit-or-not, hits, lists per user."""
    hits = frame[HITS_COL].to_numpy(dtype=np.float64)
    return np.column_stack([hits > 0, hits, frame[LISTS_COL].to_numpy(dtype=np.float64)])


def bootstrap_sums(arm: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, 3) column sums of `arm` over users resampled with replacement (the cluster
    bootstrap: a resampled user brings all of their lists)."""
    n = len(arm)
    out = np.empty((n_boot, arm.shape[1]))
    for start in range(0, n_boot, BOOT_CHUNK):
        size = min(BOOT_CHUNK, n_boot - start)
        idx = rng.integers(0, n, (size, n))
        out[start : start + size] = arm[idx].sum(axis=1)
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _boot_test(estimate: float, replicates: np.ndarray) -> dict[str, float]:
    """Percentile 95% interval and the two-sided p-value of the shifted bootstrap (replicates
    centred on the estimate stand in for the null distribution)."""
    reps = replicates[np.isfinite(replicates)]
    low, high = np.quantile(reps, [0.025, 0.975])
    extreme = np.count_nonzero(np.abs(reps - estimate) >= abs(estimate))
    return {
        "difference": estimate,
        "low": float(low),
        "high": float(high),
        "p_value": (extreme + 1) / (len(reps) + 1),
    }


# ------------------------------------------------------------------ sequential (mSPRT)
def msprt_lambda(diff: float, variance: float, tau: float) -> float:
    """Mixture likelihood ratio of a normal estimate `diff` (variance `variance`) under a
    N(0, tau²) mixture of alternatives against the null of no difference."""
    if variance <= 0:
        return 1.0
    t2 = tau * tau
    log_l = 0.5 * math.log(variance / (variance + t2)) + diff * diff * t2 / (
        2 * variance * (variance + t2)
    )
    return math.exp(min(log_l, 700.0))


def always_valid_p(control: pd.DataFrame, treatment: pd.DataFrame, tau: float) -> dict[str, Any]:
    """mSPRT p-values of the user hit rate at CHECKPOINTS looks (users in order of
    `first_seen`); the always-valid p-value is their running minimum."""
    both = pd.concat(
        [control.assign(_arm=0), treatment.assign(_arm=1)], ignore_index=True
    ).sort_values([FIRST_SEEN_COL, USER_COL], kind="stable")
    arm = both["_arm"].to_numpy()
    hit = (both[HITS_COL].to_numpy() > 0).astype(np.float64)
    n1, n2 = np.cumsum(arm == 0), np.cumsum(arm == 1)
    x1, x2 = np.cumsum(hit * (arm == 0)), np.cumsum(hit * (arm == 1))
    looks = np.unique(np.ceil(np.linspace(1, len(both), CHECKPOINTS)).astype(int) - 1)
    path, running = [], 1.0
    for i in looks:
        if n1[i] == 0 or n2[i] == 0:
            continue
        p1, p2 = x1[i] / n1[i], x2[i] / n2[i]
        var = p1 * (1 - p1) / n1[i] + p2 * (1 - p2) / n2[i]
        running = min(running, 1.0 / msprt_lambda(p2 - p1, var, tau))
        path.append({"users": int(n1[i] + n2[i]), "p_value": running})
    return {"p_value": running, "tau": tau, "path": path}


# ------------------------------------------------------------------ the analysis
def summarise_variant(frame: pd.DataFrame, boot: np.ndarray) -> dict[str, Any]:
    """Users, requests, lists, hits; user hit rate (Wilson) and online accuracy (bootstrap)."""
    from jobs.online.evaluate import wilson

    users = len(frame)
    converted = int((frame[HITS_COL] > 0).sum())
    hits, lists = int(frame[HITS_COL].sum()), int(frame[LISTS_COL].sum())
    acc = _ratio(boot[:, 1], boot[:, 2])
    acc = acc[np.isfinite(acc)]
    low, high = wilson(converted, users)
    return {
        "users": users,
        "requests": int(frame[REQUESTS_COL].sum()),
        "lists": lists,
        "hits": hits,
        "users_with_hit": converted,
        "user_hit_rate": converted / users if users else None,
        "user_hit_rate_ci": [low, high],
        "online_accuracy": hits / lists if lists else None,
        "online_accuracy_ci": [float(x) for x in np.quantile(acc, [0.025, 0.975])]
        if len(acc)
        else [None, None],
    }


def compare(
    control: pd.DataFrame,
    treatment: pd.DataFrame,
    boots: tuple[np.ndarray, np.ndarray],
    plan: Plan | None,
    alpha: float,
) -> dict[str, Any]:
    """Treatment minus control: primary test, online accuracy difference, power, mSPRT."""
    n1, n2 = len(control), len(treatment)
    x1, x2 = int((control[HITS_COL] > 0).sum()), int((treatment[HITS_COL] > 0).sum())
    b1, b2 = boots
    user_boot = _boot_test(x2 / n2 - x1 / n1, b2[:, 0] / n2 - b1[:, 0] / n1)
    acc_est = treatment[HITS_COL].sum() / max(treatment[LISTS_COL].sum(), 1) - control[
        HITS_COL
    ].sum() / max(control[LISTS_COL].sum(), 1)
    acc_boot = _boot_test(float(acc_est), _ratio(b2[:, 1], b2[:, 2]) - _ratio(b1[:, 1], b1[:, 2]))
    z = z_test(x1, n1, x2, n2)
    holds = z_test_holds(x1, n1, x2, n2)
    primary = {**(z if holds else user_boot), "method": "z-test" if holds else "bootstrap"}
    p1, p2 = x1 / n1, x2 / n2
    tau = plan.min_effect if plan else 0.02
    return {
        "user_hit_rate": {"z_test": z, "bootstrap": user_boot, "z_test_holds": holds},
        "primary": primary,
        "online_accuracy": {**acc_boot, "method": "cluster bootstrap over users"},
        "achieved_power_observed_effect": power(p1, p2, n1, n2, alpha),
        # the plan's effect from the observed control rate, kept inside 0..1
        "power_for_min_effect": power(p1, min(max(p1 + plan.min_effect, 0.0), 1.0), n1, n2, alpha)
        if plan
        else None,
        "sequential": always_valid_p(control, treatment, abs(tau)),
    }


def analyse(
    outcomes: pd.DataFrame,
    plan: Plan | None = None,
    planned_users: dict[str, int] | None = None,
    control: str | None = None,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> dict[str, Any]:
    """The whole analysis of one experiment's user-level outcomes: per-variant summaries, and
    every other variant against `control` (default: the first by name), with a verdict."""
    alpha = plan.alpha if plan else ALPHA
    names = sorted(outcomes[VARIANT_COL].unique())
    if len(names) < 2:
        raise ValueError(f"an analysis needs two variants with users, got {names}")
    control = control or names[0]
    rng = np.random.default_rng(seed)
    frames = {v: outcomes[outcomes[VARIANT_COL] == v] for v in names}
    boots = {v: bootstrap_sums(_arm_arrays(f), n_boot, rng) for v, f in frames.items()}
    planned_users = planned_users or {}
    variants = {v: summarise_variant(frames[v], boots[v]) for v in names}
    for v, summary in variants.items():
        planned = planned_users.get(v)
        summary["planned_users"] = planned
        summary["progress"] = summary["users"] / planned if planned else None
    peeking = any(s["progress"] is not None and s["progress"] < 1 for s in variants.values())
    comparisons = {}
    for v in names:
        if v == control:
            continue
        result = compare(frames[control], frames[v], (boots[control], boots[v]), plan, alpha)
        result["verdict"] = verdict(control, v, result, alpha, peeking)
        comparisons[v] = result
    return {
        "control": control,
        "alpha": alpha,
        "n_boot": n_boot,
        "plan": plan.__dict__ if plan else None,
        "peeking": peeking,
        "variants": variants,
        "comparisons": comparisons,
    }


def verdict(
    control: str, treatment: str, result: dict[str, Any], alpha: float, peeking: bool
) -> str:
    """One sentence: what the data support about treatment vs control's user hit rate."""
    p = result["primary"]
    low, high = 100 * p["low"], 100 * p["high"]
    span = f"{100 * p['difference']:+.2f} points (95% CI {low:+.2f} to {high:+.2f})"
    if peeking:
        seq = result["sequential"]["p_value"]
        found = seq <= alpha
        return (
            f"Peeking: the planned sample size is not reached, so the fixed-horizon p-value "
            f"({p['p_value']:.3g}) is not valid; the always-valid mSPRT p-value is {seq:.3g}, "
            + (
                f"which already supports a difference: {treatment} vs {control} {span}."
                if found
                else "so the data do not support a difference yet; keep collecting."
            )
        )
    if p["p_value"] <= alpha:
        better = "higher" if p["difference"] > 0 else "lower"
        return (
            f"The data support a {better} user hit rate for {treatment} than {control}: {span}, "
            f"{p['method']} p = {p['p_value']:.3g}."
        )
    return (
        f"The data do not support a difference between {treatment} and {control} "
        f"({p['method']} p = {p['p_value']:.3g}): the difference is {span}, so an effect "
        f"beyond {max(abs(low), abs(high)):.2f} points either way is unlikely."
    )
