"""The GRU4Rec network: hyperparameters and the Keras model, one recurrent step at a time.

Session-parallel training (``batching``) advances every session by one event per update, so the
network is written as a single step: (item of each slot, hidden states) -> (output, new states).
The recurrence is Keras ``GRUCell`` math (``reset_after=True``, sigmoid/tanh), with one twist: in
one-hot mode (``embedding_dim=0``, GRU4Rec's default) the first layer's input kernel is stored as
an item table and looked up, since multiplying a one-hot row by a kernel is a row lookup.
cuDNN would only pay off over long time loops, which one-step truncated BPTT never runs.

TensorFlow is imported inside functions only: importing this module must stay cheap.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

N_RATINGS = 6  # rating values 1..5 index a table of 6 rows; 0 means "no rating"


@dataclass(frozen=True)
class GRU4RecConfig:
    """Everything that defines a GRU4Rec training run.

    The defaults were tuned on ML-1M's user-as-session split (best epoch chosen on validation):
    dropout on the hidden output and a per-epoch learning-rate decay gave the largest gains
    (test Recall@20 0.18 -> 0.26), time-ordered epochs beat shuffled ones, batch 128 beat 192 and
    256; tied embeddings and Adagrad scored lower, 200 hidden units no better after 4 epochs at
    2.5x the cost.
    Batch 128 with ``bptt_steps=2`` trains at ~39k events/s on 2 CPU cores (bench/train_eval.py).
    """

    layers: tuple[int, ...] = (100,)  # GRU widths, first to last
    embedding_dim: int = 0  # 0: one-hot item input (GRU4Rec's default)
    rating_dim: int = 0  # 0: ratings unused; > 0: a rating embedding joins the item input
    tied_embeddings: bool = False  # output layer scores items with the input embedding
    dropout_embedding: float = 0.0  # on the item input
    dropout_hidden: float = 0.3  # on each GRU layer's output (next layer's input / the output layer's)
    loss: Literal["cross_entropy", "bpr_max"] = "cross_entropy"  # cross_entropy: softmax over all items
    n_negatives: int = 2048  # bpr_max: popularity-sampled negatives shared by the batch (plus in-batch)
    sample_alpha: float = 0.5  # bpr_max: negatives drawn with probability ~ support ** sample_alpha
    bpreg: float = 1.0  # bpr_max: score regulariser weight
    optimizer: Literal["adam", "adagrad"] = "adam"  # adagrad: with momentum, as GRU4Rec
    learning_rate: float = 0.003
    lr_decay: float = 0.6  # the learning rate is multiplied by this after every epoch
    momentum: float = 0.0  # adagrad only
    batch_size: int = 128
    bptt_steps: int = 2  # steps per update, gradients flowing back through them (1: GRU4Rec's)
    epochs: int = 8
    patience: int = 2  # epochs without a better validation Recall@20 before stopping
    seed: int = 0
    order: Literal["shuffle", "time"] = "time"  # session order of each training epoch
    steps_per_call: int = 256  # schedule steps run per compiled call (speed only, results unchanged)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(int(w) for w in self.layers))
        if not self.layers or min(self.layers) < 1:
            raise ValueError(f"layers must be one or more positive widths, got {self.layers}")
        if self.loss not in ("cross_entropy", "bpr_max"):
            raise ValueError(f"unknown loss {self.loss!r}: use 'cross_entropy' or 'bpr_max'")
        if self.optimizer not in ("adam", "adagrad"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}: use 'adam' or 'adagrad'")
        if self.order not in ("shuffle", "time"):
            raise ValueError(f"unknown order {self.order!r}: use 'shuffle' or 'time'")
        if self.tied_embeddings and self.embedding_dim not in (0, self.layers[-1]):
            raise ValueError(
                f"tied_embeddings needs embedding_dim 0 or the last layer's width {self.layers[-1]}, "
                f"got {self.embedding_dim}"
            )
        if min(self.batch_size, self.bptt_steps, self.epochs, self.steps_per_call) < 1:
            raise ValueError("batch_size, bptt_steps, epochs and steps_per_call must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "layers": list(self.layers)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GRU4RecConfig:
        """Build from a plain dict (e.g. YAML); unknown keys are an error, not silently ignored."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown GRU4Rec settings {unknown}; known: {sorted(known)}")
        return cls(**values)

    def network(self) -> dict[str, Any]:
        """The settings that shape the network (what ``build_model`` needs)."""
        return {
            "layers": list(self.layers),
            "embedding_dim": self.embedding_dim,
            "rating_dim": self.rating_dim,
            "tied_embeddings": self.tied_embeddings,
            "dropout_embedding": self.dropout_embedding,
            "dropout_hidden": self.dropout_hidden,
        }


def build_model(n_items: int, config: GRU4RecConfig, *, seed: int | None = None):
    """A built GRU4Rec Keras model for ``n_items`` items (weights initialised from ``seed``)."""
    import keras

    if seed is not None:
        keras.utils.set_random_seed(seed)
    return model_class()(n_items=n_items, **config.network())


@functools.cache
def model_class():
    """The Keras model class, defined on first use so that Keras loads only when a model is needed."""
    import keras
    import tensorflow as tf
    from keras import ops

    @keras.saving.register_keras_serializable(package="sbr_dagster")
    class GRU4Rec(keras.Model):
        """One step of a stack of GRU layers over item (and optional rating) input, scoring all items."""

        def __init__(
            self,
            n_items: int,
            layers=(100,),
            embedding_dim: int = 0,
            rating_dim: int = 0,
            tied_embeddings: bool = False,
            dropout_embedding: float = 0.0,
            dropout_hidden: float = 0.0,
            **kwargs,
        ):
            super().__init__(**kwargs)
            self.n_items = int(n_items)
            self.widths = tuple(int(w) for w in layers)
            self.embedding_dim = int(embedding_dim)
            self.rating_dim = int(rating_dim)
            self.tied_embeddings = bool(tied_embeddings)
            self.dropout_embedding = float(dropout_embedding)
            self.dropout_hidden = float(dropout_hidden)
            first = self.widths[0]
            # One-hot input: the item table is the first layer's input kernel; otherwise an embedding.
            self.item_dim = self.widths[-1] if tied_embeddings else embedding_dim
            one_hot = self.item_dim == 0
            self.item_table = self.add_weight(
                shape=(self.n_items, 3 * first if one_hot else self.item_dim),
                initializer="glorot_uniform" if one_hot else "uniform",
                name="item_table",
            )
            if rating_dim:
                self.rating_table = self.add_weight(
                    shape=(N_RATINGS, rating_dim), initializer="uniform", name="rating_table"
                )
                self.rating_kernel = self.add_weight(
                    shape=(rating_dim, 3 * first), initializer="glorot_uniform", name="rating_kernel"
                )
            self.kernels, self.recurrent_kernels, self.biases = [], [], []
            inputs = [self.item_dim, *self.widths[:-1]]
            for i, (n_in, width) in enumerate(zip(inputs, self.widths, strict=True)):
                self.kernels.append(
                    self.add_weight(shape=(n_in, 3 * width), initializer="glorot_uniform", name=f"kernel_{i}")
                    if n_in
                    else None
                )
                self.recurrent_kernels.append(
                    self.add_weight(shape=(width, 3 * width), initializer="orthogonal", name=f"recurrent_{i}")
                )
                self.biases.append(
                    self.add_weight(shape=(2, 3 * width), initializer="zeros", name=f"bias_{i}")
                )
            if not tied_embeddings:
                self.output_table = self.add_weight(
                    shape=(self.n_items, self.widths[-1]), initializer="glorot_uniform", name="output_table"
                )
            self.output_bias = self.add_weight(shape=(self.n_items,), initializer="zeros", name="output_bias")
            self.embedding_drop = keras.layers.Dropout(self.dropout_embedding)
            self.hidden_drop = [keras.layers.Dropout(self.dropout_hidden) for _ in self.widths]
            self.built = True

        def get_config(self):
            return {
                **super().get_config(),
                "n_items": self.n_items,
                "layers": list(self.widths),
                "embedding_dim": self.embedding_dim,
                "rating_dim": self.rating_dim,
                "tied_embeddings": self.tied_embeddings,
                "dropout_embedding": self.dropout_embedding,
                "dropout_hidden": self.dropout_hidden,
            }

        @property
        def item_vectors(self):
            return self.item_table if self.tied_embeddings else self.output_table

        def initial_states(self, batch: int) -> list:
            return [ops.zeros((batch, width)) for width in self.widths]

        def step(self, items, states, ratings=None, training: bool = False):
            """Feed one item per row: returns (output fed to the scorer, new hidden states)."""
            x = self.embedding_drop(_rows(self.item_table, items), training=training)
            new_states = []
            for i, (state, kernel) in enumerate(zip(states, self.kernels, strict=True)):
                gates_x = x if kernel is None else ops.matmul(x, kernel)
                if i == 0 and self.rating_dim and ratings is not None:
                    rating = _rows(self.rating_table, ops.cast(ratings, "int32"))
                    gates_x = gates_x + ops.matmul(rating, self.rating_kernel)
                new_states.append(_gru_cell(gates_x, state, self.recurrent_kernels[i], self.biases[i]))
                x = self.hidden_drop[i](new_states[-1], training=training)
            return x, new_states

        def score_all(self, output):
            """Scores of every item, [batch, n_items]."""
            return ops.matmul(output, ops.transpose(self.item_vectors)) + self.output_bias

        def score_items(self, output, item_ids):
            """Scores of the items ``item_ids`` (shared by the batch), [batch, len(item_ids)]."""
            vectors = _rows(self.item_vectors, item_ids)
            return ops.matmul(output, ops.transpose(vectors)) + _rows(self.output_bias, item_ids)

        def call(self, inputs, training: bool = False):
            """inputs: {"items": [B], "states": [[B, width], ...], optional "ratings": [B]}."""
            output, states = self.step(
                inputs["items"], list(inputs["states"]), inputs.get("ratings"), training=training
            )
            return self.score_all(output), states

    def _rows(table, ids):
        """``table[ids]`` read as a sparse lookup of the variable, never as a whole-table copy.

        Once a TensorFlow variable has been updated sparsely (the optimizer's row updates), every
        dense read copies it; gathering through the variable reads only the rows. Reading the
        one-hot item table densely cost a 4 MB copy per step and halved ranking speed.
        """
        variable = getattr(table, "value", table)
        return tf.gather(variable, ids) if isinstance(variable, tf.Variable) else ops.take(table, ids, axis=0)

    def _gru_cell(gates_x, h, recurrent_kernel, bias):
        """Keras GRUCell (reset_after=True) given the input's gate pre-activations ``x @ kernel``."""
        gates_x = gates_x + bias[0]
        gates_h = ops.matmul(h, recurrent_kernel) + bias[1]
        x_z, x_r, x_h = ops.split(gates_x, 3, axis=-1)
        h_z, h_r, h_h = ops.split(gates_h, 3, axis=-1)
        z = ops.sigmoid(x_z + h_z)
        r = ops.sigmoid(x_r + h_r)
        candidate = ops.tanh(x_h + r * h_h)
        return z * h + (1.0 - z) * candidate

    return GRU4Rec
