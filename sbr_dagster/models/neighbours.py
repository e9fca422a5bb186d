"""Nearest-neighbour session baselines of the session-rec benchmarks, and recent popularity.

Ludewig & Jannach (2018) found session-based kNN (SKNN) and its sequence-aware variant V-SKNN as
accurate as the neural models on most data sets, and STAN (Garg et al. 2019) adds time to them: they
are the yardsticks a GRU has to beat. The three share one scoring core (``SessionKNN``):

1. the current session (the items it fed so far) is compared with the training sessions holding
   one of its items; only the ``sample_size`` most recent of them (by the time of their last
   event; start time, then session order, without timestamps) are candidates;
2. each candidate gets a similarity; the ``k`` most similar are the neighbours (ties: the more
   recent session);
3. an item scores the sum, over the neighbours holding it, of the neighbour's similarity times an
   item weight (1 for SKNN, IDF for V-SKNN, closeness to the shared items for STAN).

The models differ only in the weights of steps 2 and 3 (session-rec: ``algorithms/knn``).

Every prediction's scores come out bit for bit the same whichever call computes them (``rank``,
``rank_replay``, ``score_next``) and however predictions are chunked, so the ranks of a replay are
exactly the ranks of ``score_next`` on each target's context: the overlaps of step 1 are integers
(exact in any summation order), so a long session accumulates them prediction after prediction
over a dense [predictions, sessions] block while short ones multiply sparse matrices; every
floating-point sum runs in one fixed order (step 3: over the neighbours by recency).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from sbr_dagster.data import timeline
from sbr_dagster.data.arrays import Sessions, prediction_index
from sbr_dagster.kernels import kernel
from sbr_dagster.models.base import AfterEpoch, Log, ModelConfig, SessionModel
from sbr_dagster.models.baselines import Baseline
from sbr_dagster.models.products import carried_product, dense_product, leading_product
from sbr_dagster.models.ranking import ScoreChunk, chunk_ranks, popularity_order, target_ranks

DAY_S = 86_400
# A chunk of predictions goes dense when the sparse product would touch more than this many
# (item, session) pairs per train session and prediction: long sessions under the ``user``
# definition, where one prediction's items reach nearly every train session.
_DENSE_WHEN = 1.0
_MATCHES: str | None = None  # STAN's way to find q* when set (tests); else the cheapest
# Bounds on a chunk's blocks (16-32 MiB each): larger ones cost more in fresh zeroed pages than
# they save in per-chunk overhead.
_DENSE_CELLS = 1 << 21  # [predictions, sessions] cells of a dense chunk
_SPARSE_ROWS = 1024  # predictions of a sparse chunk ([rows, items] scores)
_SPARSE_PAIRS = 1 << 22  # (prediction, candidate session) pairs of a sparse chunk
_EXPANDED = 1 << 21  # STAN: (neighbour, item) entries expanded at a time to find q*
# V-SKNN: a row's overlaps summing below this keep every partial sum of its item scores (and of
# the difference from the previous row) an exact integer in float64.
_EXACT_SUMS = float(2**52)
_NEGLIGIBLE = 1e-12  # STAN: a position weight below this counts as 0 (see STAN)
_THREADS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _check_positive(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


SIMILARITIES = ("cosine", "jaccard")
WEIGHTINGS = {"same": 0, "linear": 1, "quadratic": 2}  # position weight (p / l) ** power


@dataclass(frozen=True)
class SKNNConfig(ModelConfig):
    """Defaults: the best validation Recall@20 of ``bench/tune_neighbours.py``'s grid."""

    k: int = 50  # neighbours whose items are scored
    sample_size: int = 500  # most recent sessions sharing an item that are compared at all
    similarity: str = "cosine"  # of the binary item sets: "cosine" or "jaccard"

    def __post_init__(self) -> None:
        _check_count("k", self.k)
        _check_count("sample_size", self.sample_size)
        _check_choice("similarity", self.similarity, SIMILARITIES)


@dataclass(frozen=True)
class VSKNNConfig(ModelConfig):
    """Defaults: the best validation Recall@20 of ``bench/tune_neighbours.py``'s grid."""

    k: int = 500
    sample_size: int = 5000
    # Weight of the current session's item at position p of l: "linear" p / l (the most recent 1,
    # one 1/l less per step back; session-rec's "div"), "quadratic" (p / l) ** 2, "same" 1.
    weighting: str = "quadratic"
    idf_weighting: bool = True  # item scores times 1 + log(sessions / sessions holding the item)

    def __post_init__(self) -> None:
        _check_count("k", self.k)
        _check_count("sample_size", self.sample_size)
        _check_choice("weighting", self.weighting, tuple(WEIGHTINGS))
        if not isinstance(self.idf_weighting, bool):
            raise ValueError(f"idf_weighting must be true or false, got {self.idf_weighting!r}")


@dataclass(frozen=True)
class STANConfig(ModelConfig):
    """Defaults: the best validation Recall@20 of ``bench/tune_neighbours.py``'s grid. Slower
    decays than session-rec's (λ1 1.02, λ2 5 days, λ3 2.05, tuned on e-commerce clicks) win on
    MovieLens: a viewer's last twenty or so ratings matter, and neighbours weeks apart still count."""

    k: int = 100
    sample_size: int = 5000
    lambda_position: float = 20.0  # λ1: w1 = exp((p - l) / λ1) for the current session's positions
    lambda_time_s: float = 50.0 * DAY_S  # λ2 in seconds: w2 = exp(-|t_now - t_neighbour| / λ2)
    lambda_neighbour: float = 10.0  # λ3: w3 = exp(-|p_item - p_match| / λ3) in the neighbour

    def __post_init__(self) -> None:
        _check_count("k", self.k)
        _check_count("sample_size", self.sample_size)
        _check_positive("lambda_position", self.lambda_position)
        _check_positive("lambda_time_s", self.lambda_time_s)
        _check_positive("lambda_neighbour", self.lambda_neighbour)


@dataclass(frozen=True)
class RecentPopularityConfig(ModelConfig):
    """Default: the best validation Recall@20 of ``bench/tune_neighbours.py``'s grid."""

    days: float = 7.0  # window before the last train event whose ratings are counted

    def __post_init__(self) -> None:
        _check_positive("days", self.days)


def _expand(starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(owner, index)`` of every index in the ranges ``[starts[j], stops[j])``, range by range."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.maximum(np.asarray(stops, dtype=np.int64) - starts, 0)
    owner = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)
    shift = starts - (np.cumsum(lengths) - lengths)
    return owner, np.arange(owner.size, dtype=np.int64) + shift[owner]


def _runs(begin: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(follows, start)``: whether each prediction continues the previous one's session (same
    begin, no less known), and where its new events start (the previous end, else its begin)."""
    follows = np.zeros(begin.size, dtype=bool)
    follows[1:] = (begin[1:] == begin[:-1]) & (end[1:] >= end[:-1])
    return follows, np.where(follows, np.concatenate([[0], end[:-1]]), begin)


def _session_times(train: Sessions) -> np.ndarray | None:
    """When each train session last had an event (its start without event times), in seconds."""
    offsets = np.asarray(train.offsets, dtype=np.int64)
    if train.timestamps is not None and len(train.timestamps):
        last = np.maximum(offsets[1:] - 1, 0)
        return np.asarray(train.timestamps, dtype=np.float64)[last]
    if train.start_times is not None:
        return np.asarray(train.start_times, dtype=np.float64)
    return None


@dataclass(frozen=True)
class _TrainIndex:
    """The train sessions, most recent first, as sparse incidence matrices of their distinct items."""

    by_session: sp.csr_matrix  # [sessions, items]: 1.0 where the session holds the item, items sorted
    positions: np.ndarray  # int64 per stored entry of ``by_session``: the item's last position (1-based)
    by_item: sp.csr_matrix  # [items, sessions]: the transpose, sessions sorted
    lengths: np.ndarray  # float64: distinct items per session
    times: np.ndarray | None  # float64 seconds of each session's last event
    holding: np.ndarray  # int64 per item: sessions holding it

    @property
    def n_sessions(self) -> int:
        return self.by_session.shape[0]

    @classmethod
    def of(cls, train: Sessions, n_items: int) -> _TrainIndex:
        items = np.asarray(train.items, dtype=np.int64)
        offsets = np.asarray(train.offsets, dtype=np.int64)
        n_sessions = len(offsets) - 1
        session = np.repeat(np.arange(n_sessions, dtype=np.int64), np.diff(offsets))
        position = np.arange(items.size, dtype=np.int64) - offsets[session] + 1
        times = _session_times(train)
        later_first = -np.arange(n_sessions)
        recency = np.lexsort((later_first, -times)) if times is not None else np.arange(n_sessions)[::-1]
        rank = np.empty(n_sessions, dtype=np.int64)
        rank[recency] = np.arange(n_sessions)
        key = rank[session] * n_items + items
        order = np.argsort(key, kind="stable")  # by (recency, item), then position
        last = np.ones(order.size, dtype=bool)
        last[:-1] = key[order][1:] != key[order][:-1]
        kept = order[last]
        rows = rank[session[kept]]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_sessions))]).astype(np.int64)
        by_session = sp.csr_matrix((np.ones(kept.size), items[kept], indptr), shape=(n_sessions, n_items))
        by_item = by_session.T.tocsr()
        by_item.sort_indices()
        return cls(
            by_session=by_session,
            positions=position[kept],
            by_item=by_item,
            lengths=np.diff(indptr).astype(np.float64),
            times=None if times is None else times[recency],
            holding=np.diff(by_item.indptr).astype(np.int64),
        )


@dataclass(frozen=True)
class _Contexts:
    """What each prediction knows: its current session is ``items[begin:end]`` (oldest first).

    Predictions sharing ``begin`` are one session's, in order, each knowing at least as much as
    the one before (``end`` does not decrease), which lets long sessions add up their overlaps.
    """

    items: np.ndarray  # int64 item of every fed event
    begin: np.ndarray  # int64 per prediction
    end: np.ndarray  # int64 per prediction
    times: np.ndarray | None  # float64 seconds of each prediction's last fed event (nan: none)
    position: np.ndarray  # int64 per event: 1-based position in its session
    previous: np.ndarray  # int64 per event: the session's previous event of the same item, or -1
    following: np.ndarray  # int64 per event: its next event of the same item, or len(items)
    first_before: np.ndarray  # int64 [events + 1]: events before each that are their item's first

    @property
    def distinct(self) -> np.ndarray:
        """Distinct items of each prediction's current session."""
        return (self.first_before[self.end] - self.first_before[self.begin]).astype(np.float64)

    @property
    def n(self) -> int:
        return self.begin.size

    @property
    def lengths(self) -> np.ndarray:
        return self.end - self.begin

    @classmethod
    def of(
        cls, items: np.ndarray, begin: np.ndarray, end: np.ndarray, times: np.ndarray | None, n_items: int
    ) -> _Contexts:
        items = np.asarray(items, dtype=np.int64)
        begin, end = np.asarray(begin, dtype=np.int64), np.asarray(end, dtype=np.int64)
        n = items.size
        starts = np.unique(begin)
        stops = np.zeros(starts.size, dtype=np.int64)
        np.maximum.at(stops, np.searchsorted(starts, begin), end)
        index = np.arange(n, dtype=np.int64)
        session = np.searchsorted(starts, index, side="right") - 1
        inside = session >= 0
        inside[inside] = index[inside] < stops[session[inside]]
        anchor = starts[np.maximum(session, 0)] if starts.size else index
        position = np.where(inside, index - anchor + 1, 0)
        key = np.where(inside, session * n_items + items, -1 - index)  # outside: never equal
        order = np.argsort(key, kind="stable")
        same = key[order][1:] == key[order][:-1]
        previous = np.full(n, -1, dtype=np.int64)
        previous[order[1:][same]] = order[:-1][same]
        following = np.full(n, n, dtype=np.int64)
        following[order[:-1][same]] = order[1:][same]
        first_before = np.concatenate([[0], np.cumsum(previous < 0)]).astype(np.int64)
        return cls(items, begin, end, times, position, previous, following, first_before)


@dataclass(frozen=True)
class _Candidates:
    """Each prediction's candidate sessions, most recent first: a [predictions, width] grid (dense
    chunks), or flat arrays sorted by prediction then recency (sparse chunks, whose predictions
    have very different numbers of candidates)."""

    columns: np.ndarray  # int64 train session (recency index) of each slot; -1: none
    overlap: np.ndarray  # float64 sum over the shared items of p ** power (an integer); 0: none
    rows: np.ndarray | None = None  # flat: each candidate's prediction
    slots: np.ndarray | None = None  # flat: its rank among the prediction's candidates
    weighted: np.ndarray | None = None  # flat: the overlap under ``_weights`` (STAN), when it has them

    @property
    def every_session(self) -> bool:
        """Slot j is session j (a dense chunk whose sample reaches most sessions)."""
        return self.rows is None and self.columns.strides[0] == 0

    def per_row(self, values: np.ndarray) -> np.ndarray:
        """A per-prediction array at every candidate."""
        return values[:, None] if self.rows is None else values[self.rows]

    def of_sessions(self, values: np.ndarray) -> np.ndarray:
        """A per-session array (by recency) at every candidate, broadcasting when it can."""
        return values[None, :] if self.every_session else values[self.columns]


def _top(grid: np.ndarray, k: int) -> np.ndarray:
    """Where each row of ``grid`` has one of its ``k`` largest values above -inf; ties: lower
    column first (the more recent session)."""
    if k >= grid.shape[1]:
        return grid > -np.inf
    kth = -np.partition(-grid, k - 1, axis=1)[:, k - 1 : k]
    above = grid > kth
    tied = (grid == kth) & (grid > -np.inf)
    room = k - above.sum(axis=1, keepdims=True)
    return above | (tied & (np.cumsum(tied, axis=1) <= room))


def _top_flat(rows: np.ndarray, slots: np.ndarray, values: np.ndarray, n_rows: int, k: int) -> np.ndarray:
    """``_top`` for flat candidates: rows with up to ``k`` candidates keep them all, the others go
    through grids of similar widths (powers of two), so padding never doubles the work."""
    counts = np.bincount(rows, minlength=n_rows)
    chosen = values > -np.inf
    width = k
    while (counts > width).any():
        in_bucket = (counts > width) & (counts <= 2 * width)
        width *= 2
        if not in_bucket.any():
            continue
        local = np.cumsum(in_bucket) - 1
        entries = np.flatnonzero(in_bucket[rows])
        grid = np.full((int(in_bucket.sum()), width), -np.inf)
        at = local[rows[entries]], slots[entries]
        grid[at] = values[entries]
        chosen[entries] = _top(grid, k)[at]
    return chosen


class SessionKNN(SessionModel):
    """The shared core: candidates, similarities, neighbours and item scores, chunk by chunk.

    Subclasses say how a shared item at position p of the current session counts in the overlap
    (``power``: p ** power, exact integers), how overlaps become similarities, and how neighbours
    score their items. Fitted in one pass: the index of the train sessions is the whole model.
    """

    has_weights = False
    index: _TrainIndex
    popularity: np.ndarray
    tie_order: np.ndarray
    n_items: int
    # The current session's item at position p adds p ** power to a candidate's overlap (1: binary
    # incidence); the overlap is an exact integer, whatever the order it is summed in.
    power: ClassVar[int] = 0

    @property
    def k(self) -> int:
        return int(self.config.k)  # type: ignore[attr-defined]

    @property
    def sample_size(self) -> int:
        return int(self.config.sample_size)  # type: ignore[attr-defined]

    def fit(
        self, train: Sessions, n_items: int, *, after_epoch: AfterEpoch | None = None, log: Log = print
    ) -> None:
        self.n_items = n_items
        self.popularity = np.bincount(np.asarray(train.items), minlength=n_items)
        self.tie_order = popularity_order(self.popularity)
        self.index = _TrainIndex.of(train, n_items)

    # -- the three ways to ask -------------------------------------------------------------------

    def rank(self, sessions: Sessions) -> np.ndarray:
        """Every prefix of ``sessions`` is a current session; its time is its last event's."""
        items = np.asarray(sessions.items)
        session, event = prediction_index(sessions.offsets)
        times = None
        if sessions.timestamps is not None:
            times = np.asarray(sessions.timestamps, dtype=np.float64)[event - 1]
        begin = np.asarray(sessions.offsets, dtype=np.int64)[session]
        contexts = _Contexts.of(items, begin, event, times, self.n_items)
        return self._ranks(contexts, items[event].astype(np.int64))

    def score_next(self, histories: Sessions) -> np.ndarray:
        """Each whole history is a current session (w2 = 1 for STAN when histories have no times)."""
        offsets = np.asarray(histories.offsets, dtype=np.int64)
        begin, end = offsets[:-1], offsets[1:]
        times = None
        if histories.timestamps is not None:
            stamps = np.asarray(histories.timestamps, dtype=np.float64)
            times = np.where(end > begin, stamps[np.maximum(end - 1, 0)] if stamps.size else np.nan, np.nan)
        contexts = _Contexts.of(np.asarray(histories.items), begin, end, times, self.n_items)
        scores = np.zeros((contexts.n, self.n_items), dtype=np.float64)
        for lo, hi, dense in self._chunks(contexts):
            scores[lo:hi] = self._chunk_scores(contexts, lo, hi, dense)
        return scores

    def replay_scores(self, stream: timeline.Replay) -> Iterator[ScoreChunk]:
        """A target's current session: the events fed since its session's start (its time: the
        last of them; the target's own time is never read)."""
        contexts = self._replay_contexts(stream)
        for lo, hi, dense in self._chunks(contexts):
            yield slice(lo, hi), self._chunk_scores(contexts, lo, hi, dense)

    def rank_replay(self, stream: timeline.Replay) -> tuple[np.ndarray, np.ndarray]:
        """``replay_scores`` ranked both ways, chunks in parallel threads."""
        contexts = self._replay_contexts(stream)
        ranks = np.empty(contexts.n, dtype=np.int64), np.empty(contexts.n, dtype=np.int64)

        def work(lo: int, hi: int, dense: bool) -> None:
            scores = self._chunk_scores(contexts, lo, hi, dense)
            ranks[0][lo:hi], ranks[1][lo:hi] = chunk_ranks(stream, slice(lo, hi), scores, self.tie_order)

        self._each_chunk(contexts, work)
        return ranks

    def _replay_contexts(self, stream: timeline.Replay) -> _Contexts:
        fed = timeline.fed_contexts(stream)
        return _Contexts.of(fed.items, fed.begin, fed.end, fed.times, self.n_items)

    def _ranks(self, contexts: _Contexts, targets: np.ndarray) -> np.ndarray:
        """Ranks of ``targets`` among all items."""
        ranks = np.empty(contexts.n, dtype=np.int64)

        def work(lo: int, hi: int, dense: bool) -> None:
            scores = self._chunk_scores(contexts, lo, hi, dense)
            ranks[lo:hi] = target_ranks(scores, targets[lo:hi], self.tie_order)

        self._each_chunk(contexts, work)
        return ranks

    def _each_chunk(self, contexts: _Contexts, work: Callable[[int, int, bool], None]) -> None:
        """``work(lo, hi, dense)`` on every chunk, in parallel threads: NumPy and SciPy release the
        GIL in the heavy loops."""
        chunks = list(self._chunks(contexts))
        if _THREADS == 1 or len(chunks) == 1:
            for chunk in chunks:
                work(*chunk)
        else:
            with ThreadPoolExecutor(_THREADS) as pool:
                list(pool.map(lambda chunk: work(*chunk), chunks))

    # -- chunking --------------------------------------------------------------------------------

    def _chunks(self, contexts: _Contexts) -> Iterator[tuple[int, int, bool]]:
        """``(lo, hi, dense)`` slices of predictions: consecutive predictions of one kind, bounded
        in memory. Dense: a prediction whose items reach more (item, session) pairs than there are
        train sessions (``_DENSE_WHEN``); its session's earlier predictions give most of its overlaps."""
        n_sessions = max(self.index.n_sessions, 1)
        first = (contexts.previous < 0).astype(np.int64) * self.index.holding[contexts.items]
        reach = np.concatenate([[0], np.cumsum(first)])
        pairs = reach[contexts.end] - reach[contexts.begin]  # (item, session) pairs of each context
        dense = pairs > _DENSE_WHEN * n_sessions
        cost = np.where(dense, 0, np.minimum(pairs, n_sessions) + 1)
        dense_rows = max(1, _DENSE_CELLS // n_sessions)
        lo = 0
        while lo < contexts.n:
            kind = bool(dense[lo])
            stop = lo + int(np.argmax(dense[lo:] != kind)) if (dense[lo:] != kind).any() else contexts.n
            if kind:
                hi = min(stop, lo + dense_rows)
            else:
                budget = np.cumsum(cost[lo:stop])
                hi = lo + max(1, int(np.searchsorted(budget, _SPARSE_PAIRS, side="right")))
                hi = min(hi, lo + _SPARSE_ROWS, stop)
            yield lo, hi, kind
            lo = hi

    # -- step 1: candidates ----------------------------------------------------------------------

    def _event_values(self, contexts: _Contexts, events: np.ndarray, rows_end: np.ndarray) -> np.ndarray:
        """p ** power for the events that are an item's last in their row's context, else 0."""
        last = contexts.following[events] >= rows_end
        return np.where(last, contexts.position[events].astype(np.float64) ** self.power, 0.0)

    def _increments(self, contexts: _Contexts, events: np.ndarray) -> np.ndarray:
        """What an event adds to the running overlap: p ** power less its previous occurrence's."""
        earlier = contexts.previous[events]
        before = np.where(
            earlier >= 0, contexts.position[np.maximum(earlier, 0)].astype(np.float64) ** self.power, 0.0
        )
        return contexts.position[events].astype(np.float64) ** self.power - before

    def _candidates(self, contexts: _Contexts, lo: int, hi: int, dense: bool) -> _Candidates:
        """The ``sample_size`` most recent train sessions sharing an item with each prediction, and
        their overlaps."""
        n_rows, n_sessions, n_items = hi - lo, self.index.n_sessions, self.n_items
        begin, end = contexts.begin[lo:hi], contexts.end[lo:hi]
        width = min(self.sample_size, n_sessions)
        if dense:
            # A row continuing the previous one's session only adds the events in between.
            follows, start = _runs(begin, end)
            rows, events = _expand(start, end)
            values = self._increments(contexts, events)
            keep = values != 0
            added = sp.csr_matrix(
                (values[keep], (rows[keep], contexts.items[events[keep]])), shape=(n_rows, n_items)
            )
            overlap = dense_product(added, self.index.by_item)
            np.cumsum(overlap, axis=0, out=overlap)
            run_first = np.maximum.accumulate(np.where(follows, 0, np.arange(n_rows)))
            base = run_first - 1
            carried = base >= 0
            overlap[carried] -= overlap[base[carried]]
            everything = np.broadcast_to(np.arange(n_sessions, dtype=np.int64), overlap.shape)
            if width == n_sessions:
                return _Candidates(everything, overlap)
            shared = overlap > 0
            count = np.cumsum(shared, axis=1, dtype=np.int32)
            if 2 * width >= n_sessions:  # most sessions are candidates: keep them all in place
                overlap[count > width] = 0
                return _Candidates(everything, overlap)
            rows, columns = np.nonzero(shared & (count <= width))
            slots = count[rows, columns].astype(np.int64) - 1
            values = overlap[rows, columns]
        else:
            rows, events = _expand(begin, end)
            values = self._event_values(contexts, events, end[rows])
            keep = values != 0
            rows, events = rows[keep], events[keep]
            context = _by_row(rows, contexts.items[events], values[keep], n_rows, n_items)
            weights = self._weights(contexts, events, end[rows])
            found = leading_product(context, self.index.by_item, width, weights)
            rows, slots, columns, overlap, weighted = found
            return _Candidates(columns, overlap, rows, slots, weighted)
        grid_columns = np.full((n_rows, max(width, 1)), -1, dtype=np.int64)
        grid_columns[rows, slots] = columns
        grid_overlap = np.zeros((n_rows, max(width, 1)))
        grid_overlap[rows, slots] = values
        return _Candidates(grid_columns, grid_overlap)

    def _weights(self, contexts: _Contexts, events: np.ndarray, rows_end: np.ndarray) -> np.ndarray | None:
        """A second weight of each context event (its item's last), summed over the same candidates
        as the overlap by sparse chunks; None: the similarity needs no more than the overlap."""
        return None

    # -- step 2: neighbours ----------------------------------------------------------------------

    def _similarities(
        self, contexts: _Contexts, lo: int, hi: int, candidates: _Candidates, dense: bool
    ) -> np.ndarray:
        """Similarity of every candidate slot; 0, less or NaN (no candidate) never makes a neighbour."""
        raise NotImplementedError

    def _neighbours(
        self, contexts: _Contexts, lo: int, hi: int, dense: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(rows, columns, similarities)`` of every prediction's top ``k``, by row then recency."""
        candidates = self._candidates(contexts, lo, hi, dense)
        with np.errstate(divide="ignore", invalid="ignore"):
            similarity = self._similarities(contexts, lo, hi, candidates, dense)
        values = np.where(similarity > 0, similarity, -np.inf)
        if candidates.rows is None:
            rows, slots = np.nonzero(_top(values, self.k))
            return rows.astype(np.int64), candidates.columns[rows, slots], values[rows, slots]
        assert candidates.slots is not None
        chosen = _top_flat(candidates.rows, candidates.slots, values, hi - lo, self.k)
        return candidates.rows[chosen], candidates.columns[chosen], values[chosen]

    # -- step 3: item scores ---------------------------------------------------------------------

    def _chunk_scores(self, contexts: _Contexts, lo: int, hi: int, dense: bool) -> np.ndarray:
        """Scores ``[hi - lo, n_items]``: each neighbour adds its similarity to the items it holds."""
        rows, columns, similarity = self._neighbours(contexts, lo, hi, dense)
        weights = _by_row(rows, columns, similarity, hi - lo, self.index.n_sessions)
        return dense_product(weights, self.index.by_session)


def _by_row(
    rows: np.ndarray, columns: np.ndarray, values: np.ndarray, n_rows: int, n_columns: int
) -> sp.csr_matrix:
    """A CSR matrix of entries sorted by row, kept in their order within a row: the order the
    sparse product sums them in, so every path sums the same terms in the same order."""
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows))]).astype(np.int64)
    return sp.csr_matrix((values, columns, indptr), shape=(n_rows, n_columns))


class SKNN(SessionKNN):
    """Session-based kNN (Jannach & Ludewig 2017): cosine (or Jaccard) of binary item sets.

    The current session is what the viewer fed so far: under the ``user`` definition their whole
    history up to the prediction (every rating since they joined), under a time-gap definition the
    ratings since the last pause longer than the gap; train sessions are cut the same way, so a
    neighbour is another viewer's whole history, or one of their sittings.
    """

    name = "sknn"
    config_class = SKNNConfig
    config: SKNNConfig

    def _similarities(
        self, contexts: _Contexts, lo: int, hi: int, candidates: _Candidates, dense: bool
    ) -> np.ndarray:
        distinct = candidates.per_row(contexts.distinct[lo:hi])
        lengths = candidates.of_sessions(self.index.lengths)
        shared = candidates.overlap
        if self.config.similarity == "jaccard":
            return shared / (distinct + lengths - shared)
        return shared / np.sqrt(distinct * lengths)


class VSKNN(SessionKNN):
    """V-SKNN (Ludewig & Jannach 2018): recent items of the current session weigh more.

    The similarity is the dot product of the position-weighted current session with a candidate's
    binary item set (session-rec's ``vec`` without its division by the session's distinct items,
    which scales every candidate alike); an item's score is the sum of its neighbours' similarities,
    optionally times its IDF. Session: as ``SKNN`` (under ``user`` the viewer's whole history so far,
    so with linear weights the first rating of a 500-rating history still weighs 1/500).
    """

    name = "vsknn"
    config_class = VSKNNConfig
    config: VSKNNConfig

    @property
    def power(self) -> int:  # type: ignore[override]
        return WEIGHTINGS[self.config.weighting]

    def fit(
        self, train: Sessions, n_items: int, *, after_epoch: AfterEpoch | None = None, log: Log = print
    ) -> None:
        super().fit(train, n_items, after_epoch=after_epoch, log=log)
        holding = self.index.holding.astype(np.float64)
        idf = np.log(np.divide(self.index.n_sessions, holding, out=np.ones_like(holding), where=holding > 0))
        self.item_factor = 1.0 + idf

    def _similarities(
        self, contexts: _Contexts, lo: int, hi: int, candidates: _Candidates, dense: bool
    ) -> np.ndarray:
        # The overlap itself: the similarity divides it by the row's l ** power, which changes
        # neither the neighbours nor their order, and is applied once to the item scores.
        return candidates.overlap

    def _chunk_scores(self, contexts: _Contexts, lo: int, hi: int, dense: bool) -> np.ndarray:
        """Item scores as exact integer sums of the neighbours' overlaps, carried from a
        prediction to the next of its session (most neighbours stay), then / l ** power and times the IDF."""
        rows, columns, overlap = self._neighbours(contexts, lo, hi, dense)
        n_rows = hi - lo
        weights = _by_row(rows, columns, overlap, n_rows, self.index.n_sessions)
        exact = np.bincount(rows, weights=overlap, minlength=n_rows) < _EXACT_SUMS
        follows, _ = _runs(contexts.begin[lo:hi], contexts.end[lo:hi])
        carry = follows & exact & np.concatenate([[False], exact[:-1]])
        scores = carried_product(weights, self.index.by_session, carry)
        lengths = contexts.lengths[lo:hi].astype(np.float64) ** self.power
        scores /= np.where(lengths > 0, lengths, 1.0)[:, None]
        if self.config.idf_weighting:
            scores *= self.item_factor
        return scores


class STAN(SessionKNN):
    """STAN (Garg et al. 2019): SKNN with three decays, as session-rec implements it.

    w1 = exp((p - l) / λ1) weighs the current session's item at position p of l in a cosine
    similarity (sum of w1 over shared items / sqrt(sum of w1² · neighbour's distinct items)); w2 =
    exp(-|t_now - t_neighbour| / λ2) scales it, t_now being the current session's last fed event
    (never the target's own time) and t_neighbour the neighbour's last event, 1 without times;
    an item at position q of a neighbour scores the neighbour's similarity times w3 = exp(-|q -
    q*| / λ3), q* being the neighbour's last position holding an item of the current session.
    Items whose w1 is below 1e-12 (more than λ1·ln(1e12) ≈ 553 steps back by default) count as 0 in
    the similarity, but still make a session a candidate. Session: as ``SKNN``; under ``user`` the
    λ1 default weighs a viewer's last twenty or so ratings most, under a gap definition their last
    sitting's.
    """

    name = "stan"
    config_class = STANConfig
    config: STANConfig

    def fit(
        self, train: Sessions, n_items: int, *, after_epoch: AfterEpoch | None = None, log: Log = print
    ) -> None:
        super().fit(train, n_items, after_epoch=after_epoch, log=log)
        longest = int(self.index.positions.max(initial=0))
        self.neighbour_weight = np.exp(-np.arange(longest + 1) / self.config.lambda_neighbour)
        self.sqrt_lengths = np.sqrt(self.index.lengths)
        entry_rows = np.repeat(np.arange(self.index.n_sessions), np.diff(self.index.by_session.indptr))
        self.entry_keys = entry_rows * n_items + self.index.by_session.indices  # ascending
        self._decay_table = np.zeros(0)

    @property
    def window(self) -> int:
        """How many positions back w1 stays at or above ``_NEGLIGIBLE``."""
        return math.floor(self.config.lambda_position * math.log(1 / _NEGLIGIBLE)) + 1

    def _decay(self, n: int) -> np.ndarray:
        """w1 of the ages 0 .. n - 1 (the most recent event: age 0), element by element with
        ``math.exp``, so that a weight never depends on how long a table was asked for."""
        if self._decay_table.size < n:
            lam = self.config.lambda_position
            self._decay_table = np.array([math.exp(-age / lam) for age in range(n)])
        return self._decay_table

    def _weights(self, contexts: _Contexts, events: np.ndarray, rows_end: np.ndarray) -> np.ndarray:
        """w1 of each event in its row's context, 0 beyond the window (the one place w1 is computed:
        sparse chunks sum it with the overlaps, the similarity's norm reads it)."""
        age = rows_end - 1 - events
        inside = age < self.window
        w1 = np.zeros(age.size)
        w1[inside] = self._decay(int(age[inside].max(initial=-1)) + 1)[age[inside]]
        return w1

    def _similarities(
        self, contexts: _Contexts, lo: int, hi: int, candidates: _Candidates, dense: bool
    ) -> np.ndarray:
        begin, end = contexts.begin[lo:hi], contexts.end[lo:hi]
        n_rows = hi - lo
        rows, events = _expand(np.maximum(begin, end - self.window), end)
        last = contexts.following[events] >= end[rows]
        rows, events = rows[last], events[last]
        w1 = self._weights(contexts, events, end[rows])
        norm = np.sqrt(np.bincount(rows, weights=w1 * w1, minlength=n_rows))
        if candidates.rows is None:
            weighted = _by_row(rows, contexts.items[events], w1, n_rows, self.n_items)
            shared = dense_product(weighted, self.index.by_item)
            if not candidates.every_session:
                shared = np.take_along_axis(shared, np.maximum(candidates.columns, 0), axis=1)
            if self.sample_size < self.index.n_sessions:
                shared[candidates.overlap == 0] = 0  # sessions beyond the sample
        else:  # flat candidates: their numerators came with their overlaps
            assert candidates.weighted is not None
            shared = candidates.weighted
        similarity = shared
        similarity /= candidates.per_row(norm) * candidates.of_sessions(self.sqrt_lengths)
        if contexts.times is not None and self.index.times is not None:
            apart = np.abs(
                candidates.per_row(contexts.times[lo:hi]) - candidates.of_sessions(self.index.times)
            )
            apart /= -self.config.lambda_time_s
            w2 = np.exp(apart, out=apart)
            similarity *= np.where(np.isnan(w2), 1.0, w2)
        return similarity

    def _chunk_scores(self, contexts: _Contexts, lo: int, hi: int, dense: bool) -> np.ndarray:
        rows, columns, similarity = self._neighbours(contexts, lo, hi, dense)
        index = self.index
        match = self._matches(contexts, lo, hi, rows, columns)
        # One row of item weights per distinct (neighbour, q*), summed in recency order.
        span = int(index.positions.max(initial=0)) + 1
        unique, which = np.unique(columns * span + match, return_inverse=True)
        u_columns, u_match = np.divmod(unique, span)
        u_starts, u_stops = index.by_session.indptr[u_columns], index.by_session.indptr[u_columns + 1]
        owner, entries = _expand(u_starts, u_stops)
        item_weights = sp.csr_matrix(
            (
                self.neighbour_weight[np.abs(index.positions[entries] - u_match[owner])],
                index.by_session.indices[entries],
                np.concatenate([[0], np.cumsum(u_stops - u_starts)]),
            ),
            shape=(unique.size, self.n_items),
        )
        weights = _by_row(rows, which.astype(np.int64), similarity, hi - lo, unique.size)
        return dense_product(weights, item_weights)

    def _matches(
        self, contexts: _Contexts, lo: int, hi: int, rows: np.ndarray, columns: np.ndarray
    ) -> np.ndarray:
        """q* of every (prediction, neighbour) pair: the neighbour's last position holding an item
        of the current session, found the cheapest of three exact ways: carried from prediction
        to prediction over [predictions, neighbours] blocks (long sessions), looked up per item of
        the current session (short ones), or scanned over the neighbour's items."""
        indptr = self.index.by_session.indptr
        begin, end = contexts.begin[lo:hi], contexts.end[lo:hi]
        follows, start = _runs(begin, end)
        neighbours, which = np.unique(columns, return_inverse=True)
        costs = {
            "carried": neighbours.size * ((end - start).sum() + (hi - lo) + self.n_items),
            "looked_up": 16 * (end - begin)[rows].sum(),  # a binary search per (pair, item)
            "scanned": (indptr[columns + 1] - indptr[columns]).sum(),
        }
        way = _MATCHES or min(costs, key=costs.__getitem__)
        if way == "carried":
            return self._carried_matches(contexts, begin, end, follows, start, neighbours)[rows, which]
        if way == "looked_up":
            return _blockwise(
                self._looked_up_matches, contexts, begin, end, rows, columns, begin[rows], end[rows]
            )
        return self._scanned_matches(contexts, begin, end, rows, columns)

    def _carried_matches(
        self,
        contexts: _Contexts,
        begin: np.ndarray,
        end: np.ndarray,
        follows: np.ndarray,
        start: np.ndarray,
        neighbours: np.ndarray,
    ) -> np.ndarray:
        """[predictions, neighbours] q*: the maximum over each prediction's new items, carried along
        its session's predictions, for blocks of neighbours that keep every array bounded."""
        index, n_rows = self.index, begin.size
        indptr = index.by_session.indptr
        running = np.zeros((n_rows, neighbours.size), dtype=np.int64)
        adding = end > start
        _, events = _expand(start, end)
        firsts = (np.cumsum(end - start) - (end - start))[adding]
        items = contexts.items[events]
        block = max(1, _DENSE_CELLS // max(self.n_items, events.size, 1))
        for first in range(0, neighbours.size, block):
            part = neighbours[first : first + block]
            # positions[i, u]: where neighbour u holds item i (0: it does not).
            positions = np.zeros((self.n_items, part.size), dtype=np.int32)
            owner, entries = _expand(indptr[part], indptr[part + 1])
            positions[index.by_session.indices[entries], owner] = index.positions[entries]
            if events.size:
                running[adding, first : first + part.size] = np.maximum.reduceat(
                    positions[items], firsts, axis=0
                )
        # Carry the maximum within each run of predictions of one session: an offset per run
        # larger than any position keeps earlier runs below.
        offset = (np.cumsum(~follows) * (int(index.positions.max(initial=0)) + 1))[:, None]
        running += offset
        np.maximum.accumulate(running, axis=0, out=running)
        running -= offset
        return running

    def _looked_up_matches(
        self,
        contexts: _Contexts,
        begin: np.ndarray,
        end: np.ndarray,
        rows: np.ndarray,
        columns: np.ndarray,
        starts: np.ndarray,
        stops: np.ndarray,
    ) -> np.ndarray:
        """q* by a binary search of every (neighbour, item of the current session) in the index
        (``starts``/``stops``: each pair's current session)."""
        pair, events = _expand(starts, stops)
        keys = columns[pair] * self.n_items + contexts.items[events]
        at = np.minimum(np.searchsorted(self.entry_keys, keys), self.entry_keys.size - 1)
        found = np.where(self.entry_keys[at] == keys, self.index.positions[at], 0)
        return np.maximum.reduceat(found, np.cumsum(stops - starts) - (stops - starts))

    def _scanned_matches(
        self, contexts: _Contexts, begin: np.ndarray, end: np.ndarray, rows: np.ndarray, columns: np.ndarray
    ) -> np.ndarray:
        """q* by scanning each neighbour's items for those of the current session (a kernel: one
        membership row per prediction, set and cleared around its pairs)."""
        found = np.zeros(rows.size, dtype=np.int64)
        index = self.index.by_session
        _scan_matches(
            begin, end, contexts.items, rows, columns, index.indptr, index.indices,
            self.index.positions, self.n_items, found,
        )  # fmt: skip
        return found


@kernel
def _scan_matches(begin, end, items, rows, columns, indptr, indices, positions, n_items, found):
    """``found[p]``: the last position of neighbour ``columns[p]`` holding an item of prediction
    ``rows[p]``'s current session ``items[begin:end]`` (0: none). Pairs may come in any order;
    a prediction's items are marked once per run of its consecutive pairs (one run each when
    grouped by prediction, as ``_neighbours`` returns them)."""
    member = np.zeros(n_items, dtype=np.bool_)
    pair = 0
    while pair < rows.size:
        row = rows[pair]
        for event in range(begin[row], end[row]):
            member[items[event]] = True
        while pair < rows.size and rows[pair] == row:
            column, best = columns[pair], 0
            for entry in range(indptr[column], indptr[column + 1]):
                if member[indices[entry]] and positions[entry] > best:
                    best = positions[entry]
            found[pair] = best
            pair += 1
        for event in range(begin[row], end[row]):
            member[items[event]] = False


def _blockwise(
    matches: Callable[..., np.ndarray],
    contexts: _Contexts,
    begin: np.ndarray,
    end: np.ndarray,
    rows: np.ndarray,
    columns: np.ndarray,
    starts: np.ndarray,
    stops: np.ndarray,
) -> np.ndarray:
    """``matches`` over blocks of pairs whose ranges ``[starts, stops)`` add up to at most
    ``_EXPANDED`` entries, so its flat arrays stay bounded."""
    found = np.zeros(rows.size, dtype=np.int64)
    total = np.concatenate([[0], np.cumsum(stops - starts)])
    lo = 0
    while lo < rows.size:
        hi = max(lo + 1, int(np.searchsorted(total, total[lo] + _EXPANDED, side="right")) - 1)
        part = slice(lo, hi)
        found[part] = matches(contexts, begin, end, rows[part], columns[part], starts[part], stops[part])
        lo = hi
    return found


class RecentPopularity(Baseline):
    """Most-rated items in the last ``days`` of the train events, ties by overall train popularity.

    What is popular now, not what was once: a viewer's session (whichever definition) plays no
    part. The window ends at the last train event, so no later event is ever read.
    """

    name = "recent_pop"
    config_class = RecentPopularityConfig
    config: RecentPopularityConfig
    recent: np.ndarray

    def fit(
        self, train: Sessions, n_items: int, *, after_epoch: AfterEpoch | None = None, log: Log = print
    ) -> None:
        super().fit(train, n_items, after_epoch=after_epoch, log=log)
        items = np.asarray(train.items)
        if train.timestamps is not None:
            times = np.asarray(train.timestamps, dtype=np.float64)
        elif train.start_times is not None:
            times = np.repeat(np.asarray(train.start_times, dtype=np.float64), np.diff(train.offsets))
        else:
            raise ValueError("recent_pop needs the train events' timestamps (or session start times)")
        recent = times > times.max(initial=0) - self.config.days * DAY_S
        self.recent = np.bincount(items[recent], minlength=n_items)

    def scores(self, last_items: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.recent.astype(np.float32), (len(last_items), self.recent.size))
