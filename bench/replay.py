"""Benchmark the timeline protocol's evaluation on the real MovieLens 1M: every baseline's replay
of the shared test targets (both rankings), and the seen-movie lookup behind the unseen ranking.

Builds the protocol (cut times, candidates, targets), the ``user`` and ``gap_1h`` variants'
training events and test streams (``common.timeline_variant``), fits each baseline on the
training events and times ``rank_replay`` over all test targets. The seen-movie mask
(``timeline.seen_mask``) is timed side by side with a per-row lookup (every target's whole
history, de-duplicated by sorting: the first implementation), in the same run;
``<definition>_all_baselines_test_s`` is the whole evaluation of every baseline on the test
targets. A speed target, never a test.

Usage: ``.venv/bin/python bench/replay.py [--models pop,sr,...] [--definitions user,gap_1h]``;
figures come last as ``key=value`` lines.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import data_dir, timeline_variant


def per_row_lookup(stream, events):
    """The first seen-movie lookup: every target's whole history, then one big sort."""
    user = np.searchsorted(stream.offsets, events, side="right") - 1
    begin = stream.offsets[user]
    lengths = events - begin
    rows = np.repeat(np.arange(len(events)), lengths)
    position = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    items = stream.items[np.repeat(begin, lengths) + position]
    keep = (items >= 0) & (items != stream.items[events][rows])
    rows, items = rows[keep], items[keep]
    n_items = int(stream.items.max(initial=0)) + 1
    unique = np.unique(rows.astype(np.int64) * n_items + items)
    return unique // n_items, unique % n_items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="")
    parser.add_argument("--definitions", default="user,gap_1h")
    args = parser.parse_args()

    from sbr_dagster.data import timeline
    from sbr_dagster.models import registry

    directory = data_dir("bench/replay.py")
    names = [m for m in args.models.split(",") if m] or list(registry.BASELINES)
    figures = {}
    for definition_name in args.definitions.split(","):
        train, stream, n_items = timeline_variant(directory, definition_name)
        n = stream.target_events.size
        chunk = stream.target_events[:4096]
        started = time.perf_counter()
        per_row_lookup(stream, chunk)
        lookup_s = time.perf_counter() - started
        started = time.perf_counter()
        timeline.seen_mask(stream, chunk, n_items)
        mask_s = time.perf_counter() - started
        figures[f"{definition_name}_seen_lookup_speedup"] = lookup_s / mask_s
        total_s = 0.0
        for name in names:
            model = registry.build(name)
            started = time.perf_counter()
            model.fit(train, n_items)
            fit_s = time.perf_counter() - started
            started = time.perf_counter()
            model.rank_replay(stream)
            rank_s = time.perf_counter() - started
            total_s += fit_s + rank_s
            figures[f"{definition_name}_{name}_fit_s"] = fit_s
            figures[f"{definition_name}_{name}_replay_predictions_per_s"] = n / rank_s
            print(
                f"{definition_name}/{name}: fit {fit_s:.1f} s, {n:,} test targets in {rank_s:.1f} s",
                flush=True,
            )
        figures[f"{definition_name}_all_baselines_test_s"] = total_s  # fit + replay, every model
    for key, value in figures.items():
        print(f"{key}={value:.4g}")


if __name__ == "__main__":
    main()
