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


# Above settings.train_spark_rows() rated interactions the rating-based matrix factorisation is
# Spark ML ALS on explicit ratings: Surprise's SVD runs its SGD on one core of the driver with
# every rating in memory there. Its hyperparameters carry over where they mean the same thing:
# not reg_all or lr_all (ALS-WR scales its regulariser by each row's rating count, and has no
# learning rate), nor n_epochs (ALS converges in about 10 sweeps where SGD needs tens, and
# each sweep lengthens the lineage Spark serialises: 40 overflow the stack without checkpoints).
SVD_TO_ALS = {
    "n_factors": "rank",
    "random_state": "seed",
    "rating_min": "rating_min",
    "rating_max": "rating_max",
}
AT_SCALE = {"svd_surprise": ("als_spark", SVD_TO_ALS, {"implicit_prefs": False})}


def at_scale(family: str, params: dict, rated_rows: int) -> tuple[str, dict]:
    """(family, params) that fit `family`'s model on `rated_rows` rated interactions: the
    Spark family above settings.train_spark_rows(), `family` itself otherwise."""
    from contracts import settings

    if family not in AT_SCALE or rated_rows <= settings.train_spark_rows():
        return family, dict(params)
    spark_family, renames, fixed = AT_SCALE[family]
    carried = {renames[k]: v for k, v in params.items() if k in renames}
    return spark_family, {**carried, **fixed}


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
