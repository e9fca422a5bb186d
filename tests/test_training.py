"""GRU4Rec training and inference: ranks match a step-by-step reference, learning, determinism, save/load.

The epoch policy (validation, best epoch, patience) is ``training.trainer``'s, exercised here
through GRU4Rec as the pipeline runs it.
"""

from __future__ import annotations

import numpy as np
import pytest

from sbr_dagster.data import gaps
from sbr_dagster.data.arrays import Sessions
from sbr_dagster.evaluation import metrics
from sbr_dagster.models.base import SessionModel
from sbr_dagster.models.gru4rec.config import GRU4RecConfig
from sbr_dagster.models.gru4rec.model import GRU4Rec
from sbr_dagster.models.ranking import target_ranks
from sbr_dagster.training import trainer

inference = pytest.importorskip("sbr_dagster.models.gru4rec.inference")
build_model = pytest.importorskip("sbr_dagster.models.gru4rec.network").build_network

QUIET = {"log": lambda _: None}


def as_sessions(items, offsets, ratings=None) -> Sessions:
    ratings = np.zeros(len(items), np.int8) if ratings is None else np.asarray(ratings, np.int8)
    return Sessions(np.asarray(items, np.int32), np.asarray(offsets, np.int64), ratings)


def rank_sessions(network, items, offsets, *, batch_size=512, ratings=None):
    """Ranks as the model ranks untimed sessions: gap buckets of one sitting, when the network reads them."""
    sessions = as_sessions(items, offsets, ratings)
    return inference.rank_sessions(
        network, sessions, ratings=None if ratings is None else sessions.ratings,
        gaps=gaps.session_gaps(sessions) if network.gap_dim else None, batch_size=batch_size,
    )  # fmt: skip


def score_histories(network, histories, ratings=None):
    sessions = Sessions.of_histories(histories, ratings)
    return inference.score_histories(
        network, sessions, ratings=None if ratings is None else sessions.ratings,
        gaps=gaps.session_gaps(sessions) if network.gap_dim else None,
        next_gaps=gaps.next_gaps(sessions) if network.gap_dim else None,
    )  # fmt: skip


def fit_gru(items, offsets, n_items, config, *, valid=None, train_ratings=None, log=None):
    """A GRU4Rec fitted by the trainer, as the pipeline fits one; ``.model`` is its network."""
    model = GRU4Rec(config)
    valid_sessions = None if valid is None else as_sessions(*valid)
    result = trainer.fit(model, as_sessions(items, offsets, train_ratings), n_items, valid_sessions, **QUIET)
    result.model = model.network
    return result


def random_sessions(n_sessions, n_items, seed, min_len=2, max_len=9):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, max_len + 1, n_sessions)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return rng.integers(0, n_items, offsets[-1]).astype(np.int32), offsets


def cycle_sessions(n_sessions, n_items, seed):
    """Sessions walking the items in a cycle: the next item is always (item + 1) % n_items."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 12, n_sessions)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    starts = np.repeat(rng.integers(0, n_items, n_sessions), lengths)
    within = np.arange(offsets[-1]) - np.repeat(offsets[:-1], lengths)
    return ((starts + within) % n_items).astype(np.int32), offsets


def reference_ranks(model, items, offsets, ratings=None):
    """Ranks computed one session and one event at a time, eagerly, from the model's scores."""
    sitting = gaps.session_gaps(as_sessions(items, offsets)) if model.gap_dim else None
    ranks = []
    for s in range(len(offsets) - 1):
        states = model.initial_states(1)
        for e in range(offsets[s], offsets[s + 1] - 1):
            rating = None if ratings is None else ratings[e : e + 1]
            fed, next_gap = (None, None) if sitting is None else (sitting[e : e + 1], sitting[e + 1 : e + 2])
            output, states = model.step(items[e : e + 1], states, rating, fed)
            scores = np.asarray(model.score_all(model.before_target(output, next_gap)))
            ranks.append(target_ranks(scores, items[e + 1 : e + 2])[0])
    return np.array(ranks)


@pytest.mark.parametrize("batch_size", [1, 3, 512])
def test_rank_sessions_matches_a_step_by_step_reference(batch_size):
    items, offsets = random_sessions(13, 17, seed=0)
    model = build_model(17, GRU4RecConfig(layers=(8,)), seed=0)
    ranks = rank_sessions(model, items, offsets, batch_size=batch_size)
    assert ranks.dtype == np.int64 and len(ranks) == len(items) - 13
    np.testing.assert_array_equal(ranks, reference_ranks(model, items, offsets))


def test_rank_sessions_counts_ties_against_the_model():
    items, offsets = random_sessions(6, 9, seed=1)
    model = build_model(9, GRU4RecConfig(layers=(4,)), seed=1)
    # Every item scores the same: each target ties with all items, so its rank is n_items.
    model.output_table.assign(np.zeros(model.output_table.shape, dtype="float32"))
    np.testing.assert_array_equal(rank_sessions(model, items, offsets), np.full(len(items) - 6, 9))
    # Items 0 and 1 tie: a target 0 or 1 ranks 2 when they are on top, the others rank 3 or more.
    bias = np.array([5, 5, 1, 0, 0, 0, 0, 0, -1], dtype="float32")
    model.output_bias.assign(bias)
    ranks = rank_sessions(model, items, offsets, batch_size=2)
    targets = np.concatenate([items[offsets[s] + 1 : offsets[s + 1]] for s in range(6)])
    expected = target_ranks(np.tile(bias, (len(targets), 1)), targets)
    np.testing.assert_array_equal(ranks, expected)
    assert set(ranks[np.isin(targets, [0, 1])]) <= {2}
    np.testing.assert_array_equal(ranks, reference_ranks(model, items, offsets))


def test_rank_sessions_with_ratings_matches_reference():
    items, offsets = random_sessions(7, 11, seed=2)
    ratings = np.random.default_rng(2).integers(1, 6, len(items)).astype(np.int8)
    model = build_model(11, GRU4RecConfig(layers=(6,), rating_dim=2), seed=2)
    ranks = rank_sessions(model, items, offsets, batch_size=3, ratings=ratings)
    np.testing.assert_array_equal(ranks, reference_ranks(model, items, offsets, ratings))


def test_score_histories_continue_from_a_zero_state():
    items, offsets = random_sessions(4, 10, seed=3)
    model = build_model(10, GRU4RecConfig(layers=(5, 3), embedding_dim=4), seed=3)
    histories = [items[offsets[s] : offsets[s + 1]] for s in range(4)] + [np.array([], dtype=np.int32)]
    model.gap_output.assign(np.random.default_rng(3).normal(size=model.gap_output.shape).astype("float32"))
    scores = score_histories(model, histories)
    assert scores.shape == (5, 10)
    for history, row in zip(histories, scores, strict=True):
        states = model.initial_states(1)
        output = states[-1]
        for i, item in enumerate(history):  # one sitting: the first event opens it
            output, states = model.step(np.array([item]), states, None, np.array([min(i, gaps.SAME_SITTING)]))
        following = np.array([gaps.SAME_SITTING if len(history) else 0])
        expected = model.score_all(model.before_target(output, following))
        np.testing.assert_allclose(row, np.asarray(expected)[0], rtol=1e-5, atol=1e-5)


def test_learns_a_deterministic_next_item():
    items, offsets = cycle_sessions(150, 12, seed=4)
    valid = cycle_sessions(20, 12, seed=5)
    config = GRU4RecConfig(layers=(16,), batch_size=16, epochs=6, learning_rate=0.02, seed=0)
    fit = fit_gru(items, offsets, 12, config, valid=valid, **QUIET)
    ranks = rank_sessions(fit.model, *valid)
    assert metrics.recall_at(ranks, 1) > 0.9
    np.testing.assert_array_equal(ranks, reference_ranks(fit.model, *valid))  # after sparse updates too
    assert fit.history[-1]["loss"] < fit.history[0]["loss"]
    columns = {"epoch", "loss", "events_per_s", "seconds", "valid_recall_20", "valid_mrr_20"}
    assert columns <= set(fit.history[0])
    assert fit.device == "CPU" or fit.device.startswith("GPU:0")


def test_same_seed_same_history_and_weights():
    items, offsets = random_sessions(40, 15, seed=6)
    config = GRU4RecConfig(layers=(8,), batch_size=8, epochs=2, dropout_hidden=0.2, seed=3)
    runs = [fit_gru(items, offsets, 15, config, valid=(items, offsets), **QUIET) for _ in range(2)]
    timeless = [
        [{k: v for k, v in row.items() if k not in ("seconds", "events_per_s")} for row in run.history]
        for run in runs
    ]
    assert timeless[0] == timeless[1]
    for a, b in zip(runs[0].model.get_weights(), runs[1].model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    other = fit_gru(items, offsets, 15, GRU4RecConfig(**{**config.to_dict(), "seed": 4}), **QUIET)
    assert other.history[0]["loss"] != runs[0].history[0]["loss"]


def test_best_epoch_is_restored_and_patience_stops_training():
    items, offsets = random_sessions(30, 10, seed=7)
    # A zero learning rate never improves validation: the first epoch stays best.
    config = GRU4RecConfig(layers=(4,), batch_size=4, epochs=10, patience=2, learning_rate=0.0)
    fit = fit_gru(items, offsets, 10, config, valid=(items, offsets), **QUIET)
    assert fit.best_epoch == 1 and fit.stopped_early and len(fit.history) == 3


class ScriptedModel(SessionModel):
    """Validation Recall@20 follows a script, one value per epoch, on 10,000 targets."""

    name = "scripted"
    config_class = GRU4RecConfig  # for its epochs and patience

    def __init__(self, recalls, patience):
        super().__init__(GRU4RecConfig(epochs=len(recalls), patience=patience))
        self.recalls, self.epoch = recalls, 0

    def rank(self, sessions):
        raise NotImplementedError

    def score_next(self, histories):
        raise NotImplementedError

    def replay_scores(self, stream):
        raise NotImplementedError

    def fit(self, train, n_items, *, after_epoch=None, log=print):
        for epoch in range(1, len(self.recalls) + 1):
            self.epoch = epoch
            row = {"epoch": epoch, "loss": 1.0, "events": 1, "events_per_s": 1.0, "seconds": 1.0}
            if after_epoch(row).stop:
                break

    def rank_replay(self, stream):
        hits = round(self.recalls[self.epoch - 1] * 10_000)
        ranks = np.where(np.arange(10_000) < hits, 1, 100)
        return ranks, ranks

    def snapshot(self):
        return self.epoch

    def restore(self, snapshot):
        self.epoch = snapshot


def test_an_epoch_is_better_only_by_more_than_min_delta():
    assert trainer.MIN_DELTA == 0.0005
    assert trainer.better((0.3006, 0.0), (0.3, 0.1)) and not trainer.better((0.3004, 0.2), (0.3, 0.1))
    assert trainer.better((1.0, 0.5), (1.0, 0.4)) and not trainer.better((1.0, 0.4004), (1.0, 0.4))
    # +0.0004 is not better; +0.0010 is; then +0.0002 and +0.0003 over it are not: stop at 5, keep 3.
    model = ScriptedModel([0.3000, 0.3004, 0.3010, 0.3012, 0.3013, 0.3100], patience=2)
    fit = trainer.fit(model, as_sessions([0, 1], [0, 2]), 2, as_sessions([0, 1], [0, 2]), **QUIET)
    assert fit.best_epoch == 3 and len(fit.history) == 5 and fit.stopped_early
    assert model.epoch == 3  # the best epoch's state is restored


@pytest.mark.parametrize(
    ("n_events", "settings", "batch"),
    [
        (800_000, {}, 128),  # ML-1M's train events: the width tuned there
        (80_000, {}, 32),  # a 10% sample of its users: 1,000 updates an epoch
        (10_000, {}, 16),  # never below 16
        (80_000, {"bptt_steps": 1}, 64),  # one step per update: twice the width for as many updates
        (80_000, {"batch_size": 100}, 100),  # a batch that is set is kept
    ],
)
def test_the_batch_follows_the_train_events_unless_set(n_events, settings, batch):
    assert GRU4RecConfig(**settings).batch_for(n_events) == batch


def test_the_chosen_batch_is_the_one_trained_with():
    items, offsets = random_sessions(40, 10, seed=3)
    fit = fit_gru(items, offsets, 10, GRU4RecConfig(layers=(4,), epochs=1), **QUIET)
    assert fit.history[0]["batch_size"] == 16
    with pytest.raises(ValueError, match="batch_size"):
        GRU4RecConfig(batch_size=-1)


@pytest.mark.parametrize("schedule", ["plateau", "epoch"])
def test_learning_rate_decays_on_plateaus_or_every_epoch(schedule):
    items, offsets = cycle_sessions(150, 60, seed=4)
    valid = cycle_sessions(20, 60, seed=5)
    config = GRU4RecConfig(
        layers=(8,), batch_size=8, epochs=8, patience=8, learning_rate=0.02, lr_decay=0.5,
        lr_schedule=schedule,
    )  # fmt: skip
    fit = fit_gru(items, offsets, 60, config, valid=valid, **QUIET)
    rates = [row["learning_rate"] for row in fit.history]
    improved, best = [], None  # the trainer's rule: better than the best by more than MIN_DELTA
    for row in fit.history:
        key = (row["valid_recall_20"], row["valid_mrr_20"])
        improved.append(best is None or trainer.better(key, best))
        best = key if improved[-1] else best
    assert len(rates) == 8 and rates[0] == 0.02
    for i in range(1, len(rates)):
        decays = schedule == "epoch" or not improved[i - 1]
        assert rates[i] == pytest.approx(rates[i - 1] * (0.5 if decays else 1.0))
    if schedule == "plateau":  # both kinds of epoch happen, so the test tells the schedules apart
        assert any(improved[1:-1]) and not all(improved[:-1])


@pytest.mark.parametrize(
    "settings",
    [
        {"loss": "bpr_max", "n_negatives": 8, "exclude_seen": False},
        {"optimizer": "adagrad", "learning_rate": 0.05, "momentum": 0.5},
        {
            "loss": "bpr_max",
            "n_negatives": 8,
            "exclude_seen": False,
            "tied_embeddings": True,
            "embedding_dim": 0,
        },
        {"bptt_steps": 1},
        {"bptt_steps": 5, "layers": (16, 8), "embedding_dim": 6},
    ],
)
def test_losses_optimizers_and_bptt_windows_decrease_the_loss(settings):
    items, offsets = cycle_sessions(120, 12, seed=8)
    defaults = {"layers": (16,), "batch_size": 16, "epochs": 4, "learning_rate": 0.02}
    config = GRU4RecConfig(**{**defaults, **settings})
    fit = fit_gru(items, offsets, 12, config, **QUIET)
    losses = [row["loss"] for row in fit.history]
    assert all(np.isfinite(losses)) and losses[-1] < 0.8 * losses[0]


def test_fit_uses_ratings_when_enabled():
    items, offsets = random_sessions(30, 10, seed=9)
    ratings = np.random.default_rng(9).integers(1, 6, len(items)).astype(np.int8)
    config = GRU4RecConfig(layers=(4,), rating_dim=2, batch_size=4, epochs=1)
    with_ratings = fit_gru(items, offsets, 10, config, train_ratings=ratings, **QUIET)
    flat = fit_gru(items, offsets, 10, config, train_ratings=np.full_like(ratings, 3), **QUIET)
    assert with_ratings.history[0]["loss"] != flat.history[0]["loss"]


def test_save_and_load_give_the_same_scores(tmp_path):
    items, offsets = random_sessions(5, 8, seed=10)
    ratings = np.random.default_rng(10).integers(1, 6, len(items)).astype(np.int8)
    config = GRU4RecConfig(layers=(6, 4), rating_dim=2, dropout_hidden=0.3)
    model = GRU4Rec(config, build_model(8, config, seed=10))
    model.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]
    loaded = GRU4Rec.load(tmp_path, config)
    sessions = as_sessions(items, offsets, ratings)
    np.testing.assert_array_equal(loaded.rank(sessions), model.rank(sessions))
    histories = Sessions.of_histories([items[:4], items[4:6]], [ratings[:4], ratings[4:6]])
    np.testing.assert_allclose(loaded.score_next(histories), model.score_next(histories))


def cross_entropy(model, items, offsets, exclude_seen):
    """Mean softmax cross-entropy of every next event, one session and one event at a time; with
    ``exclude_seen`` the session's earlier movies (never the target) are left out of the softmax."""
    losses = []
    for s in range(len(offsets) - 1):
        states = model.initial_states(1)
        for e in range(offsets[s], offsets[s + 1] - 1):
            output, states = model.step(items[e : e + 1], states)
            logits = np.asarray(model.score_all(output), dtype=np.float64)[0]
            target = items[e + 1]
            if exclude_seen:
                logits[np.setdiff1d(items[offsets[s] : e + 1], [target])] = -np.inf
            top = logits.max()
            losses.append(top + np.log(np.exp(logits - top).sum()) - logits[target])
    return float(np.mean(losses))


@pytest.mark.parametrize("exclude_seen", [False, True])
def test_exclude_seen_leaves_the_sessions_earlier_movies_out_of_the_training_softmax(exclude_seen):
    items, offsets = random_sessions(30, 6, seed=12, min_len=4, max_len=12)  # movies repeat
    config = GRU4RecConfig(
        layers=(5,), gap_dim=0, dropout_hidden=0.0, batch_size=4, epochs=1, learning_rate=0.0,
        exclude_seen=exclude_seen,
    )  # fmt: skip
    fit = fit_gru(items, offsets, 6, config, **QUIET)  # a zero rate: the loss of the initial weights
    expected = cross_entropy(fit.model, items, offsets, exclude_seen)
    assert fit.history[0]["loss"] == pytest.approx(expected, rel=1e-5)
    other = cross_entropy(fit.model, items, offsets, not exclude_seen)
    assert abs(other - expected) > 0.05  # the two losses are told apart on this data


def test_exclude_seen_needs_the_full_softmax():
    with pytest.raises(ValueError, match="exclude_seen works with loss 'cross_entropy' only"):
        GRU4RecConfig(loss="bpr_max", exclude_seen=True)


@pytest.mark.parametrize("batch_size", [2, 512])
def test_rank_sessions_excluding_seen_movies_ranks_them_last_across_chunks(batch_size, monkeypatch):
    monkeypatch.setattr(inference, "EVAL_CELLS", 6)  # many chunks: each slot's movies carried across
    items, offsets = random_sessions(9, 6, seed=13, min_len=4, max_len=10)  # movies repeat
    model = build_model(6, GRU4RecConfig(layers=(5,), gap_dim=0), seed=13)
    sessions = as_sessions(items, offsets)
    ranks = inference.rank_sessions(model, sessions, exclude_seen=True, batch_size=batch_size)
    expected = []
    for s in range(len(offsets) - 1):
        states = model.initial_states(1)
        for e in range(offsets[s], offsets[s + 1] - 1):
            output, states = model.step(items[e : e + 1], states)
            scores = np.asarray(model.score_all(output)).copy()
            scores[0, items[offsets[s] : e + 1]] = -np.inf  # a repeated target too: ruled out
            expected.append(target_ranks(scores, items[e + 1 : e + 2])[0])
    np.testing.assert_array_equal(ranks, expected)
    assert (ranks == 6).sum() > (rank_sessions(model, items, offsets) == 6).sum()  # repeats ranked last


def test_exclude_seen_warns_when_sessions_repeat_movies():
    items, offsets = np.array([0, 1, 0, 2, 3, 1], np.int32), np.array([0, 3, 6])
    sessions = Sessions(items, offsets, np.full(6, 4, np.int8))
    assert sessions.repeats() == 1  # movie 1 in two sessions is no repeat
    assert Sessions(items[3:], np.array([0, 3]), np.full(3, 4, np.int8)).repeats() == 0
    for exclude_seen, warned in ((True, True), (False, False)):
        lines: list[str] = []
        config = GRU4RecConfig(layers=(4,), batch_size=2, epochs=1, exclude_seen=exclude_seen)
        GRU4Rec(config).fit(sessions, 4, log=lines.append)
        found = [line for line in lines if "repeat a movie of their session" in line]
        assert bool(found) is warned, lines
        assert not found or found[0].startswith("warning: 1 train events repeat")
