"""The one interface every recommender implements (fit / recommend / save / load).

A model is trained on an interactions frame with the shared column names (contracts.names) and
recommends for a *block* of users at once, so batch scoring never calls it per (user, movie).
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd


class Recommender(abc.ABC):
    """Base class: subclasses set `family` and implement the four methods."""

    family: ClassVar[str] = "base"
    defaults: ClassVar[dict[str, Any]] = {}  # hyperparameters a family fills in when not given

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = {**self.defaults, **params}

    @abc.abstractmethod
    def fit(self, interactions: pd.DataFrame) -> Recommender:
        """Learn from interactions (explicit `rating`, implicit `strength`); return self."""

    @abc.abstractmethod
    def recommend(
        self, users: np.ndarray | list, k: int = 20, exclude_seen: bool = True
    ) -> pd.DataFrame:
        """Top-k per user for a block of users: columns user_id, movie_id, rank (1 = best), score.

        Users unknown to the model get no rows (the caller falls back to popularity).
        """

    @abc.abstractmethod
    def save(self, path: str | Path) -> Path:
        """Write the model's artifact(s) under directory `path`; return the directory."""

    @classmethod
    @abc.abstractmethod
    def load(cls, path: str | Path) -> Recommender:
        """Read a model written by save()."""

    def fitted_params(self) -> dict[str, Any]:
        """Hyperparameters with every value the fit chose from data filled in (for a refit)."""
        return dict(self.params)

    def known_users(self) -> np.ndarray:
        """User IDs the model can personalise for (default: none)."""
        return np.array([], dtype=np.int64)
