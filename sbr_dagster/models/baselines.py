"""Non-neural baselines that score every item from the last item of a session prefix.

They give the neural models a yardstick: popularity, first-order Markov, sequential rules and
session-co-occurrence item-kNN. Each ranks by score, then by train popularity, then by lower
item_idx (``ranking.popularity_order``), so an item without evidence falls back to popularity and
the rank of a target is exact (no ties left to resolve).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sbr_dagster.data import timeline
from sbr_dagster.data.arrays import Sessions, prediction_index
from sbr_dagster.models.base import AfterEpoch, Log, ModelConfig, SessionModel
from sbr_dagster.models.ranking import ScoreChunk, popularity_order, target_ranks

# Sessions per block of the item x session incidence for item-kNN (~60 MiB at 3.7k items); larger
# blocks keep the BLAS product efficient.
_KNN_SESSION_BLOCK = 4096
RANK_CHUNK = 4096  # predictions scored at a time: bounds the [chunk, n_items] score matrix


def pair_counts(items: np.ndarray, offsets: np.ndarray, n_items: int, distance: int) -> np.ndarray:
    """``counts[a, b]``: how often b follows a exactly ``distance`` events later in the same session."""
    session = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    same_session = session[:-distance] == session[distance:]
    pairs = items[:-distance][same_session].astype(np.int64) * n_items + items[distance:][same_session]
    return np.bincount(pairs, minlength=n_items * n_items).reshape(n_items, n_items)


class Baseline(SessionModel):
    """Fitted in one pass over the train sessions; ``scores`` rows score every item after one last item."""

    popularity: np.ndarray
    tie_order: np.ndarray

    def fit(
        self, train: Sessions, n_items: int, *, after_epoch: AfterEpoch | None = None, log: Log = print
    ) -> None:
        items = np.asarray(train.items)
        offsets = np.asarray(train.offsets, dtype=np.int64)
        self.popularity = np.bincount(items, minlength=n_items)
        self.tie_order = popularity_order(self.popularity)
        self._fit(items, offsets, n_items)

    def _fit(self, items: np.ndarray, offsets: np.ndarray, n_items: int) -> None:
        """Learn the model's own evidence (popularity is already known)."""

    def scores(self, last_items: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def rank(self, sessions: Sessions) -> np.ndarray:
        items = np.asarray(sessions.items)
        _, event = prediction_index(sessions.offsets)
        last_items, targets = items[event - 1], items[event]
        ranks = np.empty(targets.size, dtype=np.int64)
        for part in _parts(targets.size):
            ranks[part] = target_ranks(self.scores(last_items[part]), targets[part], self.tie_order)
        return ranks

    def score_next(self, histories: Sessions) -> np.ndarray:
        """Scores after each history's last item; an empty history has none (no evidence)."""
        lengths = np.diff(histories.offsets)
        last = np.where(lengths > 0, histories.items[np.maximum(histories.offsets[1:] - 1, 0)], -1)
        return np.asarray(self.scores(last), dtype=np.float64)

    def replay_scores(self, stream: timeline.Replay) -> Iterator[ScoreChunk]:
        fed = timeline.last_fed_before(stream)[stream.target_events]
        last_items = np.where(fed >= 0, stream.items[np.maximum(fed, 0)], -1)
        for part in _parts(last_items.size):
            yield part, self.scores(last_items[part])


def _parts(n: int) -> Iterator[slice]:
    """``RANK_CHUNK`` predictions at a time."""
    return (slice(start, start + RANK_CHUNK) for start in range(0, n, RANK_CHUNK))


class Popularity(Baseline):
    """Most-rated train items first, whatever the session did."""

    name = "pop"

    def scores(self, last_items: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity.astype(np.float32), (len(last_items), self.popularity.size))


class ItemToItem(Baseline):
    """Scores are one row of an item x item matrix, picked by the last item."""

    matrix: np.ndarray

    def scores(self, last_items: np.ndarray) -> np.ndarray:
        """Row ``matrix[a]`` per last item ``a``; a zero row (no evidence) where it is -1 (none)."""
        last_items = np.asarray(last_items)
        rows = self.matrix[np.maximum(last_items, 0)]
        if (last_items < 0).any():
            rows[last_items < 0] = 0
        return rows


class Markov(ItemToItem):
    """First-order transitions: how often b directly followed a in train sessions."""

    name = "markov"

    def _fit(self, items: np.ndarray, offsets: np.ndarray, n_items: int) -> None:
        # Counts stay below 2**24 (one per train event), so float32 holds them exactly.
        self.matrix = pair_counts(items, offsets, n_items, 1).astype(np.float32)


@dataclass(frozen=True)
class SequentialRulesConfig(ModelConfig):
    steps: int = 10  # b after a within this many events is a rule a -> b

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {self.steps!r}")


class SequentialRules(ItemToItem):
    """Rule a -> b gains 1/d each time b follows a d <= ``steps`` events later in a session."""

    name = "sr"
    config_class = SequentialRulesConfig
    config: SequentialRulesConfig

    def _fit(self, items: np.ndarray, offsets: np.ndarray, n_items: int) -> None:
        steps = self.config.steps
        # Sum in integer units of 1/lcm(1..steps) so equal weights tie exactly, then scale once.
        unit = math.lcm(*range(1, steps + 1))
        weights = np.zeros((n_items, n_items), dtype=np.int64)
        for distance in range(1, steps + 1):
            weights += pair_counts(items, offsets, n_items, distance) * (unit // distance)
        self.matrix = weights / unit


class ItemKNN(ItemToItem):
    """Cosine similarity of items over the sets of train sessions containing them."""

    name = "item_knn"

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
