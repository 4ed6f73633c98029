"""User-level experiment outcomes drawn from the simulated world, for calibrating the analysis.

A closed-loop run of the stream per calibration seed would take minutes; hundreds of A/A
analyses need the same heterogeneity in milliseconds. So the outcome table
(jobs/online/experiment_analysis.py) is drawn directly from the world's users:

- requests: a user asks for a list at each session, so over `days` they ask
  1 + Poisson(activity x days) times (the world's long-tailed sessions per day; only users
  who asked at least once are in an experiment). Each request fails with `ERROR_SHARE`
  (a request without a list).
- hits: each served list is followed by a watch of a listed movie with a per-user propensity
  q = sigmoid(intercept + SLOPE x s + shift), where s is the user's standardised mean hidden
  affinity for the arm's list (the world's 20 most popular released movies: one model, the
  same in both arms of an A/A). The intercept is solved so that the expected user hit rate
  is `base_rate`; `shift` injects an effect sized exactly, in expectation over the world's
  users, to a chosen difference in user hit rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize

from contracts.names import (
    FIRST_SEEN_COL,
    HITS_COL,
    LISTS_COL,
    REQUESTS_COL,
    USER_COL,
    VARIANT_COL,
)
from simulator.world import World

SLOPE = 1.0  # spread of per-list hit propensity across users (logit units per sd of affinity)
ERROR_SHARE = 0.01
LIST_LENGTH = 20


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class UserPool:
    """The world's active users as experiment subjects: expected extra requests and taste."""

    expected_requests: np.ndarray  # Poisson mean of requests beyond the first
    taste: np.ndarray  # standardised mean affinity for the served list
    intercept: float = 0.0

    @classmethod
    def from_world(cls, world: World, days: float = 7.0, base_rate: float = 0.3) -> UserPool:
        """Users of `world` over `days`, with the intercept that gives `base_rate`."""
        pop = world.population
        users = np.arange(pop.n_active)
        popular = np.argsort(-world.catalog.popularity[: world.catalog.n_initial])[:LIST_LENGTH]
        affinity = world.true_affinity(users, popular).mean(axis=1).astype(np.float64)
        taste = (affinity - affinity.mean()) / affinity.std()
        pool = cls(pop.activity[: pop.n_active].astype(np.float64) * days, taste)
        pool.intercept = float(
            optimize.brentq(lambda a: pool._rate_at(a) - base_rate, -15.0, 10.0, xtol=1e-12)
        )
        return pool

    def _rate_at(self, logit_offset: float) -> float:
        """Expected user hit rate over the pool with propensities at this logit offset."""
        q = _sigmoid(logit_offset + SLOPE * self.taste)
        served = 1 - ERROR_SHARE  # lists = thinned requests: 1 first request + Poisson rest
        miss = (1 - served * q) * np.exp(-served * self.expected_requests * q)
        return float(1 - miss.mean())

    def expected_rate(self, shift: float = 0.0) -> float:
        """Expected user hit rate of an arm whose propensities are shifted by `shift` (logit)."""
        return self._rate_at(self.intercept + shift)

    def shift_for(self, effect: float) -> float:
        """The logit shift that moves the expected user hit rate by `effect` (absolute)."""
        target = self.expected_rate() + effect
        return float(
            optimize.brentq(lambda s: self.expected_rate(s) - target, -10.0, 10.0, xtol=1e-12)
        )

    def draw(
        self, arms: dict[str, tuple[int, float]], seed: int, days: float = 7.0
    ) -> pd.DataFrame:
        """An outcome table: per arm name, (users, logit shift); distinct users, random order."""
        rng = np.random.default_rng(seed)
        total = sum(n for n, _ in arms.values())
        users = rng.choice(len(self.taste), size=total, replace=total > len(self.taste))
        names = np.repeat(list(arms), [n for n, _ in arms.values()])
        shift = np.repeat([s for _, s in arms.values()], [n for n, _ in arms.values()])
        requests = 1 + rng.poisson(self.expected_requests[users])
        lists = rng.binomial(requests, 1 - ERROR_SHARE)
        q = _sigmoid(self.intercept + SLOPE * self.taste[users] + shift)
        start = np.datetime64("2026-01-01T00:00:00", "s")
        seconds = rng.uniform(0, days * 86_400, total).astype("timedelta64[s]")
        return pd.DataFrame(
            {
                USER_COL: np.arange(1, total + 1),  # one row per subject
                VARIANT_COL: names,
                REQUESTS_COL: requests,
                LISTS_COL: lists,
                HITS_COL: rng.binomial(lists, q),
                FIRST_SEEN_COL: start + seconds,
            }
        )
