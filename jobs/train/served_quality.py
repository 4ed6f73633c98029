"""Quality of the lists users are SERVED, measured through HTTP against popularity.

The protocol (benchmarks/bench_served_quality.py runs it end to end):
1. `hold_back_later` takes each user's later interactions out of the log before the platform
   sees any of it; only the kept events are replayed, ingested, trained on and published.
2. `relevant_items` says which held-back movies the user went on to like.
3. `fetch_lists` asks the real serving tier, `GET /recommend/<user>`, for every such user.
4. `served_vs_popularity` scores the served lists and an all-time popularity list (the same
   users, the same relevant movies, each user's kept movies removed) with jobs.train.metrics' NDCG,
   and states the ratio and the difference with paired bootstrap intervals over users.

Conventions: events are a pandas frame of parsed movielog rows with the columns of
contracts.names (user_id, movie_id, event_time) plus `kind` ("watch" | "rate"), `minute`
(watch rows) and `rating` (rate rows); other columns pass through untouched. Everything here
is deterministic (ties broken by movie id, the bootstrap seeded).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from contracts.names import ITEM_COL, MINUTE_COL, RANK_COL, RATING_COL, TIME_COL, USER_COL, K
from jobs.train import metrics

KIND_COL = "kind"
WATCH, RATE = "watch", "rate"
LIKED_RATING = 4  # a held-back movie rated at least this (latest rating) is relevant
WATCHED_SHARE = 0.5  # an unrated one is relevant once this share of its length was watched
SOURCE_HEADER = "X-Rec-Source"
VERSION_HEADER = "X-Model-Version"
TRANSPORT_ERROR = 0  # the `status` of an answer that never came (refused, timed out)


# ------------------------------------------------------------------ hold back, relevance
def hold_back_later(
    events: pd.DataFrame,
    fraction: float = 0.2,
    min_movies: int = 2,
    user_col: str = USER_COL,
    item_col: str = ITEM_COL,
    time_col: str = TIME_COL,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept, held): each user's later `fraction` of movies and everything after, held back.

    Rule: per user with n >= `min_movies` distinct movies, order the movies by their first
    event time (ties by movie id); the cut time t_u is the first event time of the movie at
    position p = min(floor((1 - fraction) * n), n - 1) (0-based, so at least one movie is held
    back). Held = EVERY event of that user at or after t_u (later events of movies first seen
    before t_u too, so nothing the user did after t_u reaches the platform); kept = the rest.
    Users with fewer movies are kept whole. When floor(...) is 0 (fraction near 1, tiny n), the
    whole user is held back and becomes a user the platform has never seen.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if min_movies < 1:
        raise ValueError(f"min_movies must be at least 1, got {min_movies}")
    firsts = (
        events.groupby([user_col, item_col], observed=True, sort=False)[time_col]
        .min()
        .reset_index()
    )
    # Ties by the movie id's text (a categorical column would sort by its codes).
    firsts = firsts.assign(_id=firsts[item_col].astype(str)).sort_values(
        [user_col, time_col, "_id"], kind="stable"
    )
    grouped = firsts.groupby(user_col, sort=False)
    n = grouped[item_col].transform("size").to_numpy()
    position = np.minimum(np.floor((1.0 - fraction) * n).astype(np.int64), n - 1)
    at_cut = (grouped.cumcount().to_numpy() == position) & (n >= min_movies)
    cuts = firsts.loc[at_cut].set_index(user_col)[time_col]
    cut = events[user_col].map(cuts)
    held = (cut.notna() & (events[time_col] >= cut)).to_numpy()
    return events[~held], events[held]


def relevant_items(
    held: pd.DataFrame,
    kept: pd.DataFrame,
    user_col: str = USER_COL,
    item_col: str = ITEM_COL,
    time_col: str = TIME_COL,
) -> pd.DataFrame:
    """(user_id, movie_id) of the held-back movies the user went on to like; new to them only.

    A held-back movie counts only if it is NOT in the user's kept history (a model must not
    recommend what the user has seen, so it cannot be rewarded for it). It is relevant when
    - rated: the user's latest rating of it (by event time) is >= LIKED_RATING, whatever
      was watched; else
    - unrated: the user watched distinct minutes >= WATCHED_SHARE x the movie's length
      estimate, which is the largest minute anyone watched of it (kept + held) + 1, the rule
      jobs/train/dataset.py uses when there is no catalogue runtime.
    Sorted by user, then movie.
    """
    both = pd.concat([kept, held], ignore_index=True)
    watches = both[both[KIND_COL] == WATCH]
    length = watches.groupby(item_col, observed=True)[MINUTE_COL].max() + 1
    seen = kept[[user_col, item_col]].drop_duplicates().assign(_seen=True)
    new = (
        held[[user_col, item_col]]
        .drop_duplicates()
        .merge(seen, on=[user_col, item_col], how="left")
    )
    new = new.loc[new["_seen"].isna(), [user_col, item_col]]

    rates = held[held[KIND_COL] == RATE].sort_values(time_col, kind="stable")
    latest = rates.groupby([user_col, item_col], observed=True)[RATING_COL].last()
    held_watch = held[held[KIND_COL] == WATCH]
    minutes = held_watch.groupby([user_col, item_col], observed=True)[MINUTE_COL].nunique()

    keys = pd.MultiIndex.from_frame(new)
    rating = latest.reindex(keys).to_numpy(np.float64)
    watched = minutes.reindex(keys).fillna(0).to_numpy(np.float64)
    movie_length = length.reindex(new[item_col]).to_numpy(np.float64)
    liked = np.where(
        np.isnan(rating),
        watched >= WATCHED_SHARE * np.nan_to_num(movie_length, nan=np.inf),
        rating >= LIKED_RATING,
    )
    out = new.loc[liked].astype({item_col: str})
    return out.sort_values([user_col, item_col], kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------ HTTP
class Served(NamedTuple):
    """One answer of GET /recommend/<user>: the ids, X-Rec-Source, X-Model-Version, status.

    A non-200 answer keeps its status (TRANSPORT_ERROR when none came) with no ids, so it is
    scored as an empty list and counted, never dropped.
    """

    items: list[str]
    source: str
    model_version: str
    status: int


def fetch_lists(
    base_url: str, users: Iterable[int], workers: int = 8, timeout: float = 5
) -> dict[int, Served]:
    """GET /recommend/<user> for every user, `workers` at a time (a requests Session each)."""
    import requests

    local = threading.local()
    base = base_url.rstrip("/")

    def one(user: int) -> tuple[int, Served]:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        try:
            resp = session.get(f"{base}/recommend/{user}", timeout=timeout)
        except requests.RequestException:
            return user, Served([], "", "", TRANSPORT_ERROR)
        source = resp.headers.get(SOURCE_HEADER, "")
        version = resp.headers.get(VERSION_HEADER, "")
        if resp.status_code != 200:
            return user, Served([], source, version, resp.status_code)
        text = resp.text.strip()
        return user, Served(text.split(",") if text else [], source, version, 200)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(pool.map(one, [int(u) for u in users]))


# ------------------------------------------------------------------ scoring
@dataclass(frozen=True)
class ServedQuality:
    """NDCG@k of served lists vs popularity on the same users, with paired 95% intervals."""

    users: int  # users scored: every user with at least one relevant held-back movie
    ndcg_served: float
    ndcg_popularity: float
    ratio: float  # mean served / mean popularity
    ratio_low: float
    ratio_high: float
    difference: float  # mean served - mean popularity
    difference_low: float
    difference_high: float
    seen_served: int  # served items (top k) the user already had in their kept history
    users_with_seen: int
    share_popular: float  # share of scored users answered with X-Rec-Source: popular
    share_cache: float  # ... with X-Rec-Source: cache (the database could not answer)
    failed: int  # users whose answer was not a 200 (or never came): scored as empty lists
    k: int
    resamples: int

    HEADER = (
        f"{'users':>6} {'served':>7} {'popular':>7} {'ratio [95% CI]':>22} "
        f"{'diff [95% CI]':>25} {'seen':>5} {'pop%':>5} {'fail':>4}"
    )

    def __str__(self) -> str:
        ratio = f"{self.ratio:.3f} [{self.ratio_low:.3f}, {self.ratio_high:.3f}]"
        diff = f"{self.difference:+.4f} [{self.difference_low:+.4f}, {self.difference_high:+.4f}]"
        return (
            f"{self.users:>6} {self.ndcg_served:>7.4f} {self.ndcg_popularity:>7.4f} "
            f"{ratio:>22} {diff:>25} {self.seen_served:>5} "
            f"{100 * self.share_popular:>4.0f}% {self.failed:>4}"
        )

    def as_dict(self) -> dict:
        return asdict(self)


def popularity_lists(
    kept: pd.DataFrame,
    users: Iterable[int],
    k: int = K,
    user_col: str = USER_COL,
    item_col: str = ITEM_COL,
) -> pd.DataFrame:
    """(user_id, movie_id, rank): all-time popularity over `kept` (distinct users per movie,
    ties by movie id), each user's own kept movies removed, top k."""
    counts = kept.groupby(item_col, observed=True)[user_col].nunique()
    counts.index = counts.index.astype(str)
    ranking = counts.reset_index(name="n").sort_values(
        ["n", item_col], ascending=[False, True], kind="stable"
    )[item_col]
    ranking = ranking.tolist()
    history = kept.groupby(user_col, observed=True)[item_col].agg(lambda s: set(map(str, s)))
    rows = []
    for user in users:
        mine = history.get(user, set())
        picked = 0
        for movie in ranking:
            if movie in mine:
                continue
            picked += 1
            rows.append((user, movie, picked))
            if picked == k:
                break
    return pd.DataFrame(rows, columns=[user_col, item_col, RANK_COL])


def served_frame(lists: Mapping[int, Served], users: Iterable[int], k: int = K) -> pd.DataFrame:
    """(user_id, movie_id, rank) of the first k served ids of each user (missing: no rows)."""
    rows = [
        (user, str(movie), rank)
        for user in users
        for rank, movie in enumerate(lists[user].items[:k] if user in lists else [], start=1)
    ]
    return pd.DataFrame(rows, columns=[USER_COL, ITEM_COL, RANK_COL])


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, resamples: int = 2000, seed: int = 0, chunk: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """Resampled (mean a / mean b, mean a - mean b), users drawn with replacement, paired."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n = len(a)
    rng = np.random.default_rng(seed)
    ratios, diffs = [], []
    for lo in range(0, resamples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, resamples - lo), n))
        mean_a, mean_b = a[idx].mean(axis=1), b[idx].mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios.append(mean_a / mean_b)
        diffs.append(mean_a - mean_b)
    return np.concatenate(ratios), np.concatenate(diffs)


def served_vs_popularity(
    lists: Mapping[int, Served],
    relevant: pd.DataFrame,
    kept: pd.DataFrame,
    k: int = K,
    resamples: int = 2000,
    seed: int = 0,
) -> ServedQuality:
    """Served lists vs popularity on every user of `relevant`, NDCG@k per jobs.train.metrics.

    A user missing from `lists` or answered with a non-200 is scored as an empty list (0),
    and counted in `failed`. Intervals: 2.5 and 97.5 percentiles of `resamples` paired
    bootstrap resamples of the users (both means recomputed on the same draw).
    """
    users = sorted(int(u) for u in relevant[USER_COL].unique())
    if not users:
        raise ValueError("no user has a relevant held-back movie: nothing to score")
    truth = relevant[[USER_COL, ITEM_COL]].astype({ITEM_COL: str})
    served = served_frame(lists, users, k)
    popular = popularity_lists(kept, users, k)
    order = pd.Index(users, name=USER_COL)
    ndcg_served = _per_user_ndcg(truth, served, k, order)
    ndcg_popular = _per_user_ndcg(truth, popular, k, order)

    history = kept[[USER_COL, ITEM_COL]].drop_duplicates().astype({ITEM_COL: str})
    seen = served.merge(history, on=[USER_COL, ITEM_COL], how="inner")
    answers = [lists.get(u) for u in users]
    failed = sum(1 for a in answers if a is None or a.status != 200)
    sources = [a.source if a is not None and a.status == 200 else "" for a in answers]

    mean_s, mean_p = float(ndcg_served.mean()), float(ndcg_popular.mean())
    ratios, diffs = paired_bootstrap(ndcg_served, ndcg_popular, resamples, seed)
    ratio_low, ratio_high = _interval(ratios)
    diff_low, diff_high = _interval(diffs)
    return ServedQuality(
        users=len(users),
        ndcg_served=mean_s,
        ndcg_popularity=mean_p,
        ratio=mean_s / mean_p if mean_p > 0 else float("nan"),
        ratio_low=ratio_low,
        ratio_high=ratio_high,
        difference=mean_s - mean_p,
        difference_low=diff_low,
        difference_high=diff_high,
        seen_served=len(seen),
        users_with_seen=int(seen[USER_COL].nunique()),
        share_popular=sources.count("popular") / len(users),
        share_cache=sources.count("cache") / len(users),
        failed=failed,
        k=k,
        resamples=resamples,
    )


def _per_user_ndcg(truth: pd.DataFrame, pred: pd.DataFrame, k: int, order: pd.Index) -> np.ndarray:
    per_user = metrics.per_user_ranking(truth, pred, k).set_index(USER_COL)["ndcg"]
    return per_user.reindex(order).to_numpy(np.float64)


def _interval(samples: np.ndarray) -> tuple[float, float]:
    """2.5 and 97.5 percentiles, picked among the samples (a ratio over a zero mean is inf;
    0/0 resamples are left out)."""
    defined = samples[~np.isnan(samples)]
    if len(defined) == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(defined, [2.5, 97.5], method="inverted_cdf")
    return float(low), float(high)
