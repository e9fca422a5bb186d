"""Ranking metrics from the rank of each prediction's target among all items.

Every model, the GRU and the baselines alike, is reduced to one rank per predicted event, so a
single set of formulas serves them all. A rank is 1-based; a tie with the target counts against
the model (rank = number of items scoring at least as high as the target).
"""

from __future__ import annotations

import numpy as np

DEFAULT_KS = (1, 5, 10, 20)


def ranks_from_scores(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Rank of ``targets[i]`` in row ``scores[i]``: items scoring >= the target, the target included."""
    scores = np.asarray(scores)
    target_scores = np.take_along_axis(scores, np.asarray(targets)[:, None], axis=1)
    return (scores >= target_scores).sum(axis=1).astype(np.int64)


def recall_at(ranks: np.ndarray, k: int) -> float:
    """Share of predictions whose target is in the top ``k``."""
    ranks = np.asarray(ranks)
    return float(np.mean(ranks <= k)) if ranks.size else float("nan")


def mrr_at(ranks: np.ndarray, k: int) -> float:
    """Mean reciprocal rank, with targets outside the top ``k`` scoring 0."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if not ranks.size:
        return float("nan")
    return float(np.mean(np.where(ranks <= k, 1.0 / ranks, 0.0)))
