"""Shared machinery for the model families: ID indexing, seen-item CSR, block top-k, save/load.

Every family keeps its state as named numpy arrays (and scipy CSR matrices), so an artifact is
one `arrays.npz` plus a `model.json` of parameters: no pickles, readable by the scoring job
without importing the training library, and its size in memory is the sum of those arrays.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from contracts.names import ITEM_COL, RANK_COL, USER_COL
from jobs.models.base import Recommender

SCORE_COL = "score"
BLOCK_USERS = 512  # users per dense score block inside recommend(): 512 x 27k float32 = 55 MB


def index_of(ids: np.ndarray, values: np.ndarray | list) -> np.ndarray:
    """Position of each value in `ids` (-1 when absent)."""
    return pd.Index(ids).get_indexer(pd.Index(np.asarray(values)))


def id_arrays(users: pd.Series, items: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct user IDs (int64) and movie IDs (fixed-width unicode, never object)."""
    user_ids = np.unique(users.to_numpy(dtype=np.int64))
    item_ids = np.unique(items.astype(str).to_numpy()).astype(str)
    return user_ids, item_ids


def interaction_matrix(
    frame: pd.DataFrame,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    values: np.ndarray | None = None,
    user_col: str = USER_COL,
    item_col: str = ITEM_COL,
) -> sp.csr_matrix:
    """users x items CSR of `values` (default 1.0); rows/items outside the ID arrays are dropped."""
    u = index_of(user_ids, frame[user_col].to_numpy(dtype=np.int64))
    i = index_of(item_ids, frame[item_col].astype(str).to_numpy())
    keep = (u >= 0) & (i >= 0)
    v = np.ones(int(keep.sum())) if values is None else np.asarray(values, dtype=np.float64)[keep]
    m = sp.csr_matrix((v, (u[keep], i[keep])), shape=(len(user_ids), len(item_ids)))
    m.sum_duplicates()
    return m


def top_k_dense(
    scores: np.ndarray, k: int, seen: sp.csr_matrix | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Best k item indices per row of a dense block, best first, seen items removed.

    Returns (items, scores), each (b, min(k, n)); entries that could not be filled (all items
    seen or non-finite) have item -1 and score -inf.
    """
    scores = np.array(scores, dtype=np.float64, copy=True)
    if seen is not None and seen.nnz:
        rows = np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))
        scores[rows, seen.indices] = -np.inf
    scores[~np.isfinite(scores)] = -np.inf
    n = scores.shape[1]
    k = min(k, n)
    if k == 0:
        empty = np.zeros((scores.shape[0], 0))
        return empty.astype(np.int64), empty
    if k < n:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(n), (len(scores), 1))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    items = np.take_along_axis(part, order, axis=1)
    best = np.take_along_axis(part_scores, order, axis=1)
    items[~np.isfinite(best)] = -1
    return items, best


def to_frame(
    user_ids: np.ndarray, item_ids: np.ndarray, items: np.ndarray, scores: np.ndarray
) -> pd.DataFrame:
    """Long frame user_id, movie_id, rank (1 = best), score from (b, k) index/score blocks."""
    b, k = items.shape
    valid = items >= 0
    users = np.repeat(np.asarray(user_ids, dtype=np.int64), k).reshape(b, k)
    ranks = np.tile(np.arange(1, k + 1, dtype=np.int32), (b, 1))
    return pd.DataFrame(
        {
            USER_COL: users[valid],
            ITEM_COL: item_ids[items[valid]].astype(object),
            RANK_COL: ranks[valid],
            SCORE_COL: scores[valid].astype(np.float64),
        }
    )


def empty_recommendations() -> pd.DataFrame:
    """The zero-row recommendation frame with the right columns and dtypes."""
    return pd.DataFrame(
        {
            USER_COL: pd.Series(dtype=np.int64),
            ITEM_COL: pd.Series(dtype=object),
            RANK_COL: pd.Series(dtype=np.int32),
            SCORE_COL: pd.Series(dtype=np.float64),
        }
    )


def nbytes(value: Any) -> int:
    """Bytes of the numeric buffers of a numpy array or scipy sparse matrix (0 otherwise)."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if sp.issparse(value):
        m = value.tocsr()
        return int(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes)
    return 0


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez with fixed timestamps, so equal arrays give byte-identical (same sha256) files."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, buffer.getvalue())


class ArrayModel(Recommender):
    """A Recommender whose whole state is named arrays: generic save/load/recommend/size.

    Subclasses list their array attributes in `array_attrs` (CSR matrices are allowed) and
    implement `score_block(user_index) -> (b, n_items) dense scores` over `item_ids`.
    Common attributes: `user_ids` (int64, sorted), `item_ids` (str, sorted unless the family
    says otherwise) and `seen` (users x items CSR of the training interactions, the items that
    `exclude_seen=True` removes).
    """

    array_attrs: ClassVar[tuple[str, ...]] = ("user_ids", "item_ids", "seen")

    user_ids: np.ndarray
    item_ids: np.ndarray
    seen: sp.csr_matrix

    def fit_seen(self, interactions: pd.DataFrame, user_col: str, item_col: str) -> None:
        """Record which catalogue items each known user has already interacted with."""
        self.seen = interaction_matrix(
            interactions, self.user_ids, self.item_ids, user_col=user_col, item_col=item_col
        )

    def known_users(self) -> np.ndarray:
        """User IDs this model personalises for."""
        return self.user_ids

    def score_block(self, user_index: np.ndarray) -> np.ndarray:
        """Dense scores (len(user_index), n_items) for known users' row indices."""
        raise NotImplementedError

    def recommend(
        self, users: np.ndarray | list, k: int = 20, exclude_seen: bool = True
    ) -> pd.DataFrame:
        """Top-k per known user in dense blocks of BLOCK_USERS (unknown users get no rows)."""
        users = np.asarray(users, dtype=np.int64)
        idx = index_of(self.user_ids, users)
        known = idx >= 0
        users, idx = users[known], idx[known]
        frames = []
        for start in range(0, len(idx), BLOCK_USERS):
            block = idx[start : start + BLOCK_USERS]
            scores = self.score_block(block)
            seen = self.seen[block] if exclude_seen else None
            items, best = top_k_dense(scores, k, seen)
            frames.append(to_frame(users[start : start + BLOCK_USERS], self.item_ids, items, best))
        return pd.concat(frames, ignore_index=True) if frames else empty_recommendations()

    def memory_bytes(self) -> int:
        """Bytes of every array the model holds (its scoring state), summed."""
        return sum(nbytes(getattr(self, name, None)) for name in self.array_attrs)

    def extra_state(self) -> dict[str, Any]:
        """JSON-serialisable scalars saved beside the arrays (override to add some)."""
        return {}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what extra_state() returned."""

    def save(self, path: str | Path) -> Path:
        """Write arrays.npz (sparse matrices as their CSR parts) and model.json under `path`."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        sparse_names = []
        for name in self.array_attrs:
            value = getattr(self, name)
            if sp.issparse(value):
                m = value.tocsr()
                sparse_names.append(name)
                arrays[f"{name}.data"] = m.data
                arrays[f"{name}.indices"] = m.indices
                arrays[f"{name}.indptr"] = m.indptr
                arrays[f"{name}.shape"] = np.asarray(m.shape, dtype=np.int64)
            else:
                arrays[name] = np.asarray(value)
        write_npz(path / "arrays.npz", arrays)
        meta = {
            "family": self.family,
            "params": self.params,
            "sparse": sparse_names,
            "state": self.extra_state(),
        }
        (path / "model.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        return path

    @classmethod
    def load(cls, path: str | Path) -> ArrayModel:
        """Read a model written by save()."""
        path = Path(path)
        meta = json.loads((path / "model.json").read_text())
        if meta["family"] != cls.family:
            raise ValueError(f"{path} holds a {meta['family']!r} model, not {cls.family!r}")
        model = cls(**meta["params"])
        with np.load(path / "arrays.npz", allow_pickle=False) as npz:
            for name in cls.array_attrs:
                if name in meta["sparse"]:
                    shape = tuple(int(x) for x in npz[f"{name}.shape"])
                    parts = (npz[f"{name}.data"], npz[f"{name}.indices"], npz[f"{name}.indptr"])
                    setattr(model, name, sp.csr_matrix(parts, shape=shape))
                else:
                    setattr(model, name, npz[name])
        model.set_extra_state(meta["state"])
        return model


class FactorModel(ArrayModel):
    """Biased matrix factorisation state shared by svd_surprise and als_spark.

    score(u, i) = global_mean + user_bias[u] + item_bias[i] + user_factors[u] . item_factors[i]
    with user_factors (n_users, f) and item_factors (n_items, f) float32 row-aligned with
    `user_ids` / `item_ids`; families without biases store zeros. Batch scoring can therefore
    rank a block of users by `U_block @ V.T + item_bias` (the user terms do not change a user's
    ranking). `predict(users, items)` returns rating estimates, clipped to [rating_min,
    rating_max]; unknown users/items drop the terms they lack (Surprise's convention).
    """

    array_attrs = ArrayModel.array_attrs + (
        "user_factors",
        "item_factors",
        "user_bias",
        "item_bias",
    )

    user_factors: np.ndarray
    item_factors: np.ndarray
    user_bias: np.ndarray
    item_bias: np.ndarray
    global_mean: float = 0.0
    fallback_rating: float = 3.0
    rating_min: float = 1.0
    rating_max: float = 5.0
    biased: float = 1.0  # 0.0 for families without bias terms (their unknown pairs -> fallback)

    def extra_state(self) -> dict[str, Any]:
        return {
            "global_mean": float(self.global_mean),
            "fallback_rating": float(self.fallback_rating),
            "rating_min": float(self.rating_min),
            "rating_max": float(self.rating_max),
            "biased": float(self.biased),
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, float(value))

    def score_block(self, user_index: np.ndarray) -> np.ndarray:
        scores = self.user_factors[user_index] @ self.item_factors.T
        scores += self.item_bias[None, :]
        scores += (self.global_mean + self.user_bias[user_index])[:, None]
        return scores

    def predict(self, users: np.ndarray | list, items: np.ndarray | list) -> np.ndarray:
        """Rating estimates for aligned (user, item) pairs, vectorised (used for RMSE/MAE)."""
        u = index_of(self.user_ids, np.asarray(users, dtype=np.int64))
        i = index_of(self.item_ids, np.asarray(items).astype(str))
        ku, ki = u >= 0, i >= 0
        est = np.full(len(u), self.global_mean, dtype=np.float64)
        est[ku] += self.user_bias[u[ku]]
        est[ki] += self.item_bias[i[ki]]
        both = ku & ki
        est[both] += np.einsum(
            "ij,ij->i", self.user_factors[u[both]], self.item_factors[i[both]], dtype=np.float64
        )
        if not self.biased:
            # Without bias terms (Spark ALS) a partial estimate means nothing: use the mean.
            est[~both] = self.fallback_rating
        return np.clip(est, self.rating_min, self.rating_max)
