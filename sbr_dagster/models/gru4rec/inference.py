"""GRU4Rec's full-ranking inference: every next event ranked inside the graph, and next-item scores.

Each compiled call runs the GRU steps of a chunk of the session-parallel schedule in a graph loop,
then scores all items for every live cell at once and ranks the targets there with
``ranking.target_ranks``, so only one integer per prediction leaves TensorFlow. This module
imports TensorFlow: ``model`` imports it when a network is used.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
import tensorflow as tf
from keras import ops

from sbr_dagster.data.arrays import Sessions
from sbr_dagster.data.timeline import Replay, session_seen_mask
from sbr_dagster.models.gru4rec.batching import cell_values, chunks, prediction_positions, session_parallel
from sbr_dagster.models.gru4rec.network import GRU4RecNetwork, remember
from sbr_dagster.models.ranking import target_ranks

EVAL_CELLS = 4096  # schedule cells ranked per compiled call: bounds the [cells, n_items] score matrix
EVAL_BATCH = 512  # sessions side by side while ranking


@functools.lru_cache(maxsize=4)  # a few networks at most stay alive through their compiled calls
def _rank_chunk_fn(network: GRU4RecNetwork, exclude_seen: bool):
    """The compiled ranking call of ``network``: GRU steps in a graph loop, then one batched scoring
    (with ``exclude_seen``, each cell's session so far scored -inf: ``seen`` is carried like the states)."""
    cells, flags, states = network.chunk_signature()

    def rank_chunk(inputs, targets, reset, mask, ratings, gaps, target_gaps, states, seen):
        steps = tf.shape(inputs)[0]
        outputs = tf.TensorArray(tf.float32, size=steps)
        seen_before = tf.TensorArray(tf.bool, size=steps if exclude_seen else 0)
        for t in tf.range(steps):
            output, states = network.advance(inputs[t], states, reset[t], ratings[t], gaps[t])
            outputs = outputs.write(t, network.before_target(output, target_gaps[t]))
            if exclude_seen:
                seen = remember(seen, inputs[t], reset[t])
                seen_before = seen_before.write(t, seen)
        scores = network.score_all(tf.boolean_mask(outputs.stack(), mask))
        if exclude_seen:
            scores = tf.where(tf.boolean_mask(seen_before.stack(), mask), -np.inf, scores)
        return states, seen, target_ranks(scores, tf.boolean_mask(targets, mask), xp=ops)

    signature = [cells, cells, flags, flags, cells, cells, cells, states, flags]
    return tf.function(rank_chunk, input_signature=signature)


def rank_sessions(
    network: GRU4RecNetwork,
    sessions: Sessions,
    *,
    ratings: np.ndarray | None = None,
    gaps: np.ndarray | None = None,
    exclude_seen: bool = False,
    batch_size: int = EVAL_BATCH,
) -> np.ndarray:
    """Rank of every prediction's target among all items, in prediction order.

    Each session starts from a zero hidden state. ``ratings`` and ``gaps`` (per event) are given
    when the network reads them; ``exclude_seen``: the session's earlier movies rank last.
    """
    items, offsets = sessions.items, sessions.offsets
    schedule = session_parallel(offsets, batch_size, items=items, order="time")
    rating_cells = cell_values(ratings, schedule.events)
    gap_cells = cell_values(gaps, schedule.events)
    target_gap_cells = cell_values(gaps, np.where(schedule.mask, schedule.events + 1, -1))
    positions = prediction_positions(schedule.events, offsets)
    rank_chunk = _rank_chunk_fn(network, exclude_seen)
    ranks = np.zeros(sessions.n_predictions, dtype=np.int64)
    states = network.initial_states(batch_size)
    seen = network.initial_seen(batch_size, exclude_seen)
    for begin, end, width in chunks(schedule, cells=EVAL_CELLS):
        rows = (slice(begin, end), slice(0, width))
        states, seen, chunk = rank_chunk(
            schedule.inputs[rows], schedule.targets[rows], schedule.reset[rows], schedule.mask[rows],
            rating_cells[rows], gap_cells[rows], target_gap_cells[rows], [h[:width] for h in states],
            seen[:width],
        )  # fmt: skip
        ranks[positions[rows][schedule.mask[rows]]] = chunk.numpy()
    return ranks


@functools.lru_cache(maxsize=4)
def _last_states_fn(network: GRU4RecNetwork):
    cells, flags, states = network.chunk_signature()

    def last_states(inputs, ratings, gaps, live, next_gaps, states):
        for t in tf.range(tf.shape(inputs)[0]):
            _, stepped = network.step(inputs[t], states, ratings[t], gaps[t], training=False)
            states = [tf.where(live[t][:, None], new, old) for new, old in zip(stepped, states, strict=True)]
        return network.score_all(network.before_target(states[-1], next_gaps))

    gaps = tf.TensorSpec([None], tf.int32)
    return tf.function(last_states, input_signature=[cells, cells, cells, flags, gaps, states])


def score_histories(
    network: GRU4RecNetwork,
    histories: Sessions,
    *,
    ratings: np.ndarray | None = None,
    gaps: np.ndarray | None = None,
    next_gaps: np.ndarray | None = None,
) -> np.ndarray:
    """Next-item scores [n, n_items] after feeding each history from a zero state (``gaps`` per event,
    ``next_gaps`` per history: the bucket before the event to come, when the network reads them)."""
    lengths = np.diff(histories.offsets)
    steps = int(lengths.max(initial=0))
    live = np.arange(steps)[:, None] < lengths[None, :]
    inputs = np.zeros((steps, histories.n_sessions), dtype=np.int32)
    rating_cells, gap_cells = np.zeros_like(inputs), np.zeros_like(inputs)
    inputs.T[live.T] = histories.items
    if ratings is not None:
        rating_cells.T[live.T] = ratings
    if gaps is not None:
        gap_cells.T[live.T] = gaps
    following = np.zeros(histories.n_sessions, np.int32) if next_gaps is None else next_gaps.astype(np.int32)
    scores = _last_states_fn(network)(
        inputs, rating_cells, gap_cells, live, following, network.initial_states(histories.n_sessions)
    )
    return scores.numpy()  # writable: a model may leave movies out


@functools.lru_cache(maxsize=4)
def _replay_chunk_fn(network: GRU4RecNetwork):
    """Replay steps of a chunk: reset, keep the state of every cell to be predicted, then consume."""
    cells, flags, states = network.chunk_signature()

    def replay_chunk(inputs, ratings, gaps, reset, feed, predict, states):
        outputs = tf.TensorArray(tf.float32, size=tf.shape(inputs)[0])
        for t in tf.range(tf.shape(inputs)[0]):
            keep = tf.cast(~reset[t], tf.float32)[:, None]
            states = [h * keep for h in states]
            # What the model knows before this event (and how long ago its session's last one was).
            outputs = outputs.write(t, network.before_target(states[-1], gaps[t]))
            _, stepped = network.step(inputs[t], states, ratings[t], gaps[t], training=False)
            states = [tf.where(feed[t][:, None], new, old) for new, old in zip(stepped, states, strict=True)]
        return states, network.score_all(tf.boolean_mask(outputs.stack(), predict))

    return tf.function(replay_chunk, input_signature=[cells, cells, cells, flags, flags, flags, states])


def replay_scores(
    network: GRU4RecNetwork,
    stream: Replay,
    *,
    ratings: np.ndarray | None = None,
    gaps: np.ndarray | None = None,
    exclude_seen: bool = False,
    batch_size: int = EVAL_BATCH,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Scores of ``stream``'s targets over all candidates, chunk by chunk (rows of its targets).

    Users' timelines run side by side; a session start resets a slot's state (the user's seen
    movies are not reset: they are the viewer's, not the session's). With ``exclude_seen`` the
    network never scores what its current session fed it (``timeline.session_seen_mask``): -inf.
    """
    schedule = session_parallel(
        stream.offsets, batch_size, items=np.maximum(stream.items, 0), order="time", every_event=True
    )
    live = schedule.events >= 0
    at = np.maximum(schedule.events, 0)
    reset, feed, predict = (live & flags[at] for flags in (stream.session_start, stream.feed, stream.target))
    rating_cells = cell_values(ratings, schedule.events)
    gap_cells = cell_values(gaps, schedule.events)
    targets = stream.target_events
    replay_chunk = _replay_chunk_fn(network)
    states = network.initial_states(batch_size)
    for begin, end, width in chunks(schedule, cells=EVAL_CELLS):
        rows = (slice(begin, end), slice(0, width))
        states, scores = replay_chunk(
            schedule.inputs[rows], rating_cells[rows], gap_cells[rows], reset[rows], feed[rows],
            predict[rows], [h[:width] for h in states],
        )  # fmt: skip
        events = schedule.events[rows][predict[rows]]  # row-major, as boolean_mask takes them
        if events.size == 0:
            continue
        scores = scores.numpy()
        if exclude_seen:
            scores[session_seen_mask(stream, events, scores.shape[1])] = -np.inf
        yield np.searchsorted(targets, events), scores
