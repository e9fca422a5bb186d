"""Step 5: every model ranks every target of each split, and one table compares them.

The Dagster assets, the sweep, the benchmarks and the tests all go through ``evaluate``, so there
is exactly one way a model is scored: its ``rank`` of every prediction, turned into metrics here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from sbr_dagster.data.arrays import Sessions, prediction_index
from sbr_dagster.evaluation.metrics import DEFAULT_KS
from sbr_dagster.evaluation.metrics_table import metrics_frame
from sbr_dagster.models.base import SessionModel

RANKS_SCHEMA = {"split": pl.String, "model": pl.String, "session": pl.Int32, "rank": pl.Int32}


@dataclass
class Evaluation:
    metrics: pl.DataFrame  # metrics_table.METRICS_SCHEMA
    ranks: pl.DataFrame  # RANKS_SCHEMA: one row per prediction, session = index within the split
    predictions_per_s: dict[str, dict[str, float]]  # model -> split -> ranking throughput


def evaluate(
    models: Mapping[str, SessionModel],
    splits: Mapping[str, Sessions],
    *,
    definition: str,
    ks: tuple[int, ...] = DEFAULT_KS,
    n_boot: int = 1000,
    seed: int = 0,
    log: Callable[[str], object] = print,
) -> Evaluation:
    """Full-ranking metrics of each fitted model on each split (and every prediction's rank)."""
    frames, rank_frames = [], []
    throughput: dict[str, dict[str, float]] = {name: {} for name in models}
    for split_name, sessions in splits.items():
        session_of_prediction = prediction_index(sessions.offsets)[0].astype(np.int32)
        for name, model in models.items():
            started = time.perf_counter()
            ranks = model.rank(sessions)
            rate = sessions.n_predictions / max(time.perf_counter() - started, 1e-9)
            throughput[name][split_name] = rate
            count = sessions.n_predictions
            log(f"{definition}/{split_name}: {name} ranked {count:,} predictions ({rate:,.0f}/s)")
            frames.append(
                metrics_frame(
                    ranks,
                    sessions.offsets,
                    definition=definition,
                    split=split_name,
                    model=name,
                    ks=ks,
                    n_boot=n_boot,
                    seed=seed,
                )
            )
            rank_frames.append(
                pl.DataFrame(
                    {
                        "split": split_name,
                        "model": name,
                        "session": session_of_prediction,
                        "rank": np.asarray(ranks, np.int32),
                    },
                    schema=RANKS_SCHEMA,
                )
            )
    return Evaluation(pl.concat(frames), pl.concat(rank_frames), throughput)
