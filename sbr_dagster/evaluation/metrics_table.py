"""The tidy metrics table that compares every model: one row per split, model, ranking, slice and k."""

from __future__ import annotations

import numpy as np
import polars as pl

from sbr_dagster.evaluation.metrics import CI_KS, DEFAULT_KS, bootstrap_ci, mrr_at, recall_at

# How a target is ranked: among all candidates (what the reference GRU4Rec reports), or among those
# the viewer has not rated before (what a viewer is shown).
RANKINGS = ("all", "unseen")
SLICES = ("all", "liked")  # every target, or those rated at least timeline.LIKED

METRICS_SCHEMA = {
    "definition": pl.String,  # session definition the variant reads sessions with
    "protocol": pl.String,  # 'timeline' (shared targets), 'days' or 'fraction' (the definition's own)
    "split": pl.String,  # 'valid' or 'test'
    "model": pl.String,
    "ranking": pl.String,  # RANKINGS
    "slice": pl.String,  # SLICES
    "k": pl.Int32,
    "recall": pl.Float64,
    "mrr": pl.Float64,
    "n_predictions": pl.Int64,
    # Session-bootstrap percentile interval; null for cut-offs without one.
    "recall_ci_low": pl.Float64,
    "recall_ci_high": pl.Float64,
    "mrr_ci_low": pl.Float64,
    "mrr_ci_high": pl.Float64,
}

CI_COLUMNS = ("recall_ci_low", "recall_ci_high", "mrr_ci_low", "mrr_ci_high")


def metrics_frame(
    ranks: np.ndarray,
    groups: np.ndarray,
    *,
    definition: str,
    split: str,
    model: str,
    protocol: str = "days",
    ranking: str = "all",
    slice: str = "all",
    ks: tuple[int, ...] = DEFAULT_KS,
    ci_ks: tuple[int, ...] = CI_KS,
    n_boot: int = 1000,
    seed: int = 0,
) -> pl.DataFrame:
    """One row per cut-off k with Recall@k, MRR@k and, for ``ci_ks``, intervals that resample whole
    ``groups`` (the viewer or session of each prediction)."""
    ranks, session = np.asarray(ranks), np.asarray(groups)
    if ranks.shape != session.shape:
        raise ValueError(
            f"{model} on {split}: got {ranks.size} ranks for {session.size} predictions "
            "(every target needs exactly one rank, in target order)"
        )
    if ranks.size and ranks.min() < 1:
        raise ValueError(f"{model} on {split}: ranks are 1-based, found {ranks.min()}")
    rows = []
    for k in ks:
        ci = bootstrap_ci(ranks, session, k, n_boot=n_boot, seed=seed) if k in ci_ks else None
        rows.append(
            {
                "definition": definition,
                "protocol": protocol,
                "split": split,
                "model": model,
                "ranking": ranking,
                "slice": slice,
                "k": k,
                "recall": recall_at(ranks, k),
                "mrr": mrr_at(ranks, k),
                "n_predictions": ranks.size,
                **dict(zip(CI_COLUMNS, (*ci["recall"], *ci["mrr"]) if ci else (None,) * 4, strict=True)),
            }
        )
    return pl.DataFrame(rows, schema=METRICS_SCHEMA)
