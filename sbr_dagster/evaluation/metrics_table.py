"""The tidy metrics table that compares every model: one row per split, model and cut-off k."""

from __future__ import annotations

import numpy as np
import polars as pl

from sbr_dagster.data.arrays import prediction_index
from sbr_dagster.evaluation.metrics import CI_KS, DEFAULT_KS, bootstrap_ci, mrr_at, recall_at

METRICS_SCHEMA = {
    "definition": pl.String,  # session definition the split came from
    "split": pl.String,  # 'valid' or 'test'
    "model": pl.String,
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
    offsets: np.ndarray,
    *,
    definition: str,
    split: str,
    model: str,
    ks: tuple[int, ...] = DEFAULT_KS,
    ci_ks: tuple[int, ...] = CI_KS,
    n_boot: int = 1000,
    seed: int = 0,
) -> pl.DataFrame:
    """One row per cut-off k with Recall@k, MRR@k and, for ``ci_ks``, session-bootstrap intervals."""
    ranks = np.asarray(ranks)
    session, _ = prediction_index(offsets)
    if ranks.shape != session.shape:
        raise ValueError(
            f"{model} on {split}: got {ranks.size} ranks for {session.size} predictions "
            "(every event after a session's first needs exactly one rank, in prediction order)"
        )
    if ranks.size and ranks.min() < 1:
        raise ValueError(f"{model} on {split}: ranks are 1-based, found {ranks.min()}")
    rows = []
    for k in ks:
        ci = bootstrap_ci(ranks, session, k, n_boot=n_boot, seed=seed) if k in ci_ks else None
        rows.append(
            {
                "definition": definition,
                "split": split,
                "model": model,
                "k": k,
                "recall": recall_at(ranks, k),
                "mrr": mrr_at(ranks, k),
                "n_predictions": ranks.size,
                **dict(zip(CI_COLUMNS, (*ci["recall"], *ci["mrr"]) if ci else (None,) * 4, strict=True)),
            }
        )
    return pl.DataFrame(rows, schema=METRICS_SCHEMA)
