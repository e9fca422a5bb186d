"""SASRec's scoring: one forward pass per context window, every prediction reading its own token.

Windows come from ``windows.context_windows``, so a replay, the ranking of split sessions and the
scores after arbitrary histories all read the same windows for the same contexts. Forward passes
run in batches of windows of similar length (bounded in tokens); scoring and ranking run in NumPy
over chunks of predictions. This module imports TensorFlow: ``model`` imports it when needed.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from sbr_dagster.data import timeline
from sbr_dagster.models.ranking import target_ranks
from sbr_dagster.models.sasrec.config import SASRecConfig
from sbr_dagster.models.sasrec.network import SASRecNetwork
from sbr_dagster.models.sasrec.windows import context_windows, padded_width

EVAL_TOKENS = 1 << 15  # tokens of one forward batch
SCORE_ROWS = 4096  # predictions scored at a time: bounds the [rows, n_items] score matrix


@functools.lru_cache(maxsize=4)  # a few networks at most stay alive through their compiled calls
def _states_fn(network: SASRecNetwork):
    def states_at(tokens, rows, columns):
        return tf.gather_nd(network.states(tokens, training=False), tf.stack([rows, columns], axis=1))

    spec = tf.TensorSpec([None], tf.int32)
    return tf.function(states_at, input_signature=[tf.TensorSpec([None, None], tf.int32), spec, spec])


def context_states(
    network: SASRecNetwork, config: SASRecConfig, items: np.ndarray, begin: np.ndarray, end: np.ndarray
) -> np.ndarray:
    """``[predictions, dim]``: the state after each prediction's current session ``items[begin:end]``."""
    queries = context_windows(begin, end, config.max_len, config.step)
    windows = queries.windows
    states = np.zeros((begin.size, network.dim), dtype=np.float32)
    by_window = np.argsort(queries.window, kind="stable")
    window_start = np.searchsorted(queries.window[by_window], np.arange(windows.n + 1))
    order = np.argsort(-windows.length, kind="stable")
    states_at = _states_fn(network)
    lo = 0
    while lo < order.size:
        width = padded_width(int(windows.length[order[lo]]), config.max_len)
        hi = min(order.size, lo + max(1, EVAL_TOKENS // width))
        rows = order[lo:hi]
        tokens = windows.tokens(items, network.n_items, rows, width)
        counts = window_start[rows + 1] - window_start[rows]
        local = np.repeat(np.arange(rows.size), counts)
        # Each window's predictions, window after window: the ranges window_start[r]..[r + 1].
        shift = window_start[rows] - (np.cumsum(counts) - counts)
        picked = by_window[np.arange(int(counts.sum())) + shift[local]]
        found = states_at(tokens, local.astype(np.int32), queries.position[picked].astype(np.int32))
        states[picked] = found.numpy()
        lo = hi
    return states


def item_vectors(network: SASRecNetwork) -> np.ndarray:
    return np.asarray(network.item_vectors, dtype=np.float32)


def scores(network: SASRecNetwork, states: np.ndarray) -> np.ndarray:
    return states @ item_vectors(network).T


def context_ranks(
    network: SASRecNetwork,
    config: SASRecConfig,
    items: np.ndarray,
    begin: np.ndarray,
    end: np.ndarray,
    targets: np.ndarray,
) -> np.ndarray:
    """Ranks of ``targets`` among all items, each after its context ``items[begin:end]``."""
    ranks = np.zeros(targets.size, dtype=np.int64)
    for rows, chunk in context_scores(network, config, items, begin, end):
        ranks[rows] = target_ranks(chunk, targets[rows])
    return ranks


def context_scores(
    network: SASRecNetwork, config: SASRecConfig, items: np.ndarray, begin: np.ndarray, end: np.ndarray
) -> Iterator[tuple[slice, np.ndarray]]:
    """Scores of every item after each context ``items[begin:end]``, ``SCORE_ROWS`` contexts at a time."""
    states = context_states(network, config, items, begin, end)
    vectors = item_vectors(network).T
    for lo in range(0, begin.size, SCORE_ROWS):
        hi = min(begin.size, lo + SCORE_ROWS)
        yield slice(lo, hi), states[lo:hi] @ vectors


def replay_scores(
    network: SASRecNetwork, config: SASRecConfig, stream: timeline.Replay
) -> Iterator[tuple[slice, np.ndarray]]:
    """Each target scored from the events its session fed before it (``timeline.fed_contexts``)."""
    fed = timeline.fed_contexts(stream)
    return context_scores(network, config, fed.items, fed.begin, fed.end)
