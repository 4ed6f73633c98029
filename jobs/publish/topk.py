"""Exact top-k unseen items for blocks of users: one sgemm per block, then a tile-max selection.

Scoring a user against 27k movies is one row of a matrix product; choosing the best 20 of
that row with a full `argpartition` costs about five times the product itself. The selection
here costs a fraction of it, and returns exactly the lists a full sort would:

1. **Product** (BLAS sgemm, float32) of a user block with the item factors, into a reused
   buffer. The item bias rides along as one extra factor column (user side = 1), so it costs
   nothing; padding items get a bias of -inf, so they can never be chosen.
2. **Exclusion**: the already-seen items (CSR indices per user) are set to -inf in place.
3. **Group maxima**: the n columns form G groups (column j is in group j mod G), so the
   maxima of all groups are one elementwise `max` over n / G contiguous slices of the row:
   a single SIMD pass over the block, about a fifth of the product's time.
4. **Threshold**: the k-th largest group maximum, t, found with `np.partition` over the small
   b × G matrix. The k groups holding those maxima contain k distinct items scoring >= t, so
   the true top-k all score >= t, and they all lie in groups whose maximum is >= t.
5. **Candidates**: only those groups (about k per user) are gathered; their items >= t are
   sorted by (score descending, item index ascending) and the first k kept. Ties at the
   threshold are all candidates, so ties break deterministically by item index, exactly as
   a stable full sort of the negated scores does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contracts.names import K

DEFAULT_BLOCK = 256  # users per product block (measured: benchmarks/bench_scoring.py)
DEFAULT_GROUPS = 512  # groups per row: the b x G partition stays cheap, candidates stay few


@dataclass(frozen=True)
class SeenCSR:
    """Already-seen item indices per user of one block, in CSR form (indptr has b + 1 entries)."""

    indptr: np.ndarray
    indices: np.ndarray

    @classmethod
    def from_lists(cls, lists: list[np.ndarray] | list[list[int]]) -> SeenCSR:
        """Build from one sequence of item indices per user."""
        lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
        indptr = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        if len(lists) and indptr[-1]:
            indices = np.concatenate([np.asarray(x, dtype=np.int64) for x in lists])
        else:
            indices = np.zeros(0, dtype=np.int64)
        return cls(indptr, indices)

    @classmethod
    def empty(cls, n_users: int) -> SeenCSR:
        """No seen items for any of `n_users` users."""
        return cls(np.zeros(n_users + 1, dtype=np.int64), np.zeros(0, dtype=np.int64))

    def rows(self, start: int, stop: int) -> SeenCSR:
        """The sub-CSR of users [start, stop), re-based to start at 0."""
        lo, hi = self.indptr[start], self.indptr[stop]
        return SeenCSR(self.indptr[start : stop + 1] - lo, self.indices[lo:hi])

    def row_ids(self) -> np.ndarray:
        """The block-local user row of each stored index."""
        return np.repeat(np.arange(len(self.indptr) - 1), np.diff(self.indptr))


class FactorTopK:
    """Top-k item indices for blocks of user factor rows against fixed item factors (+ bias).

    Prepared once per model and process (item side padded, transposed, float32); then
    `top_k(user_factors, seen)` is called per block and returns (items, scores), each
    (b, k), best first; rows with fewer than k unseen items are padded with -1 / -inf.
    """

    def __init__(
        self,
        item_factors: np.ndarray,
        item_bias: np.ndarray | None = None,
        k: int = K,
        groups: int = DEFAULT_GROUPS,
        block: int = DEFAULT_BLOCK,
    ) -> None:
        item_factors = np.asarray(item_factors, dtype=np.float32)
        if item_factors.ndim != 2 or item_factors.shape[0] == 0:
            raise ValueError(
                f"item factors must be a non-empty 2-d array, got {item_factors.shape}"
            )
        n_items, rank = item_factors.shape
        if item_bias is None:
            item_bias = np.zeros(n_items, dtype=np.float32)
        item_bias = np.asarray(item_bias, dtype=np.float32).reshape(-1)
        if item_bias.shape[0] != n_items:
            raise ValueError(f"item bias has {item_bias.shape[0]} entries for {n_items} items")
        if not (np.isfinite(item_factors).all() and np.isfinite(item_bias).all()):
            raise ValueError("item factors or bias contain NaN or infinite values")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k
        self.n_items = n_items
        self.rank = rank
        self.block = max(1, block)
        # Fewer groups than k cannot bound the top-k; tiny catalogues get one item per group.
        self.groups = max(k, min(groups, n_items))
        self.depth = -(-n_items // self.groups)
        n_pad = self.groups * self.depth
        # Item side, augmented with the bias as one more factor; padding items score -inf.
        side = np.zeros((rank + 1, n_pad), dtype=np.float32)
        side[:rank, :n_items] = item_factors.T
        side[rank, :n_items] = item_bias
        side[rank, n_items:] = -np.inf
        self._item_side = side
        self._buffer = np.empty((0, n_pad), dtype=np.float32)
        self._user_aug = np.empty((0, rank + 1), dtype=np.float32)

    def scores(self, user_factors: np.ndarray) -> np.ndarray:
        """Scores of a block of users against all (padded) items: the product step alone.

        Returns a view of a buffer that the next call overwrites.
        """
        b = user_factors.shape[0]
        if self._buffer.shape[0] < b:
            self._buffer = np.empty((b, self._item_side.shape[1]), dtype=np.float32)
            self._user_aug = np.ones((b, self.rank + 1), dtype=np.float32)
        user_aug = self._user_aug[:b]
        user_aug[:, : self.rank] = user_factors
        out = self._buffer[:b]
        np.matmul(user_aug, self._item_side, out=out)
        return out

    def top_k(
        self, user_factors: np.ndarray, seen: SeenCSR | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k unseen items (indices, scores) for each user row, in blocks of `self.block`."""
        user_factors = np.asarray(user_factors, dtype=np.float32)
        if user_factors.ndim != 2 or user_factors.shape[1] != self.rank:
            raise ValueError(
                f"user factors must be (b, {self.rank}), got {tuple(user_factors.shape)}"
            )
        b = user_factors.shape[0]
        if seen is None:
            seen = SeenCSR.empty(b)
        if len(seen.indptr) != b + 1:
            raise ValueError(f"seen CSR has {len(seen.indptr) - 1} rows for {b} users")
        items = np.full((b, self.k), -1, dtype=np.int64)
        values = np.full((b, self.k), -np.inf, dtype=np.float32)
        for start in range(0, b, self.block):
            stop = min(b, start + self.block)
            block_seen = seen.rows(start, stop)
            scores = self.scores(user_factors[start:stop])
            exclude_seen(scores, block_seen, self.n_items)
            select_top_k(scores, self.k, self.groups, items[start:stop], values[start:stop])
        return items, values


def exclude_seen(scores: np.ndarray, seen: SeenCSR, n_items: int) -> None:
    """Set the seen positions of each row to -inf, in place (indices must be < n_items)."""
    if seen.indices.size == 0:
        return
    if seen.indices.min() < 0 or seen.indices.max() >= n_items:
        raise ValueError(f"seen item index out of range [0, {n_items})")
    scores[seen.row_ids(), seen.indices] = -np.inf


def select_top_k(
    scores: np.ndarray,
    k: int,
    groups: int,
    out_items: np.ndarray,
    out_values: np.ndarray,
) -> None:
    """Write each row's k best (finite) columns, best first, ties by lower column, into out_*.

    `scores` is (b, depth * groups); group c holds the columns j with j % groups == c, so the
    group maxima are one elementwise max over `depth` contiguous slices of each row (SIMD,
    one pass). Rows with fewer than k finite scores keep -1 / -inf padding.
    """
    b, n_pad = scores.shape
    depth = n_pad // groups
    if depth * groups != n_pad or groups < k:
        raise ValueError(f"{n_pad} columns do not split into {groups} groups (k={k})")
    stacked = scores.reshape(b, depth, groups)
    group_max = stacked.max(axis=1)
    threshold = np.partition(group_max, groups - k, axis=1)[:, groups - k]
    cand_rows, cand_groups = np.nonzero(group_max >= threshold[:, None])
    cand = stacked[cand_rows, :, cand_groups]  # (m, depth): every member of each group
    hit, level = np.nonzero(cand >= threshold[cand_rows, None])
    vals = cand[hit, level]
    finite = vals > -np.inf
    rows = cand_rows[hit][finite]
    cols = level[finite] * groups + cand_groups[hit][finite]
    _write_ranked(rows, cols, vals[finite], b, k, out_items, out_values)


def _write_ranked(
    rows: np.ndarray,
    cols: np.ndarray,
    vals: np.ndarray,
    b: int,
    k: int,
    out_items: np.ndarray,
    out_values: np.ndarray,
) -> None:
    """Sort (row, -value, col) and write the first k entries of each row into out_*."""
    rows = rows.astype(np.int64, copy=False)
    cols = cols.astype(np.int64, copy=False)
    row_bits = max(1, int(b - 1).bit_length())
    col_bits = max(1, int(cols.max(initial=0)).bit_length())
    if vals.dtype == np.float32 and row_bits + col_bits <= 32:
        # One unique uint64 key per entry, (row, descending value, column): a single sort,
        # about 5x cheaper than a three-key lexsort on these small arrays.
        key = (rows.astype(np.uint64) << np.uint64(32 + col_bits)) | cols.astype(np.uint64)
        key |= _descending_bits(vals).astype(np.uint64) << np.uint64(col_bits)
        order = np.argsort(key)
    else:
        order = np.lexsort((cols, -vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    starts = np.zeros(b + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=b), out=starts[1:])
    position = np.arange(rows.size) - starts[rows]
    first = position < k
    out_items[rows[first], position[first]] = cols[first]
    out_values[rows[first], position[first]] = vals[first]


def _descending_bits(vals: np.ndarray) -> np.ndarray:
    """uint32 keys that sort finite float32 values in descending order (-0.0 equals 0.0)."""
    bits = (np.asarray(vals, dtype=np.float32) + np.float32(0.0)).view(np.uint32)
    ascending = np.where(bits & np.uint32(0x80000000), ~bits, bits | np.uint32(0x80000000))
    return ~ascending


def fill_from_ranking(
    items: np.ndarray, fallback: np.ndarray, seen: SeenCSR | None = None
) -> np.ndarray:
    """Replace -1 padding with the best unseen, not yet listed items of a fallback ranking.

    Used for users whose model list is short (e.g. kNN with few neighbours); a row with
    fewer unseen fallback items than padding slots keeps some -1 (the audit reports it).
    """
    items = items.copy()
    short = np.nonzero((items < 0).any(axis=1))[0]
    for row in short:
        listed = set(items[row][items[row] >= 0].tolist())
        if seen is not None:
            listed.update(seen.indices[seen.indptr[row] : seen.indptr[row + 1]].tolist())
        extra = [i for i in fallback.tolist() if i not in listed]
        slots = np.nonzero(items[row] < 0)[0]
        take = extra[: len(slots)]
        items[row, slots[: len(take)]] = take
    return items


def explore_slots(
    items: np.ndarray, n_items: int, slots: int, rng: np.random.Generator, seen: SeenCSR
) -> np.ndarray:
    """The lists with their last `slots` places given to items drawn uniformly from those the
    row has neither seen nor listed above them: exploration that lets movies outside the
    model's favourites be shown and so be watched and learnt (the mitigation of popularity
    reinforcement, docs/responsible-ml.md). A row with too few such items keeps its own."""
    if slots <= 0:
        return items
    items = items.copy()
    k = items.shape[1]
    keep = max(0, k - slots)
    for row in range(items.shape[0]):
        banned = set(items[row, :keep].tolist())
        banned.update(seen.indices[seen.indptr[row] : seen.indptr[row + 1]].tolist())
        free = n_items - len(banned - {-1})
        if free < k - keep:
            continue
        picks: list[int] = []
        while len(picks) < k - keep:
            for item in rng.integers(0, n_items, 2 * (k - keep)).tolist():
                if item not in banned and len(picks) < k - keep:
                    picks.append(item)
                    banned.add(item)
        items[row, keep:] = picks
    return items
