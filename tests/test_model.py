"""The GRU4Rec network: Keras GRUCell math, one-hot input as a lookup, ratings, config checks."""

from __future__ import annotations

import numpy as np
import pytest

from sbr_dagster.models.gru4rec.config import GRU4RecConfig

keras = pytest.importorskip("keras")
build_model = pytest.importorskip("sbr_dagster.models.gru4rec.network").build_network


def random_biases(model, seed=0):
    rng = np.random.default_rng(seed)
    for bias in model.biases:
        bias.assign(rng.normal(size=bias.shape).astype("float32"))


def test_step_is_keras_gru_cell_math():
    model = build_model(20, GRU4RecConfig(layers=(6,), embedding_dim=5), seed=1)
    random_biases(model)
    cell = keras.layers.GRUCell(6)  # defaults: reset_after=True, sigmoid / tanh
    cell.build((None, 5))
    cell.kernel.assign(model.kernels[0])
    cell.recurrent_kernel.assign(model.recurrent_kernels[0])
    cell.bias.assign(model.biases[0])
    items = np.array([1, 4, 7, 19], dtype=np.int32)
    state = np.random.default_rng(1).normal(size=(4, 6)).astype("float32")
    output, states = model.step(items, [state])
    expected, _ = cell(keras.ops.take(model.item_table, items, axis=0), [state])
    np.testing.assert_allclose(np.asarray(output), np.asarray(expected), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(states[0]), np.asarray(expected), rtol=1e-5, atol=1e-6)


def test_one_hot_input_is_a_lookup_of_the_first_kernel():
    n_items = 12
    model = build_model(n_items, GRU4RecConfig(layers=(4,)), seed=2)
    random_biases(model)
    assert tuple(model.item_table.shape) == (n_items, 3 * 4)
    cell = keras.layers.GRUCell(4)
    cell.build((None, n_items))
    cell.kernel.assign(model.item_table)
    cell.recurrent_kernel.assign(model.recurrent_kernels[0])
    cell.bias.assign(model.biases[0])
    items = np.array([0, 5, 11], dtype=np.int32)
    state = np.random.default_rng(2).normal(size=(3, 4)).astype("float32")
    output, _ = model.step(items, [state])
    expected, _ = cell(np.eye(n_items, dtype="float32")[items], [state])
    np.testing.assert_allclose(np.asarray(output), np.asarray(expected), rtol=1e-5, atol=1e-6)


def test_stacked_layers_and_scores_have_the_right_shapes():
    model = build_model(30, GRU4RecConfig(layers=(8, 5), embedding_dim=6), seed=0)
    scores, states = model({"items": np.array([1, 2, 3]), "states": model.initial_states(3)})
    assert tuple(scores.shape) == (3, 30)
    assert [tuple(s.shape) for s in states] == [(3, 8), (3, 5)]
    output, _ = model.step(np.array([1, 2, 3]), model.initial_states(3))
    picked = model.score_items(output, np.array([4, 0, 29]))
    np.testing.assert_allclose(np.asarray(picked), np.asarray(scores)[:, [4, 0, 29]], rtol=1e-5, atol=1e-6)


def test_tied_embeddings_score_with_the_input_table():
    model = build_model(10, GRU4RecConfig(layers=(4,), tied_embeddings=True), seed=0)
    assert tuple(model.item_table.shape) == (10, 4)
    assert not hasattr(model, "output_table")
    output, _ = model.step(np.array([3]), model.initial_states(1))
    expected = np.asarray(output) @ np.asarray(model.item_table).T + np.asarray(model.output_bias)
    np.testing.assert_allclose(np.asarray(model.score_all(output)), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("embedding_dim", [0, 4])
def test_ratings_change_the_state_only_when_enabled(embedding_dim):
    items = np.array([2, 2], dtype=np.int32)
    ratings = np.array([1, 5], dtype=np.int8)
    config = GRU4RecConfig(layers=(4,), embedding_dim=embedding_dim, rating_dim=3)
    with_ratings = build_model(6, config, seed=0)
    out, _ = with_ratings.step(items, with_ratings.initial_states(2), ratings)
    assert not np.allclose(np.asarray(out)[0], np.asarray(out)[1])
    without = build_model(6, GRU4RecConfig(layers=(4,), embedding_dim=embedding_dim), seed=0)
    out, _ = without.step(items, without.initial_states(2), ratings)
    np.testing.assert_array_equal(np.asarray(out)[0], np.asarray(out)[1])


def test_same_seed_same_initial_weights():
    a = build_model(15, GRU4RecConfig(layers=(6,)), seed=4).get_weights()
    b = build_model(15, GRU4RecConfig(layers=(6,)), seed=4).get_weights()
    c = build_model(15, GRU4RecConfig(layers=(6,)), seed=5).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_config_rejects_inconsistent_settings():
    with pytest.raises(ValueError, match="tied_embeddings"):
        GRU4RecConfig(layers=(8,), embedding_dim=4, tied_embeddings=True)
    with pytest.raises(ValueError, match="loss"):
        GRU4RecConfig(loss="hinge")
    with pytest.raises(ValueError, match="unknown GRU4RecConfig settings"):
        GRU4RecConfig.from_dict({"hidden": 100})
    config = GRU4RecConfig.from_dict({"layers": [32, 16], "learning_rate": 0.01})
    assert config.layers == (32, 16)
    assert GRU4RecConfig.from_dict(config.to_dict()) == config
