"""Step 5: every model ranks every target of each split, and one table compares them.

The Dagster assets, the sweep, the benchmarks and the tests all go through ``evaluate``, so there
is exactly one way a model is scored: its ``rank_replay`` of a split's stream (``data.timeline``),
which ranks each target among all candidates and among those the viewer has not rated before.
On the days and fraction protocols a split's sessions are the stream (``Replay.of_sessions``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import polars as pl

from sbr_dagster.data.timeline import LIKED, Replay
from sbr_dagster.evaluation.metrics import DEFAULT_KS
from sbr_dagster.evaluation.metrics_table import RANKINGS, SLICES, metrics_frame


class Ranker(Protocol):
    """What ``evaluate`` needs of a model: both ranks of a stream's targets (every ``SessionModel``,
    and a blend of them)."""

    def rank_replay(self, stream: Replay) -> tuple[np.ndarray, np.ndarray]: ...


RANKS_SCHEMA = {
    "split": pl.String,
    "model": pl.String,
    "target": pl.Int64,  # the target's id: its ratings.dat line on the timeline, else its prediction number
    "group": pl.Int32,  # the viewer (timeline) or session (days) it belongs to: the bootstrap's unit
    "liked": pl.Boolean,  # the target was rated at least timeline.LIKED
    "rank": pl.Int32,  # among all candidates
    "rank_unseen": pl.Int32,  # among the candidates the viewer had not rated before
}


@dataclass
class Evaluation:
    metrics: pl.DataFrame  # metrics_table.METRICS_SCHEMA
    ranks: pl.DataFrame  # RANKS_SCHEMA: one row per split, model and target
    predictions_per_s: dict[str, dict[str, float]]  # model -> split -> ranking throughput


def target_ids(stream: Replay) -> np.ndarray:
    """What identifies a target across variants: its ratings.dat line, or its position when the
    stream has no lines (split sessions)."""
    if stream.lines is not None:
        return np.asarray(stream.lines, dtype=np.int64)[stream.target_events]
    return np.arange(stream.target_events.size, dtype=np.int64)


def evaluate(
    models: Mapping[str, Ranker],
    splits: Mapping[str, Replay],
    *,
    definition: str,
    protocol: str,
    ks: tuple[int, ...] = DEFAULT_KS,
    n_boot: int = 1000,
    seed: int = 0,
    log: Callable[[str], object] = print,
    skip: Collection[tuple[str, str]] = (),
) -> Evaluation:
    """Both rankings of each fitted model on each split, on all and on liked targets, but for the
    ``(split, model)`` pairs in ``skip``."""
    frames, rank_frames = [], []
    throughput: dict[str, dict[str, float]] = {name: {} for name in models}
    for split_name, stream in splits.items():
        groups = stream.target_groups.astype(np.int32)
        liked = stream.ratings[stream.target_events] >= LIKED
        for name, model in models.items():
            if (split_name, name) in skip:
                continue
            started = time.perf_counter()
            ranks = dict(zip(RANKINGS, model.rank_replay(stream), strict=True))
            count = groups.size
            rate = count / max(time.perf_counter() - started, 1e-9)
            throughput[name][split_name] = rate
            log(f"{definition}/{split_name}: {name} ranked {count:,} targets ({rate:,.0f}/s)")
            for ranking, values in ranks.items():
                for slice_name, mask in zip(SLICES, (np.ones(count, bool), liked), strict=True):
                    frames.append(
                        metrics_frame(
                            values[mask],
                            groups[mask],
                            definition=definition,
                            protocol=protocol,
                            split=split_name,
                            model=name,
                            ranking=ranking,
                            slice=slice_name,
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
                        "target": target_ids(stream),
                        "group": groups,
                        "liked": liked,
                        "rank": np.asarray(ranks["all"], np.int32),
                        "rank_unseen": np.asarray(ranks["unseen"], np.int32),
                    },
                    schema=RANKS_SCHEMA,
                )
            )
    return Evaluation(pl.concat(frames), pl.concat(rank_frames), throughput)
