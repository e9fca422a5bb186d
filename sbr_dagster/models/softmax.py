"""Full-softmax cross-entropy, the loss of the trained models (GRU4Rec, SASRec), in fewer passes.

The output layer is most of a training step, and most of its cost is not the matrix product but
the passes over the ``[events, items]`` logits around it. Two of them are avoidable:

- taking the target's logit out of the logits matrix (a gather) makes its gradient a dense
  ``[events, items]`` scatter: the caller computes it as one dot product per event instead;
- TensorFlow's gradient of ``reduce_logsumexp`` broadcasts and recomputes what the forward pass had:
  here the gradient is the kept ``exp`` times one factor per row (the softmax).

TF's fused ``sparse_softmax_cross_entropy_with_logits`` is single-threaded and was slower still.
This module imports TensorFlow: the trainers import it when training starts.
"""

from __future__ import annotations

import tensorflow as tf


@tf.custom_gradient
def log_sum_exp(logits):
    """``log(sum(exp(logits)))`` per row, stable (the row's maximum is taken out first)."""
    top = tf.stop_gradient(tf.reduce_max(logits, axis=1, keepdims=True))
    exps = tf.exp(logits - top)
    total = tf.reduce_sum(exps, axis=1, keepdims=True)

    def gradient(upstream):
        return exps * (upstream[:, None] / total)  # the softmax, scaled per row

    return (top + tf.math.log(total))[:, 0], gradient


def cross_entropy(logits, target_logits):
    """Per event: ``-log softmax(logits)[target]``, given the target's logit computed apart."""
    return log_sum_exp(logits) - target_logits
