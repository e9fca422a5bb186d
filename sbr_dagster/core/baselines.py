"""Non-neural baselines that score every item from the last item of a session prefix.

They give the GRU a yardstick: popularity, first-order Markov, sequential rules and
session-co-occurrence item-kNN. All share one ranking: score descending, then train popularity
descending, then lower item_idx, so an item without evidence falls back to popularity and the
rank of a target is exact (no ties left to resolve).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from sbr_dagster.core.evaluation import prediction_index

# Sessions per block of the item x session incidence for item-kNN (~60 MiB at 3.7k items); larger
# blocks keep the BLAS product efficient.
_KNN_SESSION_BLOCK = 4096


def tie_break_rank(popularity: np.ndarray) -> np.ndarray:
    """Position of each item in the fallback order: popularity descending, then lower item_idx."""
    order = np.argsort(-np.asarray(popularity), kind="stable")
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    return rank


def composite_ranks(scores: np.ndarray, targets: np.ndarray, tie_rank: np.ndarray) -> np.ndarray:
    """1 + items strictly before the target in (score desc, ``tie_rank`` asc); one per row of ``scores``."""
    targets = np.asarray(targets)
    target_scores = np.take_along_axis(scores, targets[:, None], axis=1)
    before = scores > target_scores
    before |= (scores == target_scores) & (tie_rank[None, :] < tie_rank[targets][:, None])
    return 1 + np.count_nonzero(before, axis=1).astype(np.int64)


def pair_counts(items: np.ndarray, offsets: np.ndarray, n_items: int, distance: int) -> np.ndarray:
    """``counts[a, b]``: how often b follows a exactly ``distance`` events later in the same session."""
    session = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    same_session = session[:-distance] == session[distance:]
    pairs = items[:-distance][same_session].astype(np.int64) * n_items + items[distance:][same_session]
    return np.bincount(pairs, minlength=n_items * n_items).reshape(n_items, n_items)


class Baseline:
    """Fitted on the train sessions; ``scores`` rows score every item for one prefix's last item."""

    popularity: np.ndarray
    tie_rank: np.ndarray

    def fit(self, items: np.ndarray, offsets: np.ndarray, n_items: int) -> Baseline:
        items = np.asarray(items)
        offsets = np.asarray(offsets, dtype=np.int64)
        self.popularity = np.bincount(items, minlength=n_items)
        self.tie_rank = tie_break_rank(self.popularity)
        self._fit(items, offsets, n_items)
        return self

    def _fit(self, items: np.ndarray, offsets: np.ndarray, n_items: int) -> None:
        """Learn the model's own evidence (popularity is already known)."""

    def scores(self, last_items: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def ranks(self, last_items: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return composite_ranks(self.scores(last_items), targets, self.tie_rank)


class Popularity(Baseline):
    """Most-rated train items first, whatever the session did."""

    def scores(self, last_items: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity.astype(np.float32), (len(last_items), self.popularity.size))


class ItemToItem(Baseline):
    """Scores are one row of an item x item matrix, picked by the last item."""

    matrix: np.ndarray

    def scores(self, last_items: np.ndarray) -> np.ndarray:
        return self.matrix[np.asarray(last_items)]


class Markov(ItemToItem):
    """First-order transitions: how often b directly followed a in train sessions."""

    def _fit(self, items: np.ndarray, offsets: np.ndarray, n_items: int) -> None:
        # Counts stay below 2**24 (one per train event), so float32 holds them exactly.
        self.matrix = pair_counts(items, offsets, n_items, 1).astype(np.float32)


class SequentialRules(ItemToItem):
    """Rule a -> b gains 1/d each time b follows a d <= ``steps`` events later in a session."""

    def __init__(self, steps: int = 10) -> None:
        self.steps = steps

    def _fit(self, items: np.ndarray, offsets: np.ndarray, n_items: int) -> None:
        # Sum in integer units of 1/lcm(1..steps) so equal weights tie exactly, then scale once.
        unit = math.lcm(*range(1, self.steps + 1))
        weights = np.zeros((n_items, n_items), dtype=np.int64)
        for distance in range(1, self.steps + 1):
            weights += pair_counts(items, offsets, n_items, distance) * (unit // distance)
        self.matrix = weights / unit


class ItemKNN(ItemToItem):
    """Cosine similarity of items over the sets of train sessions containing them."""

    def _fit(self, items: np.ndarray, offsets: np.ndarray, n_items: int) -> None:
        n_sessions = len(offsets) - 1
        session = np.repeat(np.arange(n_sessions, dtype=np.int64), np.diff(offsets))
        incidence = np.unique(session * n_items + items)  # distinct (session, item), session-major
        session, item = np.divmod(incidence, n_items)
        block_starts = np.arange(0, n_sessions + _KNN_SESSION_BLOCK, _KNN_SESSION_BLOCK)
        block_bounds = np.searchsorted(session, block_starts)
        shared = np.zeros((n_items, n_items), dtype=np.float32)  # exact: counts < 2**24 sessions
        for lo, hi in itertools.pairwise(block_bounds):
            if lo == hi:
                continue
            block = np.zeros((n_items, _KNN_SESSION_BLOCK), dtype=np.float32)
            block[item[lo:hi], session[lo:hi] % _KNN_SESSION_BLOCK] = 1.0
            shared += block @ block.T
        np.fill_diagonal(shared, 0.0)
        support = np.sqrt(np.bincount(item, minlength=n_items).astype(np.float64))
        norm = np.outer(support, support)
        self.matrix = np.divide(shared, norm, out=np.zeros_like(norm), where=norm > 0).astype(np.float32)


BASELINES: dict[str, type[Baseline]] = {
    "pop": Popularity,
    "markov": Markov,
    "sr": SequentialRules,
    "item_knn": ItemKNN,
}


def baseline_ranks(model: Baseline, items: np.ndarray, offsets: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Rank of every prediction's target, in prediction order, scoring ``chunk`` predictions at a time."""
    items = np.asarray(items)
    _, event = prediction_index(offsets)
    ranks = np.empty(event.size, dtype=np.int64)
    for start in range(0, event.size, chunk):
        batch = event[start : start + chunk]
        ranks[start : start + chunk] = model.ranks(items[batch - 1], items[batch])
    return ranks
