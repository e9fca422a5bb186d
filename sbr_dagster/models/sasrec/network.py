"""The SASRec network as a Keras model: item and position embeddings, causal self-attention blocks.

Each block is pre-layer-norm: x + dropout(attention(norm(x))), then x + dropout(feed_forward(
norm(x))), with a last norm after the stack (Kang & McAuley 2018, as later ports write it). The
attention is written with plain matrix products rather than ``keras.layers.MultiHeadAttention``,
whose einsum plumbing cost a third of each training step on 2 CPU cores. Items are scored through
the item table (tied, the default) or a table of their own.

This module imports TensorFlow: only ``model``'s methods import it, when a network is needed.
"""

from __future__ import annotations

import keras
import tensorflow as tf

NEG = -1e9  # the logit a masked attention weight gets


def build_network(n_items: int, settings: dict) -> SASRecNetwork:
    return SASRecNetwork(n_items=n_items, **settings)


@keras.saving.register_keras_serializable(package="sbr_dagster", name="SASRec")
class SASRecNetwork(keras.Model):
    """Token ids ``[batch, length]`` (``n_items`` is the start token) to states ``[batch, length, dim]``."""

    def __init__(
        self,
        n_items: int,
        blocks: int = 2,
        dim: int = 64,
        heads: int = 1,
        max_len: int = 200,
        dropout: float = 0.2,
        tied: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.n_items, self.blocks, self.dim, self.heads = int(n_items), int(blocks), int(dim), int(heads)
        self.max_len, self.dropout, self.tied = int(max_len), float(dropout), bool(tied)
        self.item_table = self.add_weight(
            shape=(self.n_items + 1, dim), initializer=_normal(), name="item_table"
        )
        self.position_table = self.add_weight(
            shape=(max_len, dim), initializer=_normal(), name="position_table"
        )
        self.layer_weights = []
        for b in range(blocks):
            self.layer_weights.append(
                {
                    "norm_1": self._norm(f"norm_1_{b}"),
                    "qkv": self.add_weight(
                        shape=(dim, 3 * dim), initializer="glorot_uniform", name=f"qkv_{b}"
                    ),
                    "qkv_bias": self.add_weight(shape=(3 * dim,), initializer="zeros", name=f"qkv_bias_{b}"),
                    "out": self.add_weight(shape=(dim, dim), initializer="glorot_uniform", name=f"out_{b}"),
                    "out_bias": self.add_weight(shape=(dim,), initializer="zeros", name=f"out_bias_{b}"),
                    "norm_2": self._norm(f"norm_2_{b}"),
                    "ff_1": self.add_weight(shape=(dim, dim), initializer="glorot_uniform", name=f"ff_1_{b}"),
                    "ff_1_bias": self.add_weight(shape=(dim,), initializer="zeros", name=f"ff_1_bias_{b}"),
                    "ff_2": self.add_weight(shape=(dim, dim), initializer="glorot_uniform", name=f"ff_2_{b}"),
                    "ff_2_bias": self.add_weight(shape=(dim,), initializer="zeros", name=f"ff_2_bias_{b}"),
                }
            )
        self.last_norm = self._norm("last_norm")
        if not tied:
            self.output_table = self.add_weight(
                shape=(self.n_items, dim), initializer=_normal(), name="output_table"
            )
        self.drop = keras.layers.Dropout(self.dropout)
        self.built = True

    def _norm(self, name: str):
        return (
            self.add_weight(shape=(self.dim,), initializer="ones", name=f"{name}_gamma"),
            self.add_weight(shape=(self.dim,), initializer="zeros", name=f"{name}_beta"),
        )

    def get_config(self):
        return {
            **super().get_config(),
            "n_items": self.n_items, "blocks": self.blocks, "dim": self.dim, "heads": self.heads,
            "max_len": self.max_len, "dropout": self.dropout, "tied": self.tied,
        }  # fmt: skip

    @property
    def item_vectors(self):
        """The rows items are scored with (the start token is never a candidate)."""
        return self.item_table[: self.n_items] if self.tied else self.output_table

    def states(self, tokens, training: bool = False):
        """``[batch, length, dim]``: what each token position knows of the tokens up to it."""
        length = tf.shape(tokens)[1]
        x = tf.gather(self.item_table, tokens) * (self.dim**0.5)
        x = self.drop(x + self.position_table[:length][None], training=training)
        causal = tf.linalg.band_part(tf.ones((length, length)), -1, 0)
        bias = (1.0 - causal) * NEG
        for weights in self.layer_weights:
            x = x + self.drop(
                self._attention(_layer_norm(x, *weights["norm_1"]), weights, bias, training),
                training=training,
            )
            h = _layer_norm(x, *weights["norm_2"])
            h = tf.nn.relu(tf.matmul(h, weights["ff_1"]) + weights["ff_1_bias"])
            h = self.drop(h, training=training)
            x = x + self.drop(tf.matmul(h, weights["ff_2"]) + weights["ff_2_bias"], training=training)
        return _layer_norm(x, *self.last_norm)

    def _attention(self, x, weights, bias, training):
        batch, length = tf.shape(x)[0], tf.shape(x)[1]
        head_dim = self.dim // self.heads
        qkv = tf.matmul(x, weights["qkv"]) + weights["qkv_bias"]
        if self.heads == 1:
            q, k, v = tf.split(qkv, 3, axis=-1)
        else:
            qkv = tf.transpose(tf.reshape(qkv, (batch, length, 3, self.heads, head_dim)), (2, 0, 3, 1, 4))
            q, k, v = qkv[0], qkv[1], qkv[2]  # [batch, heads, length, head_dim]
        logits = tf.matmul(q, k, transpose_b=True) * (head_dim**-0.5) + bias
        attended = tf.matmul(self.drop(tf.nn.softmax(logits), training=training), v)
        if self.heads > 1:
            attended = tf.reshape(tf.transpose(attended, (0, 2, 1, 3)), (batch, length, self.dim))
        return tf.matmul(attended, weights["out"]) + weights["out_bias"]

    def score_all(self, states):
        """Scores of every item, ``[n, n_items]``, for states ``[n, dim]``."""
        return tf.matmul(states, self.item_vectors, transpose_b=True)

    def score_targets(self, states, targets):
        """The score of each state's own target, ``[n]``: one dot product per row (read from the table
        itself, not from ``item_vectors``' slice, whose gradient would be a dense copy)."""
        table = self.item_table if self.tied else self.output_table
        return tf.reduce_sum(states * tf.gather(table, targets), axis=-1)

    def call(self, tokens, training: bool = False):
        return self.states(tokens, training=training)


def _normal():
    """A fresh initializer per table: a Keras 3 initializer draws its seed once, so one instance
    shared by the item, position and output tables gave them the same rows."""
    return keras.initializers.TruncatedNormal(stddev=0.02)


def _layer_norm(x, gamma, beta, epsilon: float = 1e-6):
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    return (x - mean) * tf.math.rsqrt(variance + epsilon) * gamma + beta
