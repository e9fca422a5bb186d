"""The shared full-softmax cross-entropy and the networks' target scores it is given."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from sbr_dagster.models import softmax  # noqa: E402
from sbr_dagster.models.gru4rec.config import GRU4RecConfig  # noqa: E402
from sbr_dagster.models.gru4rec.network import build_network as build_gru4rec  # noqa: E402
from sbr_dagster.models.sasrec.network import SASRecNetwork  # noqa: E402


@pytest.mark.parametrize("scale", [1.0, 400.0])  # 400: exp() of a raw logit overflows float32
def test_cross_entropy_and_its_gradient_are_the_softmax_cross_entropys(scale):
    rng = np.random.default_rng(0)
    logits = tf.Variable(rng.normal(size=(7, 11)).astype(np.float32) * scale)
    targets = rng.integers(0, 11, 7)
    upstream = tf.constant(rng.random(7).astype(np.float32))  # a weight per event, as a mean or mask gives
    with tf.GradientTape(persistent=True) as tape:
        target_logits = tf.gather(logits, targets[:, None], axis=1, batch_dims=1)[:, 0]
        ours = tf.reduce_sum(softmax.cross_entropy(logits, target_logits) * upstream)
        reference = tf.reduce_sum(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits) * upstream
        )
    assert np.isfinite(float(ours))
    np.testing.assert_allclose(float(ours), float(reference), rtol=1e-5)
    np.testing.assert_allclose(tape.gradient(ours, logits), tape.gradient(reference, logits), atol=1e-6)


def test_an_excluded_candidate_gets_no_probability_and_no_gradient():
    rng = np.random.default_rng(2)
    logits = tf.Variable(rng.normal(size=(5, 9)).astype(np.float32) * 3)
    targets = np.array([0, 4, 8, 2, 2])
    excluded = rng.random((5, 9)) < 0.4
    excluded[np.arange(5), targets] = False
    with tf.GradientTape(persistent=True) as tape:
        target_logits = tf.gather(logits, targets[:, None], axis=1, batch_dims=1)[:, 0]
        ours = tf.reduce_sum(softmax.cross_entropy(logits, target_logits, tf.constant(excluded)))
        kept = tf.where(excluded, -np.inf, logits)  # the candidates that stay, alone
        reference = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=kept))
    np.testing.assert_allclose(float(ours), float(reference), rtol=1e-5)
    gradient = tape.gradient(ours, logits).numpy()
    assert np.all(gradient[excluded] == 0.0)
    np.testing.assert_allclose(gradient, tape.gradient(reference, logits), atol=1e-6)


def _gru4rec(tied: bool):
    return build_gru4rec(9, GRU4RecConfig(layers=(6,), embedding_dim=6 if tied else 0, tied_embeddings=tied))


@pytest.mark.parametrize(
    "network",
    [
        pytest.param(lambda: SASRecNetwork(9, blocks=1, dim=8, max_len=5), id="sasrec-tied"),
        pytest.param(lambda: SASRecNetwork(9, blocks=1, dim=8, max_len=5, tied=False), id="sasrec-untied"),
        pytest.param(lambda: _gru4rec(False), id="gru4rec"),
        pytest.param(lambda: _gru4rec(True), id="gru4rec-tied"),
    ],
)
def test_a_targets_score_is_its_column_of_every_items_scores(network):
    network = network()
    rng = np.random.default_rng(1)
    width = int(network.item_vectors.shape[1])
    states = tf.constant(rng.normal(size=(6, width)).astype(np.float32))
    if hasattr(network, "output_bias"):
        network.output_bias.assign(rng.normal(size=9).astype(np.float32))
    targets = np.array([0, 8, 3, 3, 5, 1])
    every = np.asarray(network.score_all(states))[np.arange(6), targets]
    np.testing.assert_allclose(network.score_targets(states, targets), every, rtol=1e-5)
