"""GRU4Rec's epochs over session-parallel schedules, each compiled call running many steps.

Per-event Python is what makes GRU4Rec ports slow, so each compiled call runs a whole chunk of
schedule steps in a graph loop, hidden states carried through the loop and zeroed where a session
starts. GRU4Rec updates after every step (truncated BPTT of one step); here one update covers
``bptt_steps`` steps with gradients flowing back through them. The default of 2 halves the
per-update costs (optimizer, graph bookkeeping) and scored at least as well as 1 on ML-1M
(valid/test Recall@20 0.274/0.259 after 8 epochs vs 0.269/0.258 after 6); 8 steps with batch 64
overfitted. Measured choices (2-core CPU, ML-1M): XLA (``jit_compile``) made training slower and
cannot compile the sparse row updates; the cross-entropy is ``models.softmax``'s.

Validation, the best epoch and early stopping are the caller's (``after_epoch``, see
``sbr_dagster.training``). This module imports TensorFlow: ``model`` imports it when training starts.
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from sbr_dagster.data.arrays import Sessions
from sbr_dagster.data.gaps import session_gaps
from sbr_dagster.models import softmax
from sbr_dagster.models.base import AfterEpoch, Log, Verdict
from sbr_dagster.models.device import device_name, seed_everything
from sbr_dagster.models.gru4rec.batching import Schedule, cell_values, chunks, session_parallel
from sbr_dagster.models.gru4rec.config import GRU4RecConfig
from sbr_dagster.models.gru4rec.network import GRU4RecNetwork, build_network, remember, set_per_row
from sbr_dagster.models.optimizer import SparseOptimizer


def new_network(n_items: int, config: GRU4RecConfig) -> GRU4RecNetwork:
    """A freshly initialised network; ``config.seed`` fixes its weights and everything after."""
    seed_everything(config.seed)
    return build_network(n_items, config)


def train_network(
    network: GRU4RecNetwork,
    train: Sessions,
    config: GRU4RecConfig,
    after_epoch: AfterEpoch | None,
    log: Log,
) -> None:
    """Train ``network`` on ``train`` for up to ``config.epochs`` epochs (``after_epoch`` may stop it).

    Each epoch's row: epoch, mean loss per event, events, events/s, seconds (validation excluded) and
    the learning rate and batch it ran at. The rate decays after every epoch (``lr_schedule: epoch``)
    or only after one the trainer's verdict found no better (``plateau``).
    """
    n_items = network.n_items
    trainer = _Trainer(network, config, train.item_support(n_items))
    rng = np.random.default_rng(config.seed)
    ratings = train.ratings if config.rating_dim else None
    gaps = session_gaps(train) if config.gap_dim else None
    batch_size = config.batch_for(len(train.items))
    log(f"GRU4Rec on {device_name()}: {len(train.items):,} train events, {n_items:,} items, batch "
        f"{batch_size}, {config}")  # fmt: skip
    learning_rate = config.learning_rate
    for epoch in range(1, config.epochs + 1):
        trainer.optimizer.lr.assign(learning_rate)
        tick = time.perf_counter()
        schedule = session_parallel(
            train.offsets, batch_size, items=train.items, order=config.order, seed=rng,
            start_times=train.start_times,
        )  # fmt: skip
        loss = trainer.run_epoch(schedule, ratings, gaps, rng)
        seconds = time.perf_counter() - tick
        row = {
            "epoch": epoch,
            "loss": loss,
            "events": schedule.n_events,
            "events_per_s": schedule.n_events / seconds,
            "seconds": seconds,
            "learning_rate": learning_rate,
            "batch_size": batch_size,
        }
        verdict = after_epoch(row) if after_epoch is not None else Verdict()
        if verdict.stop:
            break
        if config.lr_schedule == "epoch" or not verdict.improved:
            learning_rate *= config.lr_decay


class _Trainer:
    """The compiled training call of one model and optimizer."""

    def __init__(self, model, config: GRU4RecConfig, item_support: np.ndarray | None):
        self.model, self.config = model, config
        self.variables = model.trainable_variables
        self.optimizer = SparseOptimizer(
            self.variables,
            learning_rate=config.learning_rate,
            kind=config.optimizer,
            momentum=config.momentum,
        )
        if config.loss == "bpr_max":
            support = np.ones(model.n_items) if item_support is None else np.asarray(item_support, float)
            weights = np.maximum(support, 0.0) ** config.sample_alpha
            self.sample_cdf = np.cumsum(weights) / weights.sum()
        cells, flags, states = model.chunk_signature()
        self.train_chunk = tf.function(
            self._train_chunk,
            input_signature=[cells, cells, flags, flags, cells, cells, cells, cells, states, flags],
        )

    def _loss(self, output, targets, mask, negatives, excluded):
        weights = tf.cast(mask, tf.float32)
        if self.config.loss == "cross_entropy":
            if excluded is not None:  # the session's earlier movies, never the target itself
                excluded = set_per_row(excluded, targets, False)
            losses = softmax.cross_entropy(
                self.model.score_all(output), self.model.score_targets(output, targets), excluded
            )
        else:
            losses = _bpr_max(self.model, output, targets, mask, negatives, self.config.bpreg)
        return tf.reduce_sum(losses * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)

    def _train_chunk(self, inputs, targets, reset, mask, ratings, gaps, target_gaps, negatives, states, seen):
        """One update per window of ``bptt_steps`` steps; the chunk holds a whole number of windows.

        ``gaps`` are the gap buckets of the fed events, ``target_gaps`` those of their targets;
        ``seen`` marks each slot's movies of its session so far (``[slots, 0]`` when not excluded)."""
        window = self.config.bptt_steps
        exclude = self.config.exclude_seen
        total = tf.constant(0.0)
        for i in tf.range(tf.shape(inputs)[0] // window):
            rows = slice(i * window, (i + 1) * window)
            items, resets, rates, fed_gaps, next_gaps = (
                cells[rows] for cells in (inputs, reset, ratings, gaps, target_gaps)
            )
            with tf.GradientTape() as tape:
                outputs, seen_before = [], []
                for t in range(window):  # unrolled: gradients flow back through the window's steps
                    output, states = self.model.advance(
                        items[t], states, resets[t], rates[t], fed_gaps[t], training=True
                    )
                    outputs.append(self.model.before_target(output, next_gaps[t]))
                    if exclude:
                        seen = remember(seen, items[t], resets[t])
                        seen_before.append(seen)
                live = tf.reshape(mask[rows], [-1])
                excluded = tf.concat(seen_before, 0) if exclude else None
                loss = self._loss(
                    tf.concat(outputs, 0), tf.reshape(targets[rows], [-1]), live, negatives[i], excluded
                )
            self.optimizer.apply(tape.gradient(loss, self.variables))
            total += loss * tf.reduce_sum(tf.cast(live, tf.float32))
        return states, seen, total

    def _negatives(self, n_steps: int, rng: np.random.Generator) -> np.ndarray:
        """Popularity-sampled negatives, one set shared by each update's events (none without bpr_max)."""
        if self.config.loss != "bpr_max":
            return np.zeros((n_steps, 0), dtype=np.int32)
        draws = rng.random((n_steps, self.config.n_negatives))
        picked = np.searchsorted(self.sample_cdf, draws, side="right")
        return np.minimum(picked, len(self.sample_cdf) - 1).astype(np.int32)

    def run_epoch(
        self,
        schedule: Schedule,
        ratings: np.ndarray | None,
        gaps: np.ndarray | None,
        rng: np.random.Generator,
    ) -> float:
        """Train on every step of ``schedule`` (with each event's rating and gap bucket, when the
        network reads them); returns the mean loss per event."""
        window = self.config.bptt_steps
        steps = -(-self.config.steps_per_call // window) * window
        slots = schedule.inputs.shape[1]
        states = self.model.initial_states(slots)
        seen = self.model.initial_seen(slots, self.config.exclude_seen)
        rating_cells = cell_values(ratings, schedule.events)
        gap_cells = cell_values(gaps, schedule.events)
        target_gap_cells = cell_values(gaps, np.where(schedule.mask, schedule.events + 1, -1))
        total = 0.0
        for begin, end, width in chunks(schedule, steps=steps):
            # Only the epoch's last chunk can end inside a window: pad it with masked steps.
            pad = ((0, -(end - begin) % window), (0, 0))
            cells = [
                np.pad(values[begin:end, :width], pad)
                for values in (
                    schedule.inputs,
                    schedule.targets,
                    schedule.reset,
                    schedule.mask,
                    rating_cells,
                    gap_cells,
                    target_gap_cells,
                )
            ]
            states, seen, loss = self.train_chunk(
                *cells, self._negatives(len(cells[0]) // window, rng), [h[:width] for h in states],
                seen[:width],
            )  # fmt: skip
            total += float(loss)
        return total / max(schedule.n_events, 1)


def _bpr_max(model, output, targets, mask, negatives, bpreg):
    """BPR-max (Hidasi & Karatzoglou 2018) over the batch's other targets plus sampled negatives.

    A candidate equal to the event's own target, or the target of a slot that is not live, is no
    negative and gets no weight.
    """
    candidates = tf.concat([targets, negatives], axis=0)
    scores = model.score_items(output, candidates)  # [width, width + n_negatives]
    target_scores = tf.gather(scores, tf.range(tf.shape(targets)[0]), axis=1, batch_dims=1)[:, None]
    live = tf.concat([mask, tf.ones(tf.shape(negatives), tf.bool)], axis=0)[None, :]
    negative = live & (candidates[None, :] != targets[:, None])
    weights = tf.nn.softmax(tf.where(negative, scores, -1e9), axis=1) * tf.cast(negative, tf.float32)
    ranking = tf.reduce_sum(weights * tf.sigmoid(target_scores - scores), axis=1)
    return -tf.math.log(ranking + 1e-24) + bpreg * tf.reduce_sum(weights * tf.square(scores), axis=1)
