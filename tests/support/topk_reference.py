"""Reference top-k selections that jobs.publish.topk is tested and benchmarked against.

Not used by the pipeline: `naive_top_k` is the answer a stable full sort gives,
`argpartition_top_k` the plain baseline of benchmarks/bench_scoring.py, and `sparse_top_k`
the same ordering on a CSR score matrix.
"""

from __future__ import annotations

import numpy as np

from contracts.names import K
from jobs.publish.topk import SeenCSR, _write_ranked


def sparse_top_k(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    k: int = K,
    seen: SeenCSR | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k stored columns per row of a CSR score matrix (e.g. kNN aggregation), seen excluded.

    Same ordering as FactorTopK (score descending, column ascending); rows with fewer than k
    stored unseen entries are padded with -1 / -inf.
    """
    b = len(indptr) - 1
    rows = np.repeat(np.arange(b), np.diff(indptr))
    cols = np.asarray(indices, dtype=np.int64)
    vals = np.asarray(data)
    keep = np.isfinite(vals)
    if seen is not None and seen.indices.size:
        # Drop (row, col) pairs that are seen: one sorted-key membership test.
        n_cols = int(max(cols.max(initial=0), seen.indices.max()) + 1)
        seen_keys = np.sort(seen.row_ids().astype(np.int64) * n_cols + seen.indices)
        keys = rows.astype(np.int64) * n_cols + cols
        pos = np.searchsorted(seen_keys, keys).clip(max=seen_keys.size - 1)
        keep &= seen_keys[pos] != keys
    items = np.full((b, k), -1, dtype=np.int64)
    values = np.full((b, k), -np.inf, dtype=vals.dtype)
    _write_ranked(rows[keep], cols[keep], vals[keep], b, k, items, values)
    return items, values


def naive_top_k(scores: np.ndarray, k: int = K) -> np.ndarray:
    """Reference: a stable full sort of each row's negated scores (ties by column); -inf -> -1."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    finite = np.isfinite(np.take_along_axis(scores, order, axis=1))
    return np.where(finite, order, -1)


def argpartition_top_k(scores: np.ndarray, k: int = K) -> np.ndarray:
    """The plain baseline the benchmark compares against: argpartition, then sort the k."""
    part = np.argpartition(scores, -k, axis=1)[:, -k:]
    part_scores = np.take_along_axis(scores, part, axis=1)
    return np.take_along_axis(part, np.argsort(-part_scores, axis=1), axis=1)
