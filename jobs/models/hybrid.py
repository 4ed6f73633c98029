"""Hybrid ranking model: item-kNN over recency-weighted implicit feedback + a trending prior.

On trend-driven data (MovieTweetings: people tweet about what just came out) recent
popularity is a strong ranker and a pure neighbourhood model ranks below it; on stable tastes
(the planted simulation) the neighbourhood model wins. This family blends the two per item,

    score(u, j) = (1 - blend) * knn(u, j) / max_j' knn(u, j')  +  blend * prior(j)
                  + TIE * prior(j)

where knn(u, j) = sum over u's history i of w_ui * sim(i, j) (shrunk cosine, top-M neighbours
per item, exactly item_knn's), w_ui = 2^(-(t_u,last - t_ui) / history_half_life_days) weighs
recent history up (null = no decay), and prior(j) = sum over training interactions with j of
2^(-(newest - t) / half_life_days), scaled to max 1 (recency-decayed popularity). With
`history_half_life_days`, `blend`, `half_life_days` = "auto" (default) they are chosen on two
VALIDATION splits carved from the training data (jobs.train.splits): the global temporal rule (the
next interactions of users returning after a time cut) and each user's later 20% (the rest of
a user's own burst, as served quality is measured). A grid point's merit on a split is its
NDCG@20 over that split's best; the point whose worst merit is highest wins: the history
half-life on the kNN part alone, then (half-life, blend) of the blend. One split alone can
pick a blend the other punishes (on MovieTweetings the time cut wants 0.95 and the per-user
split 0.5; served lists with 0.95 scored 0.89x popularity). The grid includes blend 0 (pure
kNN) and 1 (pure trending popularity), so the selection can say the blend does not help.
The chosen values are refitted on all training data; the test split is never looked at.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from contracts.names import ITEM_COL, TIME_COL, USER_COL, K
from jobs.models import spark_input
from jobs.models.common import ArrayModel, id_arrays, index_of, to_frame, top_k_dense
from jobs.models.item_knn import (
    choose_engine,
    neighbours_from_frame,
    neighbours_scipy,
    neighbours_spark,
    recent_history,
)
from jobs.train.splits import (
    per_user_later_split,
    per_user_later_split_spark,
    temporal_split,
    temporal_split_spark,
)

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "neighbours": 200,
    "shrink": 50.0,
    "max_history": 500,
    "history_half_life_days": "auto",
    "history_half_life_grid": [1.0, 7.0, 30.0, None],
    "half_life_days": "auto",
    "blend": "auto",
    "validation_fraction": 0.2,
    "validation_users": 1000,
    "half_life_grid": [1.0, 2.0, 4.0, 7.0, 14.0, 30.0],
    "blend_grid": [0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0],
    "fallback_half_life_days": 7.0,
    "fallback_blend": 0.9,
    "fallback_history_half_life_days": 7.0,
    "engine": "auto",
    "spark_threshold": None,  # None: settings.train_spark_rows()
    "seed": 42,
}
TIE = 1e-6  # the prior breaks ties between equal blended scores (e.g. no kNN evidence)
MIN_WEIGHT = 1e-6  # floor of a history weight, so an old interaction stays in `seen`
DAY = 86_400.0
# Where the next interactions may come from: after a time cut (returning users), or later in
# each user's own history (the rest of a session or burst, as served quality is measured).
VALIDATION_SPLITS = ("global", "per_user")


def worst_merit(grids: list[list[dict[str, Any]]]) -> np.ndarray:
    """Per grid point: the lowest, over splits, of its NDCG@20 / that split's best NDCG@20."""
    merits = []
    for grid in grids:
        scores = np.array([g["ndcg_at_20"] for g in grid], dtype=np.float64)
        top = np.nanmax(scores) if np.isfinite(scores).any() else 0.0
        merits.append(np.nan_to_num(scores / top if top > 0 else np.zeros_like(scores)))
    return np.min(merits, axis=0)


def decay(age_days: np.ndarray, half_life_days: float) -> np.ndarray:
    """2^(-age / half_life): 1 for age 0, 1/2 after one half-life."""
    return np.exp2(-np.asarray(age_days, dtype=np.float64) / float(half_life_days))


def ages_days(times: pd.Series, reference: pd.Timestamp | pd.Series) -> np.ndarray:
    """Days from each event time back from `reference` (a time or aligned times), >= 0."""
    delta = pd.to_datetime(reference) - pd.to_datetime(times)
    seconds = delta.dt.total_seconds() if isinstance(delta, pd.Series) else delta.total_seconds()
    return np.maximum(np.asarray(seconds, dtype=np.float64) / DAY, 0.0)


def spark_decay(reference, half_life_days: float):
    """decay(ages_days(event_time, reference)) as a Spark column expression."""
    from pyspark.sql import functions as F

    # Microseconds since the epoch of TIMESTAMP or TIMESTAMP_NTZ (the session is in UTC).
    micros = F.unix_micros(F.col(TIME_COL).cast("timestamp"))
    age_micros = F.unix_micros(reference.cast("timestamp")) - micros
    age = F.greatest(age_micros.cast("double") / F.lit(DAY * 1e6), F.lit(0.0))
    return F.pow(F.lit(2.0), -age / F.lit(float(half_life_days)))


def as_auto(value: Any) -> float | None:
    """None for 'auto' (choose on validation), else the value as a float."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    return float(value)


class HybridKNN(ArrayModel):
    """Recency-weighted item-kNN blended with a recency-decayed popularity prior.

    Attributes (what batch scoring uses): `user_ids` (int64, sorted), `item_ids` (str,
    sorted), `seen` (CSR users x items, recency weights w_ui of the training history, every
    value > 0), `neighbours` (CSR items x items, top-M shrunk-cosine neighbours, as item_knn),
    `item_prior` (float64 per item, decayed popularity scaled to max 1); scalars `blend`,
    `half_life_days`, `history_half_life_days` (as chosen) and `validation` (the grids and
    their NDCG@20) in model.json.
    Params: neighbours, shrink, max_history, engine, spark_threshold (item_knn's);
    history_half_life_days (number, null = no decay, or 'auto'), half_life_days and blend
    (numbers or 'auto'); validation_fraction, validation_users, history_half_life_grid,
    half_life_grid, blend_grid, fallback_* (used when the training data is too small to carve
    a validation split), seed (validation user sample).
    """

    family = "hybrid"
    defaults = DEFAULTS
    array_attrs = ArrayModel.array_attrs + ("neighbours", "item_prior")
    neighbours: sp.csr_matrix
    item_prior: np.ndarray
    blend: float = 0.9
    half_life_days: float = 7.0
    history_half_life_days: float | None = 7.0

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.validation: dict[str, Any] = {}

    # ------------------------------------------------------------------ fit
    def fit(self, interactions) -> HybridKNN:
        """Fit on a pandas frame, or on a Spark DataFrame (fit_spark)."""
        cols = (USER_COL, ITEM_COL, TIME_COL)
        missing = [c for c in cols if c not in interactions.columns]
        if missing:
            raise ValueError(f"hybrid needs columns {missing} in the training interactions")
        if spark_input.is_spark(interactions):
            return self.fit_spark(interactions)
        if interactions.empty:
            raise ValueError("hybrid cannot fit on an empty training split")
        frame = interactions[list(cols)].copy()
        frame[ITEM_COL] = frame[ITEM_COL].astype(str)
        frame[TIME_COL] = pd.to_datetime(frame[TIME_COL])
        blend, half_life, history, history_auto = self.given_values()
        if blend is None or half_life is None or history_auto:
            blend, half_life, history = self.choose_on_validation(
                frame, blend, half_life, history, history_auto, *cols
            )
        self.blend, self.half_life_days = float(blend), float(half_life)
        self.history_half_life_days = history
        self.fit_state(frame, *cols)
        self.seen = self.history(frame, history, *cols)
        self.item_prior = self.prior(frame, self.half_life_days, ITEM_COL, TIME_COL)
        return self

    def given_values(self) -> tuple[float | None, float | None, float | None, bool]:
        """(blend, half-life, history half-life, history is 'auto') from the params, checked;
        None for a value to choose on validation."""
        p = self.params
        blend, half_life = as_auto(p["blend"]), as_auto(p["half_life_days"])
        history = p["history_half_life_days"]
        history_auto = isinstance(history, str) and history.strip().lower() == "auto"
        if blend is not None and not 0.0 <= blend <= 1.0:
            raise ValueError(f"blend must be in [0, 1] or 'auto', not {blend}")
        if half_life is not None and half_life <= 0:
            raise ValueError(f"half_life_days must be positive or 'auto', not {half_life}")
        if not history_auto and history is not None and float(history) <= 0:
            raise ValueError(f"history_half_life_days must be positive, null or 'auto': {history}")
        history = None if history_auto or history is None else float(history)
        return blend, half_life, history, history_auto

    def fit_spark(self, interactions) -> HybridKNN:
        """The same model from a Spark DataFrame: neighbours, history weights and the prior are
        Spark jobs; the driver collects the ID arrays, `seen`, `neighbours` and `item_prior`.

        Values left "auto" are chosen as fit() chooses them, on validation splits carved in
        Spark (jobs.train.splits); only the sampled validation users' rows reach the driver.
        """

        if interactions.isEmpty():
            raise ValueError("hybrid cannot fit on an empty training split")
        blend, half_life, history, history_auto = self.given_values()
        if blend is None or half_life is None or history_auto:
            blend, half_life, history = self.choose_on_validation(
                interactions, blend, half_life, history, history_auto, USER_COL, ITEM_COL, TIME_COL
            )
        self.blend, self.half_life_days = float(blend), float(half_life)
        self.history_half_life_days = history
        indexed = self.fit_state_spark(interactions)
        self.seen = self.history_spark(indexed, history)
        self.item_prior = self.prior_spark(indexed, self.half_life_days)
        return self

    def fit_state_spark(self, interactions):
        """fit_state() from a Spark DataFrame; returns it indexed (spark_input.with_index)."""
        from pyspark.sql import functions as F

        p = self.params
        self.user_ids, self.item_ids = spark_input.id_arrays(interactions)
        indexed = spark_input.with_index(interactions, self.user_ids, self.item_ids)
        recent = spark_input.recent(indexed, int(p["max_history"]), TIME_COL)
        self.neighbours = neighbours_from_frame(
            recent.withColumn(spark_input.VALUE, F.lit(1.0)),
            len(self.item_ids),
            int(p["neighbours"]),
            float(p["shrink"]),
        )
        return indexed

    def history_spark(self, indexed, half_life: float | None) -> sp.csr_matrix:
        """history() from an indexed Spark DataFrame (spark_input.with_index)."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        weight = F.lit(1.0)
        if half_life is not None:
            last = F.max(TIME_COL).over(Window.partitionBy(spark_input.USER_INDEX))
            weight = spark_decay(last, half_life)
        weighted = indexed.withColumn(spark_input.VALUE, F.greatest(weight, F.lit(MIN_WEIGHT)))
        shape = (len(self.user_ids), len(self.item_ids))
        return spark_input.csr(weighted, shape, spark_input.VALUE)

    def prior_spark(self, indexed, half_life: float) -> np.ndarray:
        """prior() from an indexed Spark DataFrame: decayed counts per movie, max scaled to 1."""
        from pyspark.sql import functions as F

        newest = F.lit(indexed.agg(F.max(TIME_COL)).first()[0])
        per_item = (
            indexed.withColumn("w", spark_decay(newest, half_life))
            .groupBy(spark_input.ITEM_INDEX)
            .agg(F.sum("w").alias("w"))
        )
        i, w = spark_input.column_arrays(per_item, spark_input.ITEM_INDEX, "w")
        prior = np.zeros(len(self.item_ids))
        prior[i] = w
        top = prior.max(initial=0.0)
        return prior / top if top > 0 else prior

    def fit_state(self, frame: pd.DataFrame, user_col: str, item_col: str, time_col: str) -> None:
        """user_ids, item_ids and the kNN `neighbours` (binary recent history) from `frame`."""
        p = self.params
        self.user_ids, self.item_ids = id_arrays(frame[user_col], frame[item_col])
        recent = recent_history(frame, int(p["max_history"]), user_col, time_col)
        ru = index_of(self.user_ids, recent[user_col].to_numpy(np.int64))
        ri = index_of(self.item_ids, recent[item_col].to_numpy())
        engine = choose_engine(p, len(recent))
        build = neighbours_scipy if engine == "scipy" else neighbours_spark
        self.neighbours = build(
            ru,
            ri,
            np.ones(len(recent)),
            len(self.user_ids),
            len(self.item_ids),
            m=int(p["neighbours"]),
            shrink=float(p["shrink"]),
        )

    def history(
        self,
        frame: pd.DataFrame,
        half_life: float | None,
        user_col: str,
        item_col: str,
        time_col: str,
    ) -> sp.csr_matrix:
        """users x items CSR of history weights (1 without decay; never below MIN_WEIGHT)."""
        if half_life is None:
            weights = np.ones(len(frame))
        else:
            last = frame.groupby(user_col)[time_col].transform("max")
            weights = decay(ages_days(frame[time_col], last), half_life)
        u = index_of(self.user_ids, frame[user_col].to_numpy(np.int64))
        i = index_of(self.item_ids, frame[item_col].to_numpy())
        keep = (u >= 0) & (i >= 0)
        seen = sp.csr_matrix(
            (np.maximum(weights[keep], MIN_WEIGHT), (u[keep], i[keep])),
            shape=(len(self.user_ids), len(self.item_ids)),
        )
        seen.sum_duplicates()
        return seen

    def prior(
        self, frame: pd.DataFrame, half_life: float, item_col: str, time_col: str
    ) -> np.ndarray:
        """Recency-decayed popularity over item_ids, scaled so the top movie has 1."""
        ages = ages_days(frame[time_col], frame[time_col].max())
        idx = index_of(self.item_ids, frame[item_col].to_numpy())
        keep = idx >= 0
        prior = np.bincount(
            idx[keep], weights=decay(ages[keep], half_life), minlength=len(self.item_ids)
        )
        top = prior.max(initial=0.0)
        return prior / top if top > 0 else prior

    def choose_on_validation(
        self,
        frame: pd.DataFrame,
        blend: float | None,
        half_life: float | None,
        history: float | None,
        history_auto: bool,
        user_col: str,
        item_col: str,
        time_col: str,
    ) -> tuple[float, float, float | None]:
        """(blend, half_life, history half-life) that hold up on every validation split.

        Each split of VALIDATION_SPLITS scores the grid; a point's merit on a split is its
        NDCG@20 over the split's best; the point with the highest worst merit wins (first of
        equals). Given values stay fixed.
        """
        blends, half_lives, histories, fallback = self.grid_values(
            blend, half_life, history, history_auto
        )
        cols = (user_col, item_col, time_col)
        splits = {}
        for name in VALIDATION_SPLITS:
            fit_part, val = self.validation_split(name, frame, *cols)
            if spark_input.size(fit_part) and spark_input.size(val):
                splits[name] = (fit_part, val)
        if not splits:
            self.validation = {"skipped": "training data too small to carve a validation split"}
            log.warning("hybrid: validation skipped; using %s", fallback)
            return fallback

        grids = {
            name: self.validation_grid(fit, val, histories, half_lives, blends, *cols)
            for name, (fit, val) in splits.items()
        }
        history_merit = worst_merit([g["history_grid"] for g in grids.values()])
        chosen_history = histories[int(np.argmax(history_merit))]
        if len(histories) == 1:
            chosen_history = histories[0]
        point_grids = [g["grid"][histories.index(chosen_history)] for g in grids.values()]
        merit = worst_merit(point_grids)
        best = point_grids[0][int(np.argmax(merit))]
        self.validation = {
            "rule": "choose the grid point with the best worst ratio to each split's best NDCG@20",
            "splits": {
                name: {
                    "fit_rows": spark_input.size(splits[name][0]),
                    "validation_rows": spark_input.size(splits[name][1]),
                    **grids[name],
                }
                for name in grids
            },
            "chosen": {
                "blend": best["blend"],
                "half_life_days": best["half_life_days"],
                "history_half_life_days": chosen_history,
                "worst_merit": float(max(merit)),
            },
        }
        log.info("hybrid: validation chose %s", self.validation["chosen"])
        return best["blend"], best["half_life_days"], chosen_history

    def grid_values(
        self, blend: float | None, half_life: float | None, history: float | None, auto: bool
    ) -> tuple[list[float], list[float], list[float | None], tuple]:
        """(blends, half-lives, history half-lives) to try, and the fallback choice; a value
        given explicitly is the only one tried."""
        p = self.params
        blends = [blend] if blend is not None else [float(b) for b in p["blend_grid"]]
        half_lives = (
            [half_life] if half_life is not None else [float(h) for h in p["half_life_grid"]]
        )
        histories = (
            [None if h is None else float(h) for h in p["history_half_life_grid"]]
            if auto
            else [history]
        )
        fallback = (
            blend if blend is not None else float(p["fallback_blend"]),
            half_life if half_life is not None else float(p["fallback_half_life_days"]),
            float(p["fallback_history_half_life_days"]) if auto else history,
        )
        return blends, half_lives, histories, fallback

    def validation_split(
        self, name: str, frame: pd.DataFrame, user_col: str, item_col: str, time_col: str
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(fit part, validation part) of the training data by the named rule."""
        fraction = float(self.params["validation_fraction"])
        cols = (user_col, item_col, time_col)
        if spark_input.is_spark(frame):
            if name == "per_user":
                return per_user_later_split_spark(frame, fraction, *cols)
            return temporal_split_spark(frame, fraction, *cols)
        if name == "per_user":
            return per_user_later_split(frame, fraction, *cols)
        try:
            fit_part, val, _ = temporal_split(frame, fraction, None, *cols)
        except ValueError as exc:
            log.warning("hybrid: no %s validation split (%s)", name, exc)
            return frame.iloc[:0], frame.iloc[:0]
        return fit_part, val

    def validation_grid(
        self,
        fit_part: pd.DataFrame,
        val: pd.DataFrame,
        histories: list[float | None],
        half_lives: list[float],
        blends: list[float],
        user_col: str,
        item_col: str,
        time_col: str,
    ) -> dict[str, list]:
        """NDCG@20 on `val` of kNN alone per history half-life, and of every (half-life, blend)
        point per history half-life (grid[i] belongs to histories[i])."""
        from jobs.train import metrics

        if spark_input.is_spark(fit_part):
            users, val, prior_of, history_of = self.validation_inputs_spark(fit_part, val)
        else:
            cols = (user_col, item_col, time_col)
            self.fit_state(fit_part, *cols)
            users = self.validation_users(val[user_col].to_numpy(np.int64))
            val = val[val[user_col].isin(users)]

            def prior_of(h: float) -> np.ndarray:
                return self.prior(fit_part, h, item_col, time_col)

            def history_of(history: float | None) -> sp.csr_matrix:
                return self.history(fit_part, history, *cols)[index_of(self.user_ids, users)]

        rows = index_of(self.user_ids, users)

        def ndcg(scores: np.ndarray, seen: sp.csr_matrix) -> float:
            items, best = top_k_dense(scores, K, seen)
            recs = to_frame(users, self.item_ids, items, best)
            return float(metrics.per_user_ranking(val, recs, K)["ndcg"].mean())

        priors = {h: prior_of(h) for h in half_lives}
        history_grid, grid = [], []
        for history in histories:
            seen = history_of(history)
            self.seen = seen
            personal = self.personal_block(np.arange(len(rows)))
            history_grid.append(
                {"history_half_life_days": history, "ndcg_at_20": ndcg(personal, seen)}
            )
            grid.append(
                [
                    {
                        "half_life_days": h,
                        "blend": b,
                        "ndcg_at_20": ndcg((1.0 - b) * personal + (b + TIE) * priors[h], seen),
                    }
                    for h in half_lives
                    for b in blends
                ]
            )
        return {"users": int(len(users)), "history_grid": history_grid, "grid": grid}

    def validation_users(self, candidates: np.ndarray) -> np.ndarray:
        """Sorted distinct validation users the fit part knows, at most validation_users of
        them (a seeded sample)."""
        users = np.unique(candidates)
        users = users[index_of(self.user_ids, users) >= 0]
        limit = int(self.params["validation_users"])
        if len(users) > limit:
            rng = np.random.default_rng(int(self.params["seed"]))
            users = np.sort(rng.choice(users, limit, replace=False))
        return users

    def validation_inputs_spark(self, fit_part, val) -> tuple:
        """(users, their validation rows as pandas, prior_of(h), history_of(half-life)) from
        Spark frames: the fit part stays in Spark, the sampled users' rows come to the driver."""
        from pyspark.sql import functions as F

        indexed = self.fit_state_spark(fit_part)
        (candidates,) = spark_input.column_arrays(val.select(USER_COL).distinct(), USER_COL)
        users = self.validation_users(candidates.astype(np.int64))
        val_rows = val.where(F.col(USER_COL).isin(users.tolist()))
        val_rows = val_rows.select(USER_COL, F.col(ITEM_COL).cast("string")).toPandas()
        rows = index_of(self.user_ids, users)
        sampled = indexed.where(F.col(spark_input.USER_INDEX).isin(rows.tolist()))

        def prior_of(h: float) -> np.ndarray:
            return self.prior_spark(indexed, h)

        def history_of(history: float | None) -> sp.csr_matrix:
            return self.history_spark(sampled, history)[rows]

        return users, val_rows, prior_of, history_of

    # ------------------------------------------------------------------ score
    def personal_block(self, user_index: np.ndarray) -> np.ndarray:
        """kNN scores of a block of users, each row scaled to max 1 (0 rows stay 0)."""
        scores = np.asarray((self.seen[user_index] @ self.neighbours).todense(), dtype=np.float64)
        top = scores.max(axis=1, keepdims=True)
        scores /= np.where(top > 0, top, 1.0)
        return scores

    def score_block(self, user_index: np.ndarray) -> np.ndarray:
        scores = self.personal_block(user_index)
        scores *= 1.0 - self.blend
        scores += (self.blend + TIE) * self.item_prior[None, :]
        return scores

    def fitted_params(self) -> dict[str, Any]:
        """The params with the validation's choices in place of "auto"."""
        return {
            **self.params,
            "blend": float(self.blend),
            "half_life_days": float(self.half_life_days),
            "history_half_life_days": self.history_half_life_days,
        }

    # ------------------------------------------------------------------ state
    def extra_state(self) -> dict[str, Any]:
        return {
            "history_half_life_days": self.history_half_life_days,
            "blend": float(self.blend),
            "half_life_days": float(self.half_life_days),
            "validation": self.validation,
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.history_half_life_days = state.get("history_half_life_days")
        self.blend = float(state["blend"])
        self.half_life_days = float(state["half_life_days"])
        self.validation = state.get("validation", {})
