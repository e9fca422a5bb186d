"""Training and full-ranking inference of GRU4Rec over session-parallel schedules.

Per-event Python is what makes GRU4Rec ports slow, so each compiled call runs a whole chunk of
schedule steps in a graph loop, hidden states carried through the loop and zeroed where a session
starts. GRU4Rec updates after every step (truncated BPTT of one step); here one update covers
``bptt_steps`` steps with gradients flowing back through them. The default of 2 halves the
per-update costs (optimizer, graph bookkeeping) and scored at least as well as 1 on ML-1M
(valid/test Recall@20 0.274/0.259 after 8 epochs vs 0.269/0.258 after 6); 8 steps with batch 64
overfitted.

Inference ranks each target among all items inside the graph, so only one integer per prediction
leaves it. Measured choices (2-core CPU, ML-1M): XLA (``jit_compile``) made training slower and
cannot compile the sparse row updates; TF's fused sparse softmax cross-entropy kernel is
single-threaded, so the loss is written as log-sum-exp minus the target's logit.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sbr_dagster.core import lake, metrics
from sbr_dagster.core.batching import Schedule, prediction_positions, session_parallel
from sbr_dagster.core.device import device_name, seed_everything
from sbr_dagster.core.model import GRU4RecConfig, build_model, model_class

EVAL_K = 20
BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-7  # Adam, as Keras
ADAGRAD_EPSILON = 1e-6


@dataclass
class FitResult:
    model: Any  # Keras GRU4Rec holding the best validation epoch's weights (the last epoch without valid)
    history: list[dict[str, float]]
    best_epoch: int
    wall_s: float
    events_per_s: float  # training events per second of training (validation excluded)
    device: str
    stopped_early: bool
    config: GRU4RecConfig = field(default_factory=GRU4RecConfig)


def make_optimizer(config: GRU4RecConfig, variables: list):
    """The optimizer ``config`` names, over ``variables`` (the model's trainable ones)."""
    return _optimizer_class()(config, variables)


@functools.cache
def _optimizer_class():
    import tensorflow as tf

    class Optimizer:
        """Adam, or GRU4Rec's Adagrad with momentum, applied sparsely to embedding rows.

        Keras' optimizers update every row of an item table at every step (a dense pass over
        n_items x width per event batch) in a dozen separate kernels; replacing them took
        training from 18.9k to 27.8k events/s. Here dense gradients go through one fused kernel
        (Adam) and row gradients (``IndexedSlices`` from the item lookup) update only the rows
        the batch touched, as GRU4Rec does ("lazy" Adam: untouched rows keep their moments).
        """

        def __init__(self, config: GRU4RecConfig, variables: list):
            self.kind = config.optimizer
            self.lr = tf.Variable(config.learning_rate, dtype=tf.float32, trainable=False, name="lr")
            self.momentum = config.momentum
            self.params = [getattr(v, "value", v) for v in variables]  # tf.Variables under Keras ones
            self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
            self.slots = [
                (
                    tf.Variable(tf.zeros_like(v), trainable=False, name="slot_a"),
                    tf.Variable(tf.zeros_like(v), trainable=False, name="slot_b"),
                )
                for v in self.params
            ]

        def apply(self, grads) -> None:
            step = tf.cast(self.iterations.assign_add(1), tf.float32)
            for grad, var, (a, b) in zip(grads, self.params, self.slots, strict=True):
                if grad is None:
                    continue
                if isinstance(grad, tf.IndexedSlices):
                    self._apply_rows(grad, var, a, b, step)
                elif self.kind == "adam":
                    tf.raw_ops.ResourceApplyAdam(
                        var=var.handle, m=a.handle, v=b.handle,
                        beta1_power=tf.pow(BETA_1, step), beta2_power=tf.pow(BETA_2, step),
                        lr=self.lr, beta1=tf.constant(BETA_1), beta2=tf.constant(BETA_2),
                        epsilon=tf.constant(EPSILON), grad=grad,
                    )  # fmt: skip
                else:
                    velocity = b.assign(self._adagrad_velocity(grad, a.assign_add(tf.square(grad)), b))
                    var.assign_add(velocity)

        def _adagrad_velocity(self, grad, acc, velocity):
            return self.momentum * velocity - self.lr * grad / tf.sqrt(acc + ADAGRAD_EPSILON)

        def _apply_rows(self, grad, var, a, b, step) -> None:
            rows, position = tf.unique(grad.indices)
            grad = tf.math.unsorted_segment_sum(grad.values, position, tf.shape(rows)[0])
            if self.kind == "adam":
                m = BETA_1 * tf.gather(a, rows) + (1.0 - BETA_1) * grad
                v = BETA_2 * tf.gather(b, rows) + (1.0 - BETA_2) * tf.square(grad)
                a.scatter_update(tf.IndexedSlices(m, rows))
                b.scatter_update(tf.IndexedSlices(v, rows))
                lr = self.lr * tf.sqrt(1.0 - tf.pow(BETA_2, step)) / (1.0 - tf.pow(BETA_1, step))
                var.scatter_sub(tf.IndexedSlices(lr * m / (tf.sqrt(v) + EPSILON), rows))
            else:
                acc = tf.gather(a, rows) + tf.square(grad)
                velocity = self._adagrad_velocity(grad, acc, tf.gather(b, rows))
                a.scatter_update(tf.IndexedSlices(acc, rows))
                b.scatter_update(tf.IndexedSlices(velocity, rows))
                var.scatter_add(tf.IndexedSlices(velocity, rows))

    return Optimizer


def _chunks(schedule: Schedule, *, steps: int | None = None, cells: int | None = None):
    """(first step, end step, live width) of each compiled call; the width only shrinks over time.

    ``steps`` fixes the steps per call (training); ``cells`` bounds steps x width instead, so that
    a call's [cells, n_items] score matrix stays small however narrow the tail gets (inference).
    """
    begin = 0
    while begin < schedule.steps:
        width = int(schedule.width[begin])
        n = steps if steps is not None else max(1, cells // max(width, 1))
        end = min(begin + n, schedule.steps)
        yield begin, end, width
        begin = end


def _cells(values: np.ndarray | None, events: np.ndarray) -> np.ndarray:
    """``values`` of each schedule cell's input event as int32 (0 where the cell is not live)."""
    if values is None:
        return np.zeros(events.shape, dtype=np.int32)
    return np.where(events >= 0, np.asarray(values)[np.maximum(events, 0)], 0).astype(np.int32)


def _specs(model):
    import tensorflow as tf

    cells = tf.TensorSpec([None, None], tf.int32)
    flags = tf.TensorSpec([None, None], tf.bool)
    states = [tf.TensorSpec([None, width], tf.float32) for width in model.widths]
    return cells, flags, states


def _advance(model, items, states, reset, ratings, training):
    """One GRU step for every slot, the hidden state zeroed first where a session starts."""
    import tensorflow as tf

    keep = tf.cast(~reset, tf.float32)[:, None]
    return model.step(items, [h * keep for h in states], ratings, training=training)


class _Trainer:
    """The compiled training call of one model and optimizer."""

    def __init__(self, model, config: GRU4RecConfig, item_support: np.ndarray | None):
        import tensorflow as tf

        self.model, self.config = model, config
        self.variables = model.trainable_variables
        self.optimizer = make_optimizer(config, self.variables)
        if config.loss == "bpr_max":
            support = np.ones(model.n_items) if item_support is None else np.asarray(item_support, float)
            weights = np.maximum(support, 0.0) ** config.sample_alpha
            self.sample_cdf = np.cumsum(weights) / weights.sum()
        cells, flags, states = _specs(model)
        self.train_chunk = tf.function(
            self._train_chunk,
            input_signature=[cells, cells, flags, flags, cells, cells, states],
        )

    def _loss(self, output, targets, mask, negatives):
        import tensorflow as tf

        weights = tf.cast(mask, tf.float32)
        if self.config.loss == "cross_entropy":
            # log-sum-exp minus the target's logit: the same loss as TF's fused sparse softmax
            # cross-entropy kernel, but that kernel is single-threaded and took a third of each step.
            logits = self.model.score_all(output)
            target_logits = tf.gather(logits, targets, axis=1, batch_dims=1)
            losses = tf.reduce_logsumexp(logits, axis=1) - target_logits
        else:
            losses = _bpr_max(self.model, output, targets, mask, negatives, self.config.bpreg)
        return tf.reduce_sum(losses * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)

    def _train_chunk(self, inputs, targets, reset, mask, ratings, negatives, states):
        """One update per window of ``bptt_steps`` steps; the chunk holds a whole number of windows."""
        import tensorflow as tf

        window = self.config.bptt_steps
        total = tf.constant(0.0)
        for i in tf.range(tf.shape(inputs)[0] // window):
            rows = slice(i * window, (i + 1) * window)
            items, resets, rates = inputs[rows], reset[rows], ratings[rows]
            with tf.GradientTape() as tape:
                outputs = []
                for t in range(window):  # unrolled: gradients flow back through the window's steps
                    output, states = _advance(self.model, items[t], states, resets[t], rates[t], True)
                    outputs.append(output)
                live = tf.reshape(mask[rows], [-1])
                loss = self._loss(tf.concat(outputs, 0), tf.reshape(targets[rows], [-1]), live, negatives[i])
            self.optimizer.apply(tape.gradient(loss, self.variables))
            total += loss * tf.reduce_sum(tf.cast(live, tf.float32))
        return states, total

    def _negatives(self, n_steps: int, rng: np.random.Generator) -> np.ndarray:
        """Popularity-sampled negatives, one set shared by each update's events (none without bpr_max)."""
        if self.config.loss != "bpr_max":
            return np.zeros((n_steps, 0), dtype=np.int32)
        draws = rng.random((n_steps, self.config.n_negatives))
        picked = np.searchsorted(self.sample_cdf, draws, side="right")
        return np.minimum(picked, len(self.sample_cdf) - 1).astype(np.int32)

    def run_epoch(self, schedule: Schedule, ratings: np.ndarray | None, rng: np.random.Generator) -> float:
        """Train on every step of ``schedule``; returns the mean loss per event."""
        window = self.config.bptt_steps
        steps = -(-self.config.steps_per_call // window) * window
        states = self.model.initial_states(schedule.inputs.shape[1])
        rating_cells = _cells(ratings, schedule.events)
        total = 0.0
        for begin, end, width in _chunks(schedule, steps=steps):
            # Only the epoch's last chunk can end inside a window: pad it with masked steps.
            pad = ((0, -(end - begin) % window), (0, 0))
            cells = [
                np.pad(values[begin:end, :width], pad)
                for values in (schedule.inputs, schedule.targets, schedule.reset, schedule.mask, rating_cells)
            ]
            states, loss = self.train_chunk(
                *cells, self._negatives(len(cells[0]) // window, rng), [h[:width] for h in states]
            )
            total += float(loss)
        return total / max(schedule.n_events, 1)


def _bpr_max(model, output, targets, mask, negatives, bpreg):
    """BPR-max (Hidasi & Karatzoglou 2018) over the batch's other targets plus sampled negatives.

    A candidate equal to the event's own target, or the target of a slot that is not live, is no
    negative and gets no weight.
    """
    import tensorflow as tf

    candidates = tf.concat([targets, negatives], axis=0)
    scores = model.score_items(output, candidates)  # [width, width + n_negatives]
    target_scores = tf.gather(scores, tf.range(tf.shape(targets)[0]), axis=1, batch_dims=1)[:, None]
    live = tf.concat([mask, tf.ones(tf.shape(negatives), tf.bool)], axis=0)[None, :]
    negative = live & (candidates[None, :] != targets[:, None])
    weights = tf.nn.softmax(tf.where(negative, scores, -1e9), axis=1) * tf.cast(negative, tf.float32)
    ranking = tf.reduce_sum(weights * tf.sigmoid(target_scores - scores), axis=1)
    return -tf.math.log(ranking + 1e-24) + bpreg * tf.reduce_sum(weights * tf.square(scores), axis=1)


def fit(
    train_items: np.ndarray,
    train_offsets: np.ndarray,
    n_items: int,
    config: GRU4RecConfig | None = None,
    *,
    valid: tuple[np.ndarray, np.ndarray] | None = None,
    item_support: np.ndarray | None = None,
    train_ratings: np.ndarray | None = None,
    valid_ratings: np.ndarray | None = None,
    train_start_times: np.ndarray | None = None,
    log: Callable[[str], object] = print,
) -> FitResult:
    """Train GRU4Rec; with ``valid``, keep the epoch with the best validation Recall@20 (then MRR@20).

    ``item_support`` (train events per item) drives bpr_max's negative sampling; ``train_start_times``
    (one per session) orders sessions for ``order="time"`` (default: the given order).
    """
    config = config or GRU4RecConfig()
    started = time.perf_counter()
    seed_everything(config.seed)
    model = build_model(n_items, config)
    trainer = _Trainer(model, config, item_support)
    rng = np.random.default_rng(config.seed)
    device = device_name()
    log(f"GRU4Rec on {device}: {len(train_items):,} train events, {n_items:,} items, {config}")

    history: list[dict[str, float]] = []
    best_key, best_weights, best_epoch, stopped_early = None, None, 0, False
    train_seconds, train_events = 0.0, 0
    for epoch in range(1, config.epochs + 1):
        trainer.optimizer.lr.assign(config.learning_rate * config.lr_decay ** (epoch - 1))
        tick = time.perf_counter()
        schedule = session_parallel(
            train_offsets, config.batch_size, items=train_items, order=config.order, seed=rng,
            start_times=train_start_times,
        )  # fmt: skip
        loss = trainer.run_epoch(schedule, train_ratings, rng)
        seconds = time.perf_counter() - tick
        train_seconds, train_events = train_seconds + seconds, train_events + schedule.n_events
        row = {"epoch": epoch, "loss": loss, "events_per_s": schedule.n_events / seconds, "seconds": seconds}
        if valid is not None:
            ranks = rank_sessions(model, *valid, ratings=valid_ratings)
            row["valid_recall_20"] = metrics.recall_at(ranks, EVAL_K)
            row["valid_mrr_20"] = metrics.mrr_at(ranks, EVAL_K)
        history.append(row)
        log(_describe(row))
        if not np.isfinite(loss):
            log(f"epoch {epoch}: loss is {loss}; stopping (lower the learning rate)")
            stopped_early = True
            break
        key = (row.get("valid_recall_20", epoch), row.get("valid_mrr_20", 0.0))
        if best_key is None or key > best_key:
            best_key, best_weights, best_epoch = key, [w.copy() for w in model.get_weights()], epoch
        elif epoch - best_epoch >= config.patience:
            stopped_early = epoch < config.epochs
            log(f"no better validation Recall@{EVAL_K} for {config.patience} epochs; best epoch {best_epoch}")
            break
    if best_weights is not None:
        model.set_weights(best_weights)
    return FitResult(
        model=model,
        history=history,
        best_epoch=best_epoch,
        wall_s=time.perf_counter() - started,
        events_per_s=train_events / train_seconds if train_seconds else float("nan"),
        device=device,
        stopped_early=stopped_early,
        config=config,
    )


def _describe(row: dict[str, float]) -> str:
    text = f"epoch {row['epoch']}: loss {row['loss']:.4f}, {row['events_per_s']:,.0f} events/s"
    if "valid_recall_20" in row:
        text += f", valid Recall@{EVAL_K} {row['valid_recall_20']:.4f} MRR@{EVAL_K} {row['valid_mrr_20']:.4f}"
    return text


EVAL_CELLS = 4096  # schedule cells ranked per compiled call: bounds the [cells, n_items] score matrix


@functools.lru_cache(maxsize=4)  # a few models at most stay alive through their compiled calls
def _rank_chunk_fn(model):
    """The compiled ranking call of ``model``: GRU steps in a graph loop, then one batched scoring."""
    import tensorflow as tf

    cells, flags, states = _specs(model)

    def rank_chunk(inputs, targets, reset, mask, ratings, states):
        outputs = tf.TensorArray(tf.float32, size=tf.shape(inputs)[0])
        for t in tf.range(tf.shape(inputs)[0]):
            output, states = _advance(model, inputs[t], states, reset[t], ratings[t], False)
            outputs = outputs.write(t, output)
        scores = model.score_all(tf.boolean_mask(outputs.stack(), mask))
        target_scores = tf.gather(scores, tf.boolean_mask(targets, mask), axis=1, batch_dims=1)
        return states, tf.reduce_sum(tf.cast(scores >= target_scores[:, None], tf.int32), axis=1)

    return tf.function(rank_chunk, input_signature=[cells, cells, flags, flags, cells, states])


def rank_sessions(
    model, items: np.ndarray, offsets: np.ndarray, *, batch_size: int = 512, ratings: np.ndarray | None = None
) -> np.ndarray:
    """Rank of every prediction's target among all items, in prediction order (see ``metrics``).

    Each session starts from a zero hidden state; a tie with the target counts against the model.
    """
    schedule = session_parallel(offsets, batch_size, items=items, order="time")
    rating_cells = _cells(ratings, schedule.events)
    positions = prediction_positions(schedule.events, offsets)
    rank_chunk = _rank_chunk_fn(model)
    ranks = np.zeros(len(items) - (len(offsets) - 1), dtype=np.int64)
    states = model.initial_states(batch_size)
    for begin, end, width in _chunks(schedule, cells=EVAL_CELLS):
        rows = (slice(begin, end), slice(0, width))
        states, chunk = rank_chunk(
            schedule.inputs[rows], schedule.targets[rows], schedule.reset[rows], schedule.mask[rows],
            rating_cells[rows], [h[:width] for h in states],
        )  # fmt: skip
        ranks[positions[rows][schedule.mask[rows]]] = chunk.numpy()
    return ranks


@functools.lru_cache(maxsize=4)
def _last_states_fn(model):
    import tensorflow as tf

    cells, flags, states = _specs(model)

    def last_states(inputs, ratings, live, states):
        for t in tf.range(tf.shape(inputs)[0]):
            _, stepped = model.step(inputs[t], states, ratings[t], training=False)
            states = [tf.where(live[t][:, None], new, old) for new, old in zip(stepped, states, strict=True)]
        return model.score_all(states[-1])

    return tf.function(last_states, input_signature=[cells, cells, flags, states])


def score_histories(
    model, histories: list[np.ndarray], ratings: list[np.ndarray] | None = None
) -> np.ndarray:
    """Next-item scores [n, n_items] after feeding each history (item_idx array) from a zero state."""
    lengths = np.array([len(h) for h in histories], dtype=np.int64)
    steps = int(lengths.max(initial=0))
    live = np.arange(steps)[:, None] < lengths[None, :]
    inputs = np.zeros((steps, len(histories)), dtype=np.int32)
    rating_cells = np.zeros_like(inputs)
    inputs.T[live.T] = np.concatenate([np.asarray(h, dtype=np.int32) for h in histories] or [[]])
    if ratings is not None:
        rating_cells.T[live.T] = np.concatenate([np.asarray(r, dtype=np.int32) for r in ratings] or [[]])
    scores = _last_states_fn(model)(inputs, rating_cells, live, model.initial_states(len(histories)))
    return np.asarray(scores)


def save_model(model, path: str | Path) -> Path:
    """Write ``model`` as a ``.keras`` archive atomically (Keras insists on the extension)."""
    path = Path(path)
    with lake.atomic_path(path, suffix=".keras") as tmp:
        staged = tmp.with_suffix("")  # ".<name>.<random>.keras": what Keras accepts
        try:
            model.save(staged)
            staged.replace(tmp)
        finally:
            staged.unlink(missing_ok=True)
    return path


def load_model(path: str | Path):
    """Load a GRU4Rec saved by ``save_model``."""
    import keras

    return keras.saving.load_model(Path(path), custom_objects={"GRU4Rec": model_class()}, compile=False)
