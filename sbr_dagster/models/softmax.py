"""Full-softmax cross-entropy, the loss of the trained models (GRU4Rec, SASRec), in fewer passes.

The output layer is most of a training step, and most of its cost is not the matrix product but
the passes over the ``[events, items]`` logits around it. Three of them are avoidable:

- taking the target's logit out of the logits matrix (a gather) makes its gradient a dense
  ``[events, items]`` scatter: the caller computes it as one dot product per event instead;
- TensorFlow's gradient of ``reduce_logsumexp`` broadcasts and recomputes what the forward pass had:
  here the gradient is the kept ``exp`` times one factor per row (the softmax);
- candidates left out of the softmax (``excluded``) are masked inside, so their zero gradient needs
  no select of its own.

TF's fused ``sparse_softmax_cross_entropy_with_logits`` is single-threaded and was slower still.
This module imports TensorFlow: the trainers import it when training starts.
"""

from __future__ import annotations

import tensorflow as tf

EXCLUDED_LOGIT = -1e9  # a candidate left out of the softmax: exp() of it is 0 next to any real logit


def _log_sum_exp_and_gradient(logits):
    top = tf.stop_gradient(tf.reduce_max(logits, axis=1, keepdims=True))
    exps = tf.exp(logits - top)
    total = tf.reduce_sum(exps, axis=1, keepdims=True)

    def gradient(upstream):
        return exps * (upstream[:, None] / total)  # the softmax, scaled per row (0 where excluded)

    return (top + tf.math.log(total))[:, 0], gradient


@tf.custom_gradient
def log_sum_exp(logits):
    """``log(sum(exp(logits)))`` per row, stable (the row's maximum is taken out first)."""
    return _log_sum_exp_and_gradient(logits)


@tf.custom_gradient
def _log_sum_exp_without(logits, excluded):
    value, gradient = _log_sum_exp_and_gradient(tf.where(excluded, EXCLUDED_LOGIT, logits))
    return value, lambda upstream: (gradient(upstream), None)


def cross_entropy(logits, target_logits, excluded=None):
    """Per event: ``-log softmax(logits)[target]``, given the target's logit computed apart; with
    ``excluded`` (booleans like ``logits``, never at the target) those candidates leave the softmax."""
    total = log_sum_exp(logits) if excluded is None else _log_sum_exp_without(logits, excluded)
    return total - target_logits
