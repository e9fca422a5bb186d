"""Recall@k, MRR@k and session-bootstrap intervals, from the rank of each prediction's target.

Every model is reduced to one rank per predicted event (``models.ranking``), so a single set of
formulas serves them all.
"""

from __future__ import annotations

import numpy as np

DEFAULT_KS = (1, 5, 10, 20)  # the cut-offs every metrics table reports
CI_KS = (20,)  # the cut-offs that get bootstrap intervals
SELECTION_K = 20  # the cut-off every choice is made at: epochs, settings, verdicts

# Bootstrap replicates drawn per block, so that the draw matrix stays around 32 MiB.
_BOOT_DRAWS_PER_BLOCK = 1 << 22


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
    return session_bootstrap(
        {"recall": hits_at(ranks, k), "mrr": reciprocal_ranks_at(ranks, k)},
        session_of_prediction,
        n_boot=n_boot,
        seed=seed,
        level=level,
    )


def difference_ci(
    ranks_a: np.ndarray,
    ranks_b: np.ndarray,
    session_of_prediction: np.ndarray,
    k: int,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Intervals for (a - b) in Recall@k and MRR@k when a and b ranked the same predictions.

    Pairing by session removes the variance the two models share (the same hard sessions), so a
    real difference shows even where the two separate intervals overlap.
    """
    ranks_a, ranks_b = np.asarray(ranks_a), np.asarray(ranks_b)
    if ranks_a.shape != ranks_b.shape:
        raise ValueError(
            f"{ranks_a.size} vs {ranks_b.size} ranks: a paired comparison needs the same predictions"
        )
    return session_bootstrap(
        {
            "recall": hits_at(ranks_a, k) - hits_at(ranks_b, k),
            "mrr": reciprocal_ranks_at(ranks_a, k) - reciprocal_ranks_at(ranks_b, k),
        },
        session_of_prediction,
        n_boot=n_boot,
        seed=seed,
        level=level,
    )


def session_bootstrap(
    values: dict[str, np.ndarray],
    session_of_prediction: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile interval of the mean of each per-prediction value, resampling whole sessions."""
    session_of_prediction = np.asarray(session_of_prediction)
    for name, per_prediction in values.items():
        if np.shape(per_prediction) != session_of_prediction.shape:
            raise ValueError(
                f"{np.size(per_prediction)} {name} values but {session_of_prediction.size} session ids; "
                "they must pair"
            )
    if not session_of_prediction.size:
        return {name: (float("nan"), float("nan")) for name in values}
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    _, session = np.unique(session_of_prediction, return_inverse=True)
    n_sessions = int(session.max()) + 1
    counts = np.bincount(session, minlength=n_sessions).astype(np.float64)
    sums = {name: np.bincount(session, weights=v, minlength=n_sessions) for name, v in values.items()}
    rng = np.random.default_rng(seed)
    block = max(1, _BOOT_DRAWS_PER_BLOCK // n_sessions)
    replicates: dict[str, list[np.ndarray]] = {name: [] for name in values}
    for start in range(0, n_boot, block):
        draws = rng.integers(0, n_sessions, size=(min(block, n_boot - start), n_sessions))
        n_drawn = counts[draws].sum(axis=1)
        for name, drawn in replicates.items():
            drawn.append(sums[name][draws].sum(axis=1) / n_drawn)
    tail = (1.0 - level) / 2.0
    return {
        name: tuple(float(q) for q in np.quantile(np.concatenate(drawn), [tail, 1.0 - tail]))
        for name, drawn in replicates.items()
    }


def interval_sign(low: float, high: float) -> int:
    """+1 or -1 when a difference's interval lies wholly above or below zero, else 0: the one rule by
    which every comparison may call a winner."""
    return 1 if low > 0 else -1 if high < 0 else 0
