"""The GRU4Rec network as a Keras model: one recurrent step at a time over item (and rating) input.

Session-parallel training (``batching``) advances every session by one event per update, so the
network is written as a single step: (item of each slot, hidden states) -> (output, new states).
The recurrence is Keras ``GRUCell`` math (``reset_after=True``, sigmoid/tanh), with one twist: in
one-hot mode (``embedding_dim=0``, GRU4Rec's default) the first layer's input kernel is stored as
an item table and looked up, since multiplying a one-hot row by a kernel is a row lookup.
cuDNN would only pay off over long time loops, which one-step truncated BPTT never runs.

This module imports TensorFlow: only ``model``'s methods import it, when a network is needed.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from sbr_dagster.data.gaps import N_GAPS
from sbr_dagster.models.gru4rec.config import N_RATINGS, GRU4RecConfig


def build_network(n_items: int, config: GRU4RecConfig, *, seed: int | None = None) -> GRU4RecNetwork:
    """A built network for ``n_items`` items (weights initialised from ``seed``)."""
    if seed is not None:
        keras.utils.set_random_seed(seed)
    return GRU4RecNetwork(n_items=n_items, **config.network())


# Registered under its first name, so bundles saved before the rename still load.
@keras.saving.register_keras_serializable(package="sbr_dagster", name="GRU4Rec")
class GRU4RecNetwork(keras.Model):
    """One step of a stack of GRU layers over item (and optional rating) input, scoring all items."""

    def __init__(
        self,
        n_items: int,
        layers=(100,),
        embedding_dim: int = 0,
        rating_dim: int = 0,
        gap_dim: int = 0,
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
        self.gap_dim = int(gap_dim)
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
        if gap_dim:
            # The gap before an input event joins its gates; the gap before a target shifts the output
            # it is scored from (zero at first: no gap changes anything until training says so).
            self.gap_table = self.add_weight(shape=(N_GAPS, gap_dim), initializer="uniform", name="gap_table")
            self.gap_kernel = self.add_weight(
                shape=(gap_dim, 3 * first), initializer="glorot_uniform", name="gap_kernel"
            )
            self.gap_output = self.add_weight(
                shape=(N_GAPS, self.widths[-1]), initializer="zeros", name="gap_output"
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
            self.biases.append(self.add_weight(shape=(2, 3 * width), initializer="zeros", name=f"bias_{i}"))
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
            "gap_dim": self.gap_dim,
            "tied_embeddings": self.tied_embeddings,
            "dropout_embedding": self.dropout_embedding,
            "dropout_hidden": self.dropout_hidden,
        }

    @property
    def item_vectors(self):
        return self.item_table if self.tied_embeddings else self.output_table

    def initial_states(self, batch: int) -> list:
        return [ops.zeros((batch, width)) for width in self.widths]

    def initial_seen(self, batch: int, exclude_seen: bool) -> np.ndarray:
        """No movie seen yet in any slot (``remember``); ``[batch, 0]`` when nothing is excluded."""
        return np.zeros((batch, self.n_items if exclude_seen else 0), dtype=bool)

    def step(self, items, states, ratings=None, gaps=None, training: bool = False):
        """Feed one item per row (with its rating and gap bucket, where the network reads them):
        returns (output fed to the scorer, new hidden states)."""
        x = self.embedding_drop(_rows(self.item_table, items), training=training)
        new_states = []
        for i, (state, kernel) in enumerate(zip(states, self.kernels, strict=True)):
            gates_x = x if kernel is None else ops.matmul(x, kernel)
            if i == 0 and self.rating_dim and ratings is not None:
                rating = _rows(self.rating_table, ops.cast(ratings, "int32"))
                gates_x = gates_x + ops.matmul(rating, self.rating_kernel)
            if i == 0 and self.gap_dim and gaps is not None:
                gap = _rows(self.gap_table, ops.cast(gaps, "int32"))
                gates_x = gates_x + ops.matmul(gap, self.gap_kernel)
            new_states.append(_gru_cell(gates_x, state, self.recurrent_kernels[i], self.biases[i]))
            x = self.hidden_drop[i](new_states[-1], training=training)
        return x, new_states

    def before_target(self, output, gaps):
        """The output a target is scored from, knowing the gap bucket before it (as is, without gaps)."""
        if not self.gap_dim or gaps is None:
            return output
        return output + _rows(self.gap_output, ops.cast(gaps, "int32"))

    def score_all(self, output):
        """Scores of every item, [batch, n_items]."""
        return ops.matmul(output, ops.transpose(self.item_vectors)) + self.output_bias

    def score_targets(self, output, targets):
        """The score of each row's own target, ``[batch]``: one dot product per row."""
        vectors = _rows(self.item_vectors, targets)
        return ops.sum(output * vectors, axis=-1) + _rows(self.output_bias, targets)

    def score_items(self, output, item_ids):
        """Scores of the items ``item_ids`` (shared by the batch), [batch, len(item_ids)]."""
        vectors = _rows(self.item_vectors, item_ids)
        return ops.matmul(output, ops.transpose(vectors)) + _rows(self.output_bias, item_ids)

    def advance(self, items, states, reset, ratings, gaps=None, training: bool = False):
        """One step for every slot, each hidden state zeroed first where ``reset`` starts a session."""
        keep = tf.cast(~reset, tf.float32)[:, None]
        return self.step(items, [h * keep for h in states], ratings, gaps, training=training)

    def chunk_signature(self):
        """``tf.function`` specs of a chunk: [steps, slots] int cells, bool flags, and the states."""
        cells = tf.TensorSpec([None, None], tf.int32)
        flags = tf.TensorSpec([None, None], tf.bool)
        states = [tf.TensorSpec([None, width], tf.float32) for width in self.widths]
        return cells, flags, states

    def call(self, inputs, training: bool = False):
        """inputs: {"items": [B], "states": [[B, width], ...], optional "ratings", "gaps" (of the
        fed items) and "target_gaps" (of what comes next): [B]}."""
        output, states = self.step(
            inputs["items"], list(inputs["states"]), inputs.get("ratings"), inputs.get("gaps"),
            training=training,
        )  # fmt: skip
        return self.score_all(self.before_target(output, inputs.get("target_gaps"))), states


def remember(seen, items, reset):
    """Each slot's movies of its session (``[slots, n_items]`` booleans) after feeding ``items``:
    forgotten where ``reset`` starts a session. What ``exclude_seen`` leaves out, in the graph."""
    return set_per_row(seen & ~reset[:, None], items, True)


def set_per_row(mask, columns, value: bool):
    """``mask`` with ``mask[i, columns[i]] = value`` for every row i: one write per row, in place,
    instead of comparing every column with ``columns``."""
    at = tf.stack([tf.range(tf.shape(columns)[0]), columns], axis=1)
    return tf.tensor_scatter_nd_update(mask, at, tf.fill(tf.shape(columns), value))


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
