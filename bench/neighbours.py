"""Benchmark the neighbour baselines (SKNN, V-SKNN, STAN, recent popularity): fit and replay speed.

Synthetic data of ML-1M's size comes in two shapes, because the cost of a kNN model depends on
what a session is: ``user`` (about 6k train sessions of up to 2k events, a viewer's whole history,
so each current session is hundreds of ratings long) and ``gap_1h`` (about 70k short train
sessions). Each model is fitted on the train sessions and replays ``--predictions`` targets
(``rank_replay``, the evaluation's path, ranks among all and among unseen items). With
``SBR_ML1M_DIR`` set, the same runs on the real MovieLens 1M on the timeline protocol (train:
events before T_valid; the test stream's shared targets) for the ``user`` and ``gap_1h``
definitions, with recall@20 and MRR@20 as a sanity check. A speed target, never a test.

Usage: ``.venv/bin/python bench/neighbours.py [--predictions N] [--models sknn,vsknn,stan,recent_pop]
[--shapes user,gap_1h] [--skip-synthetic]``. Figures come last as ``key=value`` lines, named
``<shape>_<model>_fit_s`` and ``<shape>_<model>_predictions_per_s`` (``real_<definition>_...``
on ML-1M).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from common import timeline_variant

from sbr_dagster.data import timeline
from sbr_dagster.data.arrays import Sessions
from sbr_dagster.evaluation import metrics
from sbr_dagster.models import neighbours

MODELS = {
    "sknn": neighbours.SKNN,
    "vsknn": neighbours.VSKNN,
    "stan": neighbours.STAN,
    "recent_pop": neighbours.RecentPopularity,
}
N_ITEMS = 3400
TRAIN_EVENTS = 800_000
# Shape: (train sessions, test viewers, fed events before a viewer's first target).
SHAPES = {"user": (6_000, 1_000, 300), "gap_1h": (70_000, 1_000, 0)}
START = 956_703_932  # ML-1M's first rating


def _zipf(rng: np.random.Generator, size: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, N_ITEMS + 1)
    return rng.permutation(N_ITEMS)[rng.choice(N_ITEMS, size=size, p=weights / weights.sum())]


def _walks(rng: np.random.Generator, lengths: np.ndarray) -> np.ndarray:
    """Items of sessions of ``lengths``: Zipf-popular anchors, then a few ids on, with jumps."""
    first = np.zeros(int(lengths.sum()), dtype=bool)
    first[np.cumsum(lengths) - lengths] = True
    step = np.where(first, 0, rng.integers(1, 4, first.size))
    total = np.cumsum(step)
    walk = total - np.repeat(total[first], lengths)
    items = (np.repeat(_zipf(rng, lengths.size), lengths) + walk) % N_ITEMS
    jump = rng.random(items.size) < 0.3
    items[jump] = _zipf(rng, int(jump.sum()))
    return items.astype(np.int32)


def _times(rng: np.random.Generator, lengths: np.ndarray, start: np.ndarray, step_s: float) -> np.ndarray:
    """Increasing event times within each session, from its ``start``."""
    steps = rng.exponential(step_s, int(lengths.sum())).astype(np.int64) + 1
    first = np.cumsum(lengths) - lengths
    steps[first] = 0
    total = np.cumsum(steps)
    return np.repeat(start, lengths) + total - np.repeat(total[first], lengths)


def synthetic(shape: str, predictions: int, seed: int = 0) -> tuple[Sessions, timeline.Replay]:
    """Train sessions of ``shape`` and a test stream with ``predictions`` targets."""
    rng = np.random.default_rng(seed)
    n_sessions, n_viewers, warm_up = SHAPES[shape]
    lengths = np.minimum(rng.geometric(n_sessions / TRAIN_EVENTS, n_sessions) + 1, 2000)
    span = 900 * 86_400  # train: 900 days
    starts = np.sort(rng.integers(START, START + span, n_sessions))
    train = Sessions(
        items=_walks(rng, lengths),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        ratings=rng.integers(1, 6, int(lengths.sum())).astype(np.int8),
        start_times=starts,
        timestamps=_times(rng, lengths, starts, 120.0 if shape == "gap_1h" else 3_000.0),
    )
    # Test viewers: ``warm_up`` fed events, then targets; a new session every ~12 events for gap_1h.
    per_viewer = warm_up + predictions // n_viewers
    viewer_lengths = np.full(n_viewers, per_viewer)
    n = int(viewer_lengths.sum())
    offsets = np.concatenate([[0], np.cumsum(viewer_lengths)]).astype(np.int64)
    first = np.zeros(n, dtype=bool)
    first[offsets[:-1]] = True
    within = np.arange(n) - np.repeat(offsets[:-1], viewer_lengths)
    session_start = first | ((rng.random(n) < 1 / 12) if shape == "gap_1h" else np.zeros(n, dtype=bool))
    stream = timeline.Replay(
        items=_walks(rng, viewer_lengths),
        offsets=offsets,
        session_start=session_start,
        feed=np.ones(n, dtype=bool),
        target=(within >= warm_up) & ~session_start,
        ratings=rng.integers(1, 6, n).astype(np.int8),
        timestamps=_times(rng, viewer_lengths, np.full(n_viewers, START + span), 300.0),
    )
    return train, stream


def run(
    label: str, train: Sessions, stream: timeline.Replay, n_items: int, models: list[str], figures: dict
) -> None:
    n_targets = int(stream.target.sum())
    lengths = np.diff(train.offsets)
    print(
        f"{label}: {train.n_sessions:,} train sessions ({len(train.items):,} events, longest "
        f"{lengths.max():,}), {n_targets:,} targets",
        flush=True,
    )
    for name in models:
        model = MODELS[name]()
        started = time.perf_counter()
        model.fit(train, n_items)
        fit_s = time.perf_counter() - started
        started = time.perf_counter()
        ranks, _ = model.rank_replay(stream)
        rank_s = time.perf_counter() - started
        figures[f"{label}_{name}_fit_s"] = f"{fit_s:.2f}"
        figures[f"{label}_{name}_predictions_per_s"] = f"{ranks.size / rank_s:.0f}"
        print(
            f"  {name}: fit {fit_s:.2f} s, ranked {ranks.size:,} in {rank_s:.1f} s, "
            f"recall@20 {metrics.recall_at(ranks, 20):.4f}, mrr@20 {metrics.mrr_at(ranks, 20):.4f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=100_000)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--skip-synthetic", action="store_true")
    args = parser.parse_args()
    models = [name for name in args.models.split(",") if name]
    figures: dict[str, str] = {}
    print(f"threads={neighbours._THREADS}")
    if not args.skip_synthetic:
        for shape in args.shapes.split(","):
            run(shape, *synthetic(shape, args.predictions), N_ITEMS, models, figures)
    directory = os.environ.get("SBR_ML1M_DIR")
    if directory and (Path(directory) / "ratings.dat").is_file():
        for definition in args.shapes.split(","):
            train, stream, n_items = timeline_variant(Path(directory), definition)
            run(f"real_{definition}", train, stream, n_items, models, figures)
    for key, value in figures.items():
        print(f"{key}={value}")


if __name__ == "__main__":
    main()
