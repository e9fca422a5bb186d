"""Every model of the registry keeps the interface's promises, so evaluation and serving need no branches."""

from __future__ import annotations

import numpy as np
import pytest
import replays

from sbr_dagster.data import timeline
from sbr_dagster.data.arrays import Sessions, prediction_index
from sbr_dagster.models import registry
from sbr_dagster.models.ranking import replay_ranks, target_ranks
from sbr_dagster.training import trainer

N_ITEMS = 9
SMALL = {
    "gru4rec": {"layers": [8], "batch_size": 4, "epochs": 2, "learning_rate": 0.02},
    # max_len below the longest sessions, so contexts are capped and windows move by context_step.
    "sasrec": {
        "blocks": 1,
        "dim": 8,
        "max_len": 5,
        "context_step": 2,
        "batch_size": 8,
        "epochs": 2,
        "learning_rate": 0.01,
    },
}
# A variant with its own paths through training and inference: every promise holds for it too.
SMALL["gru4rec+include_seen"] = {**SMALL["gru4rec"], "exclude_seen": False}


def walk(n_sessions: int, seed: int) -> Sessions:
    """Sessions stepping through the items: item i is mostly followed by item i + 1."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 7, n_sessions)
    starts = np.repeat(rng.integers(0, N_ITEMS, n_sessions), lengths)
    within = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    items = ((starts + within) % N_ITEMS).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ratings = rng.integers(1, 6, items.size).astype(np.int8)
    return Sessions(items, offsets, ratings, 600 * np.arange(n_sessions), 600 * np.arange(items.size))


@pytest.fixture(scope="module", params=[*registry.MODELS, "gru4rec+include_seen"])
def fitted(request):
    name = request.param
    model = registry.build(name.partition("+")[0], SMALL.get(name))
    result = trainer.fit(model, walk(40, 0), N_ITEMS, walk(8, 1), log=lambda _: None)
    return model, result


def test_rank_covers_every_prediction_with_a_valid_rank(fitted):
    model, _ = fitted
    test = walk(12, 2)
    ranks = model.rank(test)
    assert ranks.shape == (test.n_predictions,)
    assert ranks.min() >= 1 and ranks.max() <= N_ITEMS


def untimed(sessions: Sessions) -> Sessions:
    """A history carries no times (``sbr recommend``), so the sessions ranked against it carry none either."""
    return Sessions(sessions.items, sessions.offsets, sessions.ratings)


def prefix_ranks(model, test: Sessions) -> np.ndarray:
    """The ranking rule applied to ``score_next`` of every prediction's prefix."""
    session, event = prediction_index(test.offsets)
    prefixes = Sessions.of_histories(
        [test.items[test.offsets[s] : e] for s, e in zip(session, event, strict=True)],
        [test.ratings[test.offsets[s] : e] for s, e in zip(session, event, strict=True)],
    )
    scores = model.score_next(prefixes)
    assert scores.shape == (len(event), N_ITEMS)
    return target_ranks(scores, test.items[event], model.tie_order)


def test_rank_is_the_rule_applied_to_score_next_of_every_prefix(fitted):
    """Both ways a model answers (ranking for evaluation, scores for recommendations) agree."""
    model, _ = fitted
    test = untimed(walk(10, 3))
    np.testing.assert_array_equal(model.rank(test), prefix_ranks(model, test))


@pytest.mark.parametrize("cells,slots", [(2, 1), (4, 2), (7, 3), (4096, 512)])
def test_gru4rec_ranks_alike_however_its_schedule_is_cut_into_calls(monkeypatch, cells, slots):
    """Its session's movies stay out across compiled calls and when a slot takes a new session."""
    from sbr_dagster.models.gru4rec import inference

    model = registry.build("gru4rec", SMALL["gru4rec"])
    model.fit(walk(40, 0), N_ITEMS)
    test = untimed(walk(12, 4))
    monkeypatch.setattr(inference, "EVAL_CELLS", cells)
    ranks = inference.rank_sessions(model.network, test, exclude_seen=True, batch_size=slots)
    np.testing.assert_array_equal(ranks, prefix_ranks(model, test))


def test_iterative_models_report_epochs_and_keep_the_best(fitted):
    model, result = fitted
    if model.epochs == 1:
        assert result.history == [] and result.best_epoch == 0
        return
    assert 1 <= result.best_epoch <= len(result.history) <= model.epochs
    best = max(result.history, key=lambda row: (row[trainer.VALID_RECALL], row[trainer.VALID_MRR]))
    assert best["epoch"] == result.best_epoch


def test_models_with_weights_save_and_load_them(fitted, tmp_path):
    model, _ = fitted
    if not model.has_weights:
        with pytest.raises(NotImplementedError):
            model.save(tmp_path)
        return
    model.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(model.weight_files)
    loaded = registry.model_class(model.name).load(tmp_path, model.config)
    test = walk(6, 4)
    np.testing.assert_array_equal(loaded.rank(test), model.rank(test))


def test_registry_builds_from_plain_settings_and_rejects_unknown_ones():
    from sbr_dagster.errors import InputDataError

    assert registry.build("sr", {"steps": 3}).config.steps == 3
    with pytest.raises(InputDataError, match=r"sr settings.*stepz"):
        registry.build("sr", {"stepz": 3})
    with pytest.raises(InputDataError, match="unknown model 'nope'"):
        registry.build("nope")
    assert set(registry.TRAINED) | set(registry.BASELINES) == set(registry.MODELS)


def random_replay(seed: int, n_users: int = 7) -> timeline.Replay:
    return replays.random_replay(
        np.random.default_rng(seed), n_users, N_ITEMS, max_length=14, new_session=0.2
    )


def test_replay_ranks_are_the_rule_on_score_next_of_each_targets_context(fitted):
    """Replaying a timeline equals scoring, for each target, what its session fed before it."""
    model, _ = fitted
    stream = random_replay(5)
    scores = model.score_next(replays.target_contexts(stream))
    targets = stream.items[stream.target_events]
    everything, unseen = model.rank_replay(stream)
    np.testing.assert_array_equal(everything, target_ranks(scores, targets, model.tie_order))
    masked = replays.without_seen(scores, stream)
    np.testing.assert_array_equal(unseen, target_ranks(masked, targets, model.tie_order))


def test_replay_scores_score_every_target_once_over_all_candidates(fitted):
    model, _ = fitted
    stream = random_replay(6, n_users=9)
    n = stream.target_events.size
    rows = []
    for chunk_rows, scores in model.replay_scores(stream):
        covered = np.arange(n)[chunk_rows]
        assert scores.shape == (covered.size, N_ITEMS)
        rows.append(covered)
    np.testing.assert_array_equal(np.sort(np.concatenate(rows)), np.arange(n))


def test_a_target_no_chunk_scored_is_an_error():
    stream = random_replay(6)
    scores = np.zeros((stream.target_events.size, N_ITEMS))
    with pytest.raises(RuntimeError, match=r"1 of \d+ targets were never scored"):
        replay_ranks(stream, [(slice(1, None), scores[1:])])
