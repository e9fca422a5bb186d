"""The one ranking rule: how any model's scores become the rank of a target.

A rank is 1-based: the number of candidates the model puts at or above the target. A model may
name its own order among equal scores (``tie_order``: the baselines fall back to popularity);
candidates it still cannot tell from the target count against it, so a model that scores
everything alike ranks every target last.

The rule is written once with array functions that NumPy and ``keras.ops`` share, so the GRU's
compiled ranking inside TensorFlow and the baselines' NumPy ranking are the same code. Replays,
which need both rankings of NumPy scores, use ``both_ranks``: the same rule as one compiled loop,
tested against ``target_ranks``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from sbr_dagster.data.timeline import Replay, seen_mask
from sbr_dagster.kernels import kernel

ScoreChunk = tuple[slice | np.ndarray, np.ndarray]  # (rows of a stream's targets, their scores)


def at_or_above(scores, target_scores, ties=None, target_ties=None, *, xp=np):
    """Where a candidate counts against the target: a higher score, or an equal one that the model's
    own order (``ties``, lower first) does not put after the target. Element-wise, broadcasting."""
    if ties is None:
        return xp.greater_equal(scores, target_scores)
    return xp.logical_or(
        xp.greater(scores, target_scores),
        xp.logical_and(xp.equal(scores, target_scores), xp.less_equal(ties, target_ties)),
    )


def target_ranks(scores, targets, tie_order=None, *, xp=np):
    """Rank of ``targets[i]`` in row ``scores[i]`` (``xp``: ``numpy`` or ``keras.ops``).

    ``tie_order[j]`` is item j's position among items of equal score (lower first), or None.
    """
    targets = xp.expand_dims(targets, 1)
    target_scores = xp.take_along_axis(scores, targets, axis=1)
    ties = None if tie_order is None else xp.expand_dims(tie_order, 0)
    target_ties = None if tie_order is None else xp.take(tie_order, targets)
    # ``sum`` of booleans counts them in both libraries; TensorFlow's count_nonzero is 1.5x slower.
    return xp.sum(at_or_above(scores, target_scores, ties, target_ties, xp=xp), axis=1)


def both_ranks(scores, targets, seen, tie_order=None) -> tuple[np.ndarray, np.ndarray]:
    """``target_ranks`` of each row's target, and its rank among the candidates not excluded by
    ``seen[i, j]`` (``timeline.seen_mask``), in one pass over the NumPy scores (a kernel: the
    array form makes about a dozen [rows, items] temporaries for the two)."""
    scores = np.ascontiguousarray(scores)
    n_rows = scores.shape[0]
    targets = np.asarray(targets, dtype=np.int64)
    if seen.shape != scores.shape:
        raise ValueError(f"seen is {seen.shape} but scores are {scores.shape}: they must pair")
    ties = np.zeros(scores.shape[1], dtype=np.int64) if tie_order is None else np.asarray(tie_order, np.int64)
    ranks, unseen = np.empty(n_rows, dtype=np.int64), np.empty(n_rows, dtype=np.int64)
    _both_ranks(scores, targets, ties, np.ascontiguousarray(seen, dtype=np.bool_), ranks, unseen)
    return ranks, unseen


@kernel
def _both_ranks(scores, targets, ties, seen, ranks, unseen):
    """``at_or_above`` written as a loop: no ties order is all-equal ``ties`` (``>=``)."""
    for row in range(scores.shape[0]):
        target = targets[row]
        value, tie = scores[row, target], ties[target]
        count = excluded = 0
        for item in range(scores.shape[1]):
            score = scores[row, item]
            if score > value or (score == value and ties[item] <= tie):
                count += 1
                if seen[row, item]:
                    excluded += 1
        ranks[row] = count
        unseen[row] = count - excluded


def chunk_ranks(stream: Replay, rows: slice | np.ndarray, scores: np.ndarray, tie_order=None):
    """Both ranks of the targets ``stream.target_events[rows]`` given their ``scores``."""
    events = stream.target_events[rows]
    seen = seen_mask(stream, events, scores.shape[1])
    return both_ranks(scores, stream.items[events], seen, tie_order)


def replay_ranks(
    stream: Replay, chunks: Iterable[ScoreChunk], tie_order=None
) -> tuple[np.ndarray, np.ndarray]:
    """Ranks of every target of ``stream`` among all candidates and among the unseen, from a model's
    score ``chunks`` (``SessionModel.replay_scores``); a target no chunk scored is an error."""
    n = stream.target_events.size
    ranks, unseen = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    for rows, scores in chunks:
        ranks[rows], unseen[rows] = chunk_ranks(stream, rows, scores, tie_order)
    if n and ranks.min() < 1:
        raise RuntimeError(f"{int(np.sum(ranks < 1))} of {n} targets were never scored")
    return ranks, unseen


def popularity_order(popularity: np.ndarray) -> np.ndarray:
    """``tie_order`` by popularity descending, then lower item_idx: a strict order, so no ties remain."""
    order = np.argsort(-np.asarray(popularity), kind="stable")
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    return rank
