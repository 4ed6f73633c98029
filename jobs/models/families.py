"""The model families by name: `get(family)` imports only the module that family needs."""

from __future__ import annotations

import importlib

from jobs.models.base import Recommender

FAMILIES: dict[str, str] = {
    "popularity": "jobs.models.popularity:PopularityRecommender",
    "svd_surprise": "jobs.models.svd_surprise:SurpriseSVD",
    "als_spark": "jobs.models.als_spark:SparkALS",
    "item_knn": "jobs.models.item_knn:ItemKNN",
    "ease": "jobs.models.ease:EASE",
    "hybrid": "jobs.models.hybrid:HybridKNN",
}


def get(family: str) -> type[Recommender]:
    """The Recommender class of `family` (ValueError naming the known ones otherwise)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known: {', '.join(sorted(FAMILIES))}")
    module, name = FAMILIES[family].split(":")
    return getattr(importlib.import_module(module), name)


def create(family: str, **params) -> Recommender:
    """A fresh, unfitted model of `family` with hyperparameters `params`."""
    return get(family)(**params)


def load(family: str, path) -> Recommender:
    """Load a saved model of `family` from its artifact directory."""
    return get(family).load(path)
