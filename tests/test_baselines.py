import numpy as np
import pytest

from sbr_dagster.data.arrays import Sessions
from sbr_dagster.models import baselines, registry
from sbr_dagster.models.baselines import ItemKNN, Markov, Popularity, SequentialRules, SequentialRulesConfig
from sbr_dagster.models.ranking import popularity_order, target_ranks

BASELINES = registry.BASELINES


def _arrays(*sessions: list[int]) -> Sessions:
    items = np.concatenate([np.asarray(s, dtype=np.int32) for s in sessions])
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sessions])]).astype(np.int64)
    # One event a minute, so time-aware baselines (recent popularity) see every event as recent.
    return Sessions(items, offsets, np.zeros(items.size, np.int8), timestamps=60 * np.arange(items.size))


def fitted(model, train: Sessions, n_items: int):
    model.fit(train, n_items)
    return model


def ranks_after(model, last_items, targets) -> np.ndarray:
    """Rank of each target after its last item: one two-event session per pair."""
    return model.rank(_arrays(*[[a, b] for a, b in zip(last_items, targets, strict=True)]))


def test_popularity_scores_train_counts_whatever_the_last_item():
    model = fitted(Popularity(), _arrays([0, 1, 1], [2, 1, 0]), 4)
    assert model.scores(np.array([0, 3])).tolist() == [[2, 3, 1, 0], [2, 3, 1, 0]]


def test_markov_counts_transitions_within_sessions_only():
    model = fitted(Markov(), _arrays([0, 1, 2], [2, 0, 1]), 4)
    expected = np.zeros((4, 4))
    expected[0, 1] = 2
    expected[1, 2] = 1
    expected[2, 0] = 1  # 2 -> 2 across the session boundary does not count
    np.testing.assert_array_equal(model.scores(np.arange(4)), expected)


def test_sequential_rules_weigh_by_inverse_distance_up_to_ten_steps():
    # Session 1 walks items 0..11 (item 11 is 11 steps after item 0); session 2 is [12, 13].
    model = fitted(SequentialRules(), _arrays(list(range(12)), [12, 13]), 14)
    rules_from_0 = model.scores(np.array([0]))[0]
    np.testing.assert_allclose(rules_from_0[1:11], 1 / np.arange(1, 11))
    assert rules_from_0[11] == 0  # beyond the 10-step window
    assert rules_from_0[0] == 0
    assert model.scores(np.array([12]))[0, 13] == 1
    # Items at the end of session 1 have no rules into session 2.
    np.testing.assert_array_equal(model.scores(np.arange(12))[:, 12:], 0)


def test_sequential_rules_accumulate_repeated_pairs():
    model = fitted(SequentialRules(), _arrays([0, 1, 0, 1]), 2)
    np.testing.assert_allclose(model.scores(np.array([0, 1])), [[1 / 2, 1 + 1 / 3 + 1], [1, 1 / 2]])


def test_sequential_rules_window_is_configurable():
    model = fitted(SequentialRules(SequentialRulesConfig(steps=2)), _arrays([0, 1, 2, 3]), 4)
    np.testing.assert_allclose(model.scores(np.array([0]))[0], [0, 1, 1 / 2, 0])


def test_item_knn_is_cosine_over_sessions_containing_the_items():
    # Sessions containing 0: three; 1: two; 2: two (the repeat of 0 in session 3 counts once); 3: none.
    model = fitted(ItemKNN(), _arrays([0, 1], [0, 1, 2], [0, 2, 0]), 4)
    expected = np.array(
        [
            [0, 2 / np.sqrt(6), 2 / np.sqrt(6), 0],
            [2 / np.sqrt(6), 0, 1 / 2, 0],
            [2 / np.sqrt(6), 1 / 2, 0, 0],
            [0, 0, 0, 0],
        ]
    )
    np.testing.assert_allclose(model.scores(np.arange(4)), expected, rtol=1e-6)


def test_item_knn_matches_brute_force_across_session_blocks():
    rng = np.random.default_rng(0)
    n_items, n_sessions = 30, 5000  # more sessions than one incidence block holds
    lengths = rng.integers(2, 8, n_sessions)
    items = rng.integers(0, n_items, lengths.sum()).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    incidence = np.zeros((n_items, n_sessions))
    incidence[items, np.repeat(np.arange(n_sessions), lengths)] = 1
    shared = incidence @ incidence.T
    expected = shared / np.sqrt(np.outer(np.diag(shared), np.diag(shared)))
    np.fill_diagonal(expected, 0)
    model = fitted(ItemKNN(), Sessions(items, offsets, np.zeros(items.size, np.int8)), n_items)
    np.testing.assert_allclose(model.scores(np.arange(n_items)), expected, rtol=1e-6)


def test_tie_break_orders_by_popularity_then_lower_index():
    assert popularity_order(np.array([2, 3, 3, 1, 0])).tolist() == [2, 0, 1, 3, 4]


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_an_item_without_evidence_ranks_targets_by_popularity(name):
    # Popularity: item 1 and 2 tie at 3 (1 wins by index), then 0, then 3; item 4 is only a last item.
    train = _arrays([1, 2, 0], [2, 1, 0, 3], [1, 2])
    model = fitted(registry.build(name), train, 5)
    ranks = ranks_after(model, np.full(5, 4), np.arange(5))
    assert ranks.tolist() == [3, 1, 2, 4, 5]


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_ranks_of_all_targets_are_a_permutation(name):
    rng = np.random.default_rng(1)
    train = _arrays(*[rng.integers(0, 12, 6).tolist() for _ in range(20)])
    model = fitted(registry.build(name), train, 12)
    for last in range(12):
        ranks = ranks_after(model, np.full(12, last), np.arange(12))
        assert sorted(ranks.tolist()) == list(range(1, 13))


def test_evidence_beats_popularity():
    model = fitted(Markov(), _arrays([0, 1], [1, 2], [1, 3], [3, 1]), 4)
    # After item 0 only item 1 has evidence; the others follow popularity (1: 4, 3: 2, 0: 1, 2: 1).
    assert ranks_after(model, np.zeros(4, dtype=int), np.arange(4)).tolist() == [3, 1, 4, 2]
    # After item 1, items 2 and 3 tie at one transition each; 3 is more popular.
    assert ranks_after(model, np.ones(4, dtype=int), np.arange(4)).tolist() == [4, 3, 2, 1]


def test_ranks_with_a_tie_order_match_a_full_sort():
    rng = np.random.default_rng(2)
    scores = rng.integers(0, 4, (50, 20)).astype(np.float32)  # many ties
    popularity = rng.integers(0, 5, 20)
    targets = rng.integers(0, 20, 50)
    ranks = target_ranks(scores, targets, popularity_order(popularity))
    for row, target, rank in zip(scores, targets, ranks, strict=True):
        order = np.lexsort((np.arange(20), -popularity, -row))
        assert rank == 1 + int(np.flatnonzero(order == target)[0])


def test_baseline_ranks_cover_every_prediction_in_order_whatever_the_chunk(monkeypatch):
    train = _arrays([0, 1], [1, 2], [1, 3], [3, 1])
    model = fitted(Markov(), train, 4)
    test = _arrays([0, 1, 3], [2, 1])
    # Predictions: (0 -> 1), (1 -> 3), (2 -> 1); by hand from the transition counts and popularity.
    assert model.rank(test).tolist() == [1, 1, 1]
    # Transitions 0->1, 1->2, 1->3, 3->1; fallback order by popularity: 1, 3, 0, 2.
    test = _arrays([0, 2, 3, 1, 0], [3, 2], [2, 0, 1])
    expected = model.rank(test)
    # e.g. after 1 the order is 3, 2 (evidence, 3 more popular), then 1, 0: target 0 ranks 4th.
    assert expected.tolist() == [4, 2, 1, 4, 4, 3, 1]
    monkeypatch.setattr(baselines, "RANK_CHUNK", 2)
    assert model.rank(test).tolist() == expected.tolist()
