"""Ranking metrics from the rank of each prediction's target among all items.

Every model, the GRU and the baselines alike, is reduced to one rank per predicted event, so a
single set of formulas serves them all. A rank is 1-based; a tie with the target counts against
the model (rank = number of items scoring at least as high as the target).
"""

from __future__ import annotations

import numpy as np

DEFAULT_KS = (1, 5, 10, 20)

# Bootstrap replicates drawn per block, so that the draw matrix stays around 32 MiB.
_BOOT_DRAWS_PER_BLOCK = 1 << 22


def ranks_from_scores(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Rank of ``targets[i]`` in row ``scores[i]``: items scoring >= the target, the target included."""
    scores = np.asarray(scores)
    target_scores = np.take_along_axis(scores, np.asarray(targets)[:, None], axis=1)
    return (scores >= target_scores).sum(axis=1).astype(np.int64)


def hits_at(ranks: np.ndarray, k: int) -> np.ndarray:
    """1.0 where the target is in the top ``k``, else 0.0 (one value per prediction)."""
    return (np.asarray(ranks) <= k).astype(np.float64)


def reciprocal_ranks_at(ranks: np.ndarray, k: int) -> np.ndarray:
    """1/rank where the target is in the top ``k``, else 0.0 (one value per prediction)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return np.where(ranks <= k, 1.0 / ranks, 0.0)


def recall_at(ranks: np.ndarray, k: int) -> float:
    """Share of predictions whose target is in the top ``k``."""
    ranks = np.asarray(ranks)
    return float(np.mean(hits_at(ranks, k))) if ranks.size else float("nan")


def mrr_at(ranks: np.ndarray, k: int) -> float:
    """Mean reciprocal rank, with targets outside the top ``k`` scoring 0."""
    ranks = np.asarray(ranks)
    return float(np.mean(reciprocal_ranks_at(ranks, k))) if ranks.size else float("nan")


def bootstrap_ci(
    ranks: np.ndarray,
    session_of_prediction: np.ndarray,
    k: int,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals for Recall@k and MRR@k, resampling whole sessions.

    Predictions within a session share a user and a context, so they are not independent;
    resampling sessions (not predictions) keeps that dependence and gives honest widths.
    Each replicate is a ratio of sums over the drawn sessions, like the point estimate.
    """
    ranks = np.asarray(ranks)
    session_of_prediction = np.asarray(session_of_prediction)
    if ranks.shape != session_of_prediction.shape:
        raise ValueError(f"{ranks.size} ranks but {session_of_prediction.size} session ids; they must pair")
    if not ranks.size:
        return {"recall": (float("nan"), float("nan")), "mrr": (float("nan"), float("nan"))}
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    _, session = np.unique(session_of_prediction, return_inverse=True)
    n_sessions = int(session.max()) + 1
    per_session = {
        "n": np.bincount(session, minlength=n_sessions).astype(np.float64),
        "recall": np.bincount(session, weights=hits_at(ranks, k), minlength=n_sessions),
        "mrr": np.bincount(session, weights=reciprocal_ranks_at(ranks, k), minlength=n_sessions),
    }
    rng = np.random.default_rng(seed)
    block = max(1, _BOOT_DRAWS_PER_BLOCK // n_sessions)
    replicates: dict[str, list[np.ndarray]] = {"recall": [], "mrr": []}
    for start in range(0, n_boot, block):
        draws = rng.integers(0, n_sessions, size=(min(block, n_boot - start), n_sessions))
        n_drawn = per_session["n"][draws].sum(axis=1)
        for name, values in replicates.items():
            values.append(per_session[name][draws].sum(axis=1) / n_drawn)
    tail = (1.0 - level) / 2.0
    return {
        name: tuple(float(q) for q in np.quantile(np.concatenate(values), [tail, 1.0 - tail]))
        for name, values in replicates.items()
    }
