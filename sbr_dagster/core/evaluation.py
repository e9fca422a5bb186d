"""From split tables to the tidy metrics table that compares every model.

Sessions travel as two arrays, ``items`` (dense item_idx per event, sessions contiguous and in
time order) and ``offsets`` (session s is ``items[offsets[s]:offsets[s + 1]]``). Every event but
a session's first is one prediction, so every model is scored on exactly the same targets.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from sbr_dagster.core.errors import InputDataError
from sbr_dagster.core.metrics import DEFAULT_KS, bootstrap_ci, mrr_at, recall_at

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

_CI_COLUMNS = ("recall_ci_low", "recall_ci_high", "mrr_ci_low", "mrr_ci_high")


def session_arrays(frame: pl.DataFrame, item_index: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(items, offsets)`` of a split table ordered by session then time, items as dense item_idx."""
    if item_index["item_id"].is_duplicated().any():
        raise InputDataError("item_index maps some item_id more than once; rebuild it from the train split")
    events = frame.select("session_id", "item_id").join(
        item_index.select("item_id", "item_idx"), on="item_id", how="left", maintain_order="left"
    )
    unknown = events.filter(pl.col("item_idx").is_null())
    if unknown.height:
        first = unknown.row(0, named=True)
        raise InputDataError(
            f"{unknown.height} events have an item_id missing from item_index (first: item_id "
            f"{first['item_id']} in session {first['session_id']}); drop items unseen in train "
            "from the split or rebuild item_index from the same train split"
        )
    session_ids = events["session_id"].to_numpy()
    if np.any(np.diff(session_ids) < 0):
        position = int(np.flatnonzero(np.diff(session_ids) < 0)[0]) + 1
        raise InputDataError(
            f"split table is not ordered by session_id (row {position} has session {session_ids[position]} "
            f"after {session_ids[position - 1]}); sort it by session_id then timestamp"
        )
    starts = np.flatnonzero(np.diff(session_ids)) + 1
    offsets = np.concatenate([[0], starts, [len(session_ids)]]) if len(session_ids) else np.zeros(1)
    return events["item_idx"].to_numpy().astype(np.int32), offsets.astype(np.int64)


def prediction_index(offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(session, event)`` of every prediction, ordered by session then position.

    ``event`` indexes ``items``: the target is ``items[event]``, its prefix ends at
    ``items[event - 1]``, and its position in the session is ``event - offsets[session]``.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    if offsets.size == 0 or offsets[0] != 0:
        raise ValueError("offsets must start at 0 and have one entry more than there are sessions")
    if lengths.size and lengths.min() < 2:
        short = int(np.argmin(lengths))
        raise InputDataError(
            f"session {short} has {lengths[short]} events; every session needs at least 2, "
            "filter short sessions before splitting"
        )
    is_target = np.ones(int(offsets[-1]), dtype=bool)
    is_target[offsets[:-1]] = False
    session = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths - 1)
    return session, np.flatnonzero(is_target).astype(np.int64)


def metrics_frame(
    ranks: np.ndarray,
    offsets: np.ndarray,
    *,
    definition: str,
    split: str,
    model: str,
    ks: tuple[int, ...] = DEFAULT_KS,
    ci_ks: tuple[int, ...] = (20,),
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
                **dict(zip(_CI_COLUMNS, (*ci["recall"], *ci["mrr"]) if ci else (None,) * 4, strict=True)),
            }
        )
    return pl.DataFrame(rows, schema=METRICS_SCHEMA)


def _cell(value: float, low: float | None, high: float | None) -> str:
    text = f"{value:.3f}"
    return text if low is None or high is None else f"{text} [{low:.3f}, {high:.3f}]"


def comparison_markdown(metrics: pl.DataFrame) -> str:
    """Markdown table, one row per model, Recall@k then MRR@k columns; intervals where computed.

    Definition and split become row labels only when the table mixes several of them.
    """
    labels = [name for name in ("definition", "split") if metrics[name].n_unique() > 1] + ["model"]
    ks = sorted(metrics["k"].unique().to_list())
    columns = [f"Recall@{k}" for k in ks] + [f"MRR@{k}" for k in ks]
    table: dict[tuple, dict[str, str]] = {}
    for row in metrics.iter_rows(named=True):
        cells = table.setdefault(tuple(row[name] for name in labels), {})
        cells[f"Recall@{row['k']}"] = _cell(row["recall"], row["recall_ci_low"], row["recall_ci_high"])
        cells[f"MRR@{row['k']}"] = _cell(row["mrr"], row["mrr_ci_low"], row["mrr_ci_high"])
    lines = [
        "| " + " | ".join(labels + columns) + " |",
        "|" + "---|" * len(labels) + "---:|" * len(columns),
        *(
            "| " + " | ".join([*map(str, label), *(cells.get(c, "") for c in columns)]) + " |"
            for label, cells in table.items()
        ),
    ]
    return "\n".join(lines) + "\n"
