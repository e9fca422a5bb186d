"""One GRU4Rec study on one split: train on train, choose the epoch on valid, rank valid/test with baselines.

The Dagster assets, the sweep, the benchmarks and the tests all go through these two functions, so
there is exactly one way a model is trained and one way it is scored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import polars as pl

from sbr_dagster.core import baselines, evaluation
from sbr_dagster.core.model import GRU4RecConfig

GRU_MODEL = "gru4rec"


@dataclass(frozen=True)
class SplitArrays:
    """A split table as the arrays the models consume (items as dense item_idx)."""

    items: np.ndarray
    offsets: np.ndarray
    ratings: np.ndarray

    @classmethod
    def of(cls, frame: pl.DataFrame, item_index: pl.DataFrame) -> SplitArrays:
        items, offsets = evaluation.session_arrays(frame, item_index)
        return cls(items, offsets, frame["rating"].to_numpy().astype(np.int8))

    @property
    def n_predictions(self) -> int:
        return int(len(self.items) - (len(self.offsets) - 1))


def item_support(item_index: pl.DataFrame) -> np.ndarray:
    return item_index.sort("item_idx")["support"].to_numpy().astype(np.float64)


def session_start_times(frame: pl.DataFrame) -> np.ndarray:
    """Start time (epoch seconds) of each session in table order: what ``order="time"`` sorts by."""
    starts = frame.group_by("session_id", maintain_order=True).agg(pl.col("timestamp").min())
    return starts["timestamp"].dt.epoch("s").to_numpy()


def train_gru4rec(
    train: pl.DataFrame,
    valid: pl.DataFrame,
    item_index: pl.DataFrame,
    config: GRU4RecConfig,
    log: Callable[[str], object] = print,
):
    """Fit on ``train``; ``valid`` picks the best epoch and drives early stopping."""
    from sbr_dagster.core import training

    uses_ratings = config.rating_dim > 0
    fit_train, fit_valid = SplitArrays.of(train, item_index), SplitArrays.of(valid, item_index)
    return training.fit(
        fit_train.items,
        fit_train.offsets,
        item_index.height,
        config,
        valid=(fit_valid.items, fit_valid.offsets),
        item_support=item_support(item_index),
        train_ratings=fit_train.ratings if uses_ratings else None,
        train_start_times=session_start_times(train),
        valid_ratings=fit_valid.ratings if uses_ratings else None,
        log=log,
    )


@dataclass
class Evaluation:
    metrics: pl.DataFrame
    ranks: pl.DataFrame  # split, model, session (index within the split), rank: one row per prediction
    predictions_per_s: dict[str, float]  # GRU4Rec ranking throughput per split


def evaluate(
    model,
    uses_ratings: bool,
    item_index: pl.DataFrame,
    train: pl.DataFrame,
    splits: dict[str, pl.DataFrame],
    *,
    definition: str,
    baseline_names: Iterable[str] = tuple(baselines.BASELINES),
    ks: tuple[int, ...] = (1, 5, 10, 20),
    n_boot: int = 1000,
    seed: int = 0,
    log: Callable[[str], object] = print,
) -> Evaluation:
    """Full-ranking metrics of the GRU (and the named baselines fitted on ``train``) on each split."""
    from sbr_dagster.core import training

    train_arrays = SplitArrays.of(train, item_index)
    fitted = {
        name: baselines.BASELINES[name]().fit(train_arrays.items, train_arrays.offsets, item_index.height)
        for name in baseline_names
    }
    frames, rank_frames, throughput = [], [], {}
    for split_name, frame in splits.items():
        arrays = SplitArrays.of(frame, item_index)
        started = time.perf_counter()
        ranks = {
            GRU_MODEL: training.rank_sessions(
                model, arrays.items, arrays.offsets, ratings=arrays.ratings if uses_ratings else None
            )
        }
        throughput[split_name] = arrays.n_predictions / max(time.perf_counter() - started, 1e-9)
        log(
            f"{definition}/{split_name}: ranked {arrays.n_predictions:,} predictions "
            f"({throughput[split_name]:,.0f}/s)"
        )
        for name, baseline in fitted.items():
            ranks[name] = baselines.baseline_ranks(baseline, arrays.items, arrays.offsets)
        session_of_prediction = evaluation.prediction_index(arrays.offsets)[0].astype(np.int32)
        for name, model_ranks in ranks.items():
            frames.append(
                evaluation.metrics_frame(
                    model_ranks,
                    arrays.offsets,
                    definition=definition,
                    split=split_name,
                    model=name,
                    ks=ks,
                    n_boot=n_boot,
                    seed=seed,
                )
            )
            rank_frames.append(
                pl.DataFrame({"session": session_of_prediction, "rank": np.asarray(model_ranks, np.int32)})
                .with_columns(split=pl.lit(split_name), model=pl.lit(name))
                .select("split", "model", "session", "rank")
            )
    return Evaluation(pl.concat(frames), pl.concat(rank_frames), throughput)
