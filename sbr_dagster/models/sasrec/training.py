"""SASRec's epochs: every training event a target once, full-softmax cross-entropy at every token.

The loss is log-sum-exp minus the target's logit over every item, taken only at real tokens (the
padding of a batch's shorter windows is dropped before the output layer, which is most of the
cost). Validation, the best epoch and early stopping are the caller's (``after_epoch``, see
``sbr_dagster.training``). This module imports TensorFlow: ``model`` imports it when training starts.
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from sbr_dagster.data.arrays import Sessions
from sbr_dagster.models import softmax
from sbr_dagster.models.base import AfterEpoch, Log
from sbr_dagster.models.device import device_name, seed_everything
from sbr_dagster.models.optimizer import SparseOptimizer
from sbr_dagster.models.sasrec.config import SASRecConfig
from sbr_dagster.models.sasrec.network import SASRecNetwork, build_network
from sbr_dagster.models.sasrec.windows import batches, padded_width, training_windows


def new_network(n_items: int, config: SASRecConfig) -> SASRecNetwork:
    seed_everything(config.seed)
    return build_network(n_items, config.network())


def train_network(
    network: SASRecNetwork, train: Sessions, config: SASRecConfig, after_epoch: AfterEpoch | None, log: Log
) -> None:
    """Train for up to ``config.epochs`` epochs; each epoch's row: epoch, mean loss per event,
    events, events/s and seconds (validation excluded)."""
    items = np.asarray(train.items, dtype=np.int32)
    windows = training_windows(train.offsets, config.max_len)
    n_events = int(windows.length.sum())
    optimizer = SparseOptimizer(network.trainable_variables, learning_rate=config.learning_rate)
    step = tf.function(
        lambda tokens, targets, mask: _train_step(network, optimizer, tokens, targets, mask),
        input_signature=[tf.TensorSpec([None, None], tf.int32)] * 2 + [tf.TensorSpec([None, None], tf.bool)],
    )
    rng = np.random.default_rng(config.seed)
    log(f"SASRec on {device_name()}: {n_events:,} train events in {windows.n:,} windows, {config}")
    for epoch in range(1, config.epochs + 1):
        tick = time.perf_counter()
        total = 0.0
        for rows in batches(windows.length, config.batch_size, rng):
            width = padded_width(int(windows.length[rows].max()), config.max_len)
            tokens = windows.tokens(items, network.n_items, rows, width)
            targets, mask = windows.targets(items, rows, width)
            total += float(step(tokens, targets, mask))
        seconds = time.perf_counter() - tick
        row = {
            "epoch": epoch,
            "loss": total / max(n_events, 1),
            "events": n_events,
            "events_per_s": n_events / seconds,
            "seconds": seconds,
        }
        if after_epoch is not None and after_epoch(row).stop:
            break


def _train_step(network: SASRecNetwork, optimizer: SparseOptimizer, tokens, targets, mask):
    """One update on a batch of windows; returns the summed loss of its real tokens."""
    with tf.GradientTape() as tape:
        states = tf.boolean_mask(network.states(tokens, training=True), mask)
        wanted = tf.boolean_mask(targets, mask)
        losses = softmax.cross_entropy(network.score_all(states), network.score_targets(states, wanted))
        loss = tf.reduce_mean(losses)
    optimizer.apply(tape.gradient(loss, network.trainable_variables))
    return tf.reduce_sum(losses)
