"""The blend of fitted models: standardised scores, weighted sums ranked by the one rule, weights
chosen on validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import replays
from test_model_interface import N_ITEMS, SMALL, random_replay, walk

from sbr_dagster.evaluation import ensemble
from sbr_dagster.evaluation.metrics import mrr_at, recall_at
from sbr_dagster.models import registry
from sbr_dagster.models.ranking import target_ranks
from sbr_dagster.training import trainer


@pytest.fixture(scope="module")
def members():
    fitted = []
    for name in ("gru4rec", "sr", "pop"):
        model = registry.build(name, SMALL.get(name))
        trainer.fit(model, walk(40, 0), N_ITEMS, walk(8, 1), log=lambda _: None)
        fitted.append(model)
    return fitted


def test_standardised_rows_have_mean_0_and_spread_1_over_their_finite_scores():
    scores = np.array([[1.0, 2.0, 3.0, -np.inf], [5.0, 5.0, 5.0, 5.0], [0.0, 10.0, 0.0, 0.0]])
    z = ensemble.standardised(scores)
    finite = z[0, :3]
    assert finite.mean() == pytest.approx(0, abs=1e-6) and finite.std() == pytest.approx(1, rel=1e-6)
    assert z[0, 3] == -np.inf
    np.testing.assert_array_equal(z[1], 0.0)  # a row that does not vary says nothing
    assert np.argmax(z[2]) == 1 and z[2].std() == pytest.approx(1, rel=1e-6)


def test_the_simplex_holds_every_weighting_that_sums_to_one():
    grid = ensemble.simplex(3, 4)
    assert len(grid) == math.comb(4 + 2, 2) and len(set(grid)) == len(grid)
    assert all(sum(w) == pytest.approx(1) and min(w) >= 0 for w in grid)
    assert (1.0, 0.0, 0.0) in grid and (0.25, 0.25, 0.5) in grid


@pytest.mark.parametrize("part_targets", [3, 8192])
def test_blend_ranks_are_the_rule_on_the_weighted_standardised_scores(members, part_targets, monkeypatch):
    monkeypatch.setattr(ensemble, "PART_TARGETS", part_targets)  # 3: many parts, whole users each
    stream = random_replay(7, n_users=12)
    targets = stream.items[stream.target_events]
    full = []
    for model in members:
        scores = np.empty((targets.size, N_ITEMS))
        for rows, chunk in model.replay_scores(stream):
            scores[rows] = ensemble.standardised(chunk)
        full.append(scores)
    weightings = [(1.0, 0.0, 0.0), (0.5, 0.25, 0.25), (0.0, 0.5, 0.5)]
    ranked = ensemble.blend_ranks(members, weightings, stream, N_ITEMS)
    for weighting in weightings:
        # A member with weight 0 takes no part (its -inf, the movies it rules out, included).
        blend = sum(w * s for w, s in zip(weighting, full, strict=True) if w).astype(np.float32)
        everything, unseen = ranked[weighting]
        np.testing.assert_array_equal(everything, target_ranks(blend, targets))
        np.testing.assert_array_equal(unseen, target_ranks(replays.without_seen(blend, stream), targets))
    # One member alone ranks as that member does (GRU4Rec counts ties against itself as well).
    np.testing.assert_array_equal(ranked[(1.0, 0.0, 0.0)][0], members[0].rank_replay(stream)[0])


def test_the_chosen_weighting_is_the_best_on_validation(members):
    valid = random_replay(8, n_users=12)
    weightings = ensemble.simplex(3, 2)
    chosen, rows = ensemble.choose_weights(members, weightings, valid, N_ITEMS)
    assert [tuple(row["weights"]) for row in rows] == weightings
    keys = [(row["valid_recall_20"], row["valid_mrr_20"]) for row in rows]
    assert len(set(keys)) > 1  # the weightings are told apart (with 9 movies, by MRR@20)
    assert keys[weightings.index(chosen)] == max(keys)
    ranks = ensemble.blend_ranks(members, [chosen], valid, N_ITEMS)[chosen][0]
    assert recall_at(ranks, 20) == max(keys)[0]


def test_the_best_member_is_chosen_on_validation_each_ranked_its_own_way(members):
    valid = random_replay(8, n_users=12)
    named = dict(zip(("gru4rec", "sr", "pop"), members, strict=True))
    best, scores = ensemble.best_member(named, valid)
    for name, model in named.items():
        ranks = model.rank_replay(valid)[0]
        assert scores[name] == (recall_at(ranks, 20), mrr_at(ranks, 20))
    assert scores[best] == max(scores.values())
    assert len(set(scores.values())) > 1  # the members are told apart
    # Ties go to the earlier member.
    twice = {"first": members[1], "second": members[1]}
    assert ensemble.best_member(twice, valid)[0] == "first"
