"""The one ranking rule: how any model's scores become the rank of a target.

A rank is 1-based: the number of candidates the model puts at or above the target. A model may
name its own order among equal scores (``tie_order``: the baselines fall back to popularity);
candidates it still cannot tell from the target count against it, so a model that scores
everything alike ranks every target last.

The rule is written once with array functions that NumPy and ``keras.ops`` share, so the GRU's
compiled ranking inside TensorFlow and the baselines' NumPy ranking are the same code.
"""

from __future__ import annotations

import numpy as np


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


def excluded_ahead(scores, targets, seen, tie_order=None) -> np.ndarray:
    """Per row of ``scores``, how many excluded candidates (``seen[i, j]``, ``timeline.seen_mask``)
    count against that row's target: subtracted from ``target_ranks``, the rank among the rest."""
    targets = np.asarray(targets)[:, None]
    target_scores = np.take_along_axis(scores, targets, axis=1)
    ties = None if tie_order is None else tie_order[None, :]
    target_ties = None if tie_order is None else tie_order[targets]
    return np.sum(seen & at_or_above(scores, target_scores, ties, target_ties), axis=1)


def popularity_order(popularity: np.ndarray) -> np.ndarray:
    """``tie_order`` by popularity descending, then lower item_idx: a strict order, so no ties remain."""
    order = np.argsort(-np.asarray(popularity), kind="stable")
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    return rank
