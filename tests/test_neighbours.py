"""The neighbour baselines score what their papers define, whichever path computes the scores.

A brute-force pure-Python reference of each model (written from session-rec's ``algorithms/knn``)
is compared with the vectorized scores, on sparse and dense chunks and every way STAN finds the
matching position; replay, prefix ranking and ``score_next`` agree rank for rank.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import replays

from sbr_dagster.data import timeline
from sbr_dagster.data.arrays import Sessions, prediction_index
from sbr_dagster.models import neighbours
from sbr_dagster.models.neighbours import (
    SKNN,
    STAN,
    VSKNN,
    RecentPopularity,
    RecentPopularityConfig,
    SKNNConfig,
    STANConfig,
    VSKNNConfig,
)
from sbr_dagster.models.ranking import target_ranks

N_ITEMS = 12
DAY = neighbours.DAY_S
# Each (kind, config) is checked against the reference; small k and sample sizes make both bite.
CONFIGS = [
    ("sknn", SKNNConfig(k=4, sample_size=10)),
    ("sknn", SKNNConfig(k=3, sample_size=40, similarity="jaccard")),
    ("vsknn", VSKNNConfig(k=5, sample_size=8)),
    ("vsknn", VSKNNConfig(k=5, sample_size=8, weighting="quadratic", idf_weighting=True)),
    ("vsknn", VSKNNConfig(k=2, sample_size=30, weighting="same")),
    ("stan", STANConfig(k=5, sample_size=12, lambda_time_s=3 * DAY)),
    ("stan", STANConfig(k=3, sample_size=40, lambda_position=0.3, lambda_neighbour=1.0)),
]
MODELS = {"sknn": SKNN, "vsknn": VSKNN, "stan": STAN}
# (dense chunks?, STAN's way to find q*): every path must give the same scores.
PATHS = [(False, None), (True, None), (True, "carried"), (False, "looked_up"), (True, "scanned")]


def reference_scores(kind, config, train, train_times, context, now):
    """One prediction's scores, straight from the definitions (``neighbours`` docstrings)."""
    order = sorted(range(len(train)), key=lambda j: (-train_times[j], -j) if train_times else -j)
    recency = {j: r for r, j in enumerate(order)}
    current = set(context)
    length = len(context)
    last = {item: p for p, item in enumerate(context, 1)}
    candidates = [j for j in order if current & set(train[j])][: config.sample_size]
    similarity = {}
    for j in candidates:
        neighbour = set(train[j])
        shared = current & neighbour
        if kind == "sknn":
            if config.similarity == "cosine":
                similarity[j] = len(shared) / math.sqrt(len(current) * len(neighbour))
            else:
                similarity[j] = len(shared) / len(current | neighbour)
        elif kind == "vsknn":  # exact fractions: equal weights tie exactly
            power = {"same": 0, "linear": 1, "quadratic": 2}[config.weighting]
            similarity[j] = sum(Fraction(last[i], length) ** power for i in shared)
        else:
            w1 = {i: math.exp((p - length) / config.lambda_position) for i, p in last.items()}
            w1 = {i: w for i, w in w1.items() if w >= 1e-12}
            sim = sum(w1.get(i, 0.0) for i in shared)
            sim /= math.sqrt(sum(w * w for w in w1.values())) * math.sqrt(len(neighbour))
            if now is not None and train_times:
                sim *= math.exp(-abs(now - train_times[j]) / config.lambda_time_s)
            similarity[j] = sim
    chosen = sorted((j for j in candidates if similarity[j] > 0), key=lambda j: (-similarity[j], recency[j]))
    scores = np.zeros(N_ITEMS)
    holding = [sum(item in set(s) for s in train) for item in range(N_ITEMS)]
    for j in chosen[: config.k]:
        if kind == "stan":
            position = {item: q for q, item in enumerate(train[j], 1)}  # an item's last position
            match = max(q for q, item in enumerate(train[j], 1) if item in current)
            for item, q in position.items():
                scores[item] += similarity[j] * math.exp(-abs(q - match) / config.lambda_neighbour)
        else:
            for item in set(train[j]):
                factor = 1.0
                if kind == "vsknn" and config.idf_weighting:
                    factor += math.log(len(train) / holding[item])
                scores[item] += float(similarity[j]) * factor
    return scores


def sessions(rng, n_sessions, max_length, *, times=True) -> Sessions:
    """Random sessions with repeated items and increasing event times within each session."""
    lengths = rng.integers(1, max_length, n_sessions)
    items = rng.integers(0, N_ITEMS, lengths.sum()).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    stamps = np.concatenate([np.sort(rng.integers(0, 20 * DAY, n)) for n in lengths]) if times else None
    return Sessions(
        items=items,
        offsets=offsets,
        ratings=np.ones(items.size, np.int8),
        start_times=stamps[offsets[:-1]] if times else None,
        timestamps=stamps,
    )


def as_lists(s: Sessions) -> list[list[int]]:
    return [s.items[a:b].tolist() for a, b in zip(s.offsets[:-1], s.offsets[1:], strict=True)]


@pytest.fixture(params=PATHS, ids=lambda path: f"dense={path[0]}-matches={path[1]}")
def path(request, monkeypatch):
    dense, matches = request.param
    monkeypatch.setattr(neighbours, "_DENSE_WHEN", -1.0 if dense else 1e18)
    monkeypatch.setattr(neighbours, "_MATCHES", matches)
    monkeypatch.setattr(neighbours, "_DENSE_CELLS", 64)  # chunks of a few rows: runs straddle them
    monkeypatch.setattr(neighbours, "_SPARSE_ROWS", 7)
    return request.param


@pytest.mark.parametrize(("kind", "config"), CONFIGS, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CONFIGS)])
def test_scores_are_the_reference_definition(kind, config, path):
    rng = np.random.default_rng(1)
    for _ in range(3):
        train, histories = sessions(rng, 25, 9), sessions(rng, 15, 40)
        model = MODELS[kind](config)
        model.fit(train, N_ITEMS)
        got = model.score_next(histories)
        train_times = [float(train.timestamps[end - 1]) for end in train.offsets[1:]]
        for row, history in enumerate(as_lists(histories)):
            now = float(histories.timestamps[histories.offsets[row + 1] - 1])
            expected = reference_scores(kind, config, as_lists(train), train_times, history, now)
            np.testing.assert_allclose(got[row], expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", list(MODELS))
def test_without_timestamps_recency_is_session_order_and_stan_ignores_time(kind):
    rng = np.random.default_rng(2)
    config = dict(CONFIGS)[kind]
    train, histories = sessions(rng, 25, 9, times=False), sessions(rng, 10, 12, times=False)
    model = MODELS[kind](config)
    model.fit(train, N_ITEMS)
    got = model.score_next(histories)
    for row, history in enumerate(as_lists(histories)):
        expected = reference_scores(kind, config, as_lists(train), None, history, None)
        np.testing.assert_allclose(got[row], expected, rtol=1e-9, atol=1e-12)


def random_replay(rng, n_users=9, *, times=True) -> timeline.Replay:
    return replays.random_replay(rng, n_users, N_ITEMS, max_length=30, new_session=0.1, times=times)


@pytest.mark.parametrize(("kind", "config"), CONFIGS, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CONFIGS)])
@pytest.mark.parametrize("times", [True, False], ids=["timed", "untimed"])
def test_replay_ranks_are_the_rule_on_score_next_of_each_targets_context(kind, config, times, monkeypatch):
    """Dense replay chunks (overlaps and STAN's q* carried from target to target) against sparse
    scoring of each context alone: the same ranks, among all items and among the unseen."""
    rng = np.random.default_rng(3)
    model = MODELS[kind](config)
    model.fit(sessions(rng, 30, 9), N_ITEMS)
    stream = random_replay(rng, times=times)
    monkeypatch.setattr(neighbours, "_DENSE_CELLS", 96)
    monkeypatch.setattr(neighbours, "_DENSE_WHEN", -1.0)
    monkeypatch.setattr(neighbours, "_MATCHES", "carried")  # STAN: q* carried along each session
    everything, unseen = model.rank_replay(stream)
    monkeypatch.setattr(neighbours, "_DENSE_WHEN", 1e18)
    monkeypatch.setattr(neighbours, "_MATCHES", "scanned")
    scores = model.score_next(replays.target_contexts(stream))
    targets = stream.items[stream.target_events]
    np.testing.assert_array_equal(everything, target_ranks(scores, targets, model.tie_order))
    masked = replays.without_seen(scores, stream)
    np.testing.assert_array_equal(unseen, target_ranks(masked, targets, model.tie_order))
    assert everything.min() >= 1 and everything.max() <= N_ITEMS


@pytest.mark.parametrize("kind", list(MODELS))
def test_rank_is_the_rule_on_score_next_of_every_prefix(kind):
    rng = np.random.default_rng(4)
    model = MODELS[kind](dict(CONFIGS)[kind])
    model.fit(sessions(rng, 30, 9), N_ITEMS)
    test = sessions(rng, 12, 20)
    keep = np.diff(test.offsets) >= 2  # every session predicts something
    starts, stops = test.offsets[:-1][keep], test.offsets[1:][keep]
    test = Sessions(
        np.concatenate([test.items[a:b] for a, b in zip(starts, stops, strict=True)]),
        np.concatenate([[0], np.cumsum(stops - starts)]).astype(np.int64),
        np.ones(int((stops - starts).sum()), np.int8),
        None,
        np.concatenate([test.timestamps[a:b] for a, b in zip(starts, stops, strict=True)]),
    )
    session, event = prediction_index(test.offsets)
    prefixes = [(test.offsets[s], e) for s, e in zip(session, event, strict=True)]
    histories = Sessions.of_histories([test.items[a:b] for a, b in prefixes])
    histories = Sessions(
        histories.items,
        histories.offsets,
        histories.ratings,
        None,
        np.concatenate([test.timestamps[a:b] for a, b in prefixes]),
    )
    scores = model.score_next(histories)
    np.testing.assert_array_equal(model.rank(test), target_ranks(scores, test.items[event], model.tie_order))


def test_stan_time_is_the_last_fed_event_never_the_target():
    """w2 compares a neighbour with the last event the session fed: moving the target in time
    changes nothing, moving that event does."""
    train = Sessions(
        items=np.array([0, 1, 0, 2], np.int32),
        offsets=np.array([0, 2, 4]),
        ratings=np.ones(4, np.int8),
        timestamps=np.array([0, 10 * DAY, 0, 20 * DAY]),
    )
    model = STAN(STANConfig(lambda_time_s=DAY))
    model.fit(train, 3)

    def ranks(fed_time, target_time):
        stream = timeline.Replay(
            items=np.array([0, 1, 2], np.int32),
            offsets=np.array([0, 3]),
            session_start=np.array([True, False, False]),
            feed=np.array([True, False, False]),
            target=np.array([False, True, True]),
            ratings=np.ones(3, np.int8),
            timestamps=np.array([fed_time, target_time, target_time]),
        )
        return model.rank_replay(stream)[0].tolist()

    # Item 1's neighbour ended at day 10, item 2's at day 20: the nearer in time ranks second,
    # after item 0 that both hold.
    assert ranks(11 * DAY, 11 * DAY) == [2, 3]
    assert ranks(11 * DAY, 19 * DAY) == [2, 3]
    assert ranks(19 * DAY, 11 * DAY) == [3, 2]


def test_neighbours_come_from_the_most_recent_sessions_sharing_an_item():
    # Session 0 matches the current session best but is the oldest; 2 is the most recent but shares
    # nothing; 1 shares item 0 only.
    train = Sessions(
        items=np.array([0, 1, 2, 0, 5, 7, 8], np.int32),
        offsets=np.array([0, 3, 5, 7]),
        ratings=np.ones(7, np.int8),
        timestamps=np.array([100, 101, 102, 200, 201, 300, 301]),
    )
    current = Sessions.of_histories([np.array([0, 1, 2])])
    for model_class, config_class in ((SKNN, SKNNConfig), (VSKNN, VSKNNConfig), (STAN, STANConfig)):
        model = model_class(config_class(sample_size=1))
        model.fit(train, 9)
        assert np.flatnonzero(model.score_next(current)[0]).tolist() == [0, 5], model.name
        model = model_class(config_class(sample_size=2))
        model.fit(train, 9)
        assert np.flatnonzero(model.score_next(current)[0]).tolist() == [0, 1, 2, 5], model.name
    # Without event times, the start times order the sessions, and without those the session order.
    reversed_starts = Sessions(train.items, train.offsets, train.ratings, start_times=np.array([3, 2, 1]))
    model = SKNN(SKNNConfig(sample_size=1))
    model.fit(reversed_starts, 9)
    assert np.flatnonzero(model.score_next(current)[0]).tolist() == [0, 1, 2]
    model.fit(Sessions(train.items, train.offsets, train.ratings), 9)
    assert np.flatnonzero(model.score_next(current)[0]).tolist() == [0, 5]


def test_k_keeps_the_most_similar_and_breaks_ties_by_recency():
    train = Sessions.of_histories([[0, 1], [0, 2], [0, 3], [0, 1, 4]])  # no times: later is more recent
    model = SKNN(SKNNConfig(k=1))
    model.fit(train, 5)
    # [0, 1] and [0, 1, 4] share two items with the current session; [0, 1] is the more similar.
    assert np.flatnonzero(model.score_next(Sessions.of_histories([[0, 1]]))[0]).tolist() == [0, 1]
    # Sessions 0..2 tie for [0]; session 2 ([0, 3]) is the most recent of them.
    model = SKNN(SKNNConfig(k=1, similarity="jaccard"))
    model.fit(Sessions.of_histories([[0, 1], [0, 2], [0, 3]]), 5)
    assert np.flatnonzero(model.score_next(Sessions.of_histories([[0]]))[0]).tolist() == [0, 3]


def test_a_session_without_neighbours_falls_back_to_popularity():
    train = Sessions.of_histories([[0, 1], [1, 2], [1, 3]])
    for model_class in MODELS.values():
        model = model_class()
        model.fit(train, 5)
        assert not model.score_next(Sessions.of_histories([[]])).any()
        # No train session holds item 4: popularity, then lower item_idx (1, 0, 2, 3, 4).
        assert model.rank(Sessions.of_histories([[4, 1], [4, 3]])).tolist() == [1, 4]


def test_recent_popularity_counts_only_the_last_days_of_train():
    day = DAY
    # Item 0: rated 5 times 40 days before the last train event; item 1 twice within the window;
    # item 2 once exactly 30 days before the end (outside the half-open window), once at the end.
    items = np.array([0, 0, 0, 0, 0, 2, 1, 1, 2], np.int32)
    stamps = np.array([0, 0, 0, 0, 0, 10 * day, 20 * day, 30 * day, 40 * day])
    train = Sessions(items, np.array([0, 5, 9]), np.ones(9, np.int8), timestamps=stamps)
    model = RecentPopularity(RecentPopularityConfig(days=30))
    model.fit(train, 4)
    assert model.recent.tolist() == [0, 2, 1, 0]
    assert model.rank(Sessions.of_histories([[3, 1], [3, 2], [3, 0]])).tolist() == [1, 2, 3]
    wide = RecentPopularity(RecentPopularityConfig(days=41))
    wide.fit(train, 4)
    assert wide.rank(Sessions.of_histories([[3, 0], [3, 1]])).tolist() == [1, 2]
    # Ties in the window fall back to overall train popularity: 0 (5 ratings) before 3 (none).
    narrow = RecentPopularity(RecentPopularityConfig(days=0.5))
    narrow.fit(train, 4)
    assert narrow.rank(Sessions.of_histories([[1, 2], [1, 0], [1, 3]])).tolist() == [1, 2, 4]
    with pytest.raises(ValueError, match="timestamps"):
        RecentPopularity().fit(Sessions(items, np.array([0, 9]), np.ones(9, np.int8)), 4)


@pytest.mark.parametrize(
    ("config_class", "settings", "message"),
    [
        (SKNNConfig, {"k": 0}, "k must be an integer >= 1, got 0"),
        (SKNNConfig, {"k": True}, "k must be an integer >= 1"),
        (SKNNConfig, {"sample_size": 2.5}, "sample_size must be an integer >= 1"),
        (SKNNConfig, {"similarity": "dice"}, "similarity must be one of 'cosine', 'jaccard', got 'dice'"),
        (VSKNNConfig, {"weighting": "log"}, "weighting must be one of 'same', 'linear', 'quadratic'"),
        (VSKNNConfig, {"idf_weighting": 1}, "idf_weighting must be true or false"),
        (STANConfig, {"lambda_position": 0}, "lambda_position must be a positive finite number"),
        (STANConfig, {"lambda_time_s": float("nan")}, "lambda_time_s must be a positive finite number"),
        (STANConfig, {"lambda_neighbour": -1.0}, "lambda_neighbour must be a positive finite number"),
        (RecentPopularityConfig, {"days": 0}, "days must be a positive finite number"),
    ],
)
def test_settings_are_validated_with_a_clear_message(config_class, settings, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        config_class.from_dict(settings)


def test_models_have_no_weights_to_save(tmp_path):
    for model_class in (*MODELS.values(), RecentPopularity):
        assert model_class.has_weights is False
        with pytest.raises(NotImplementedError):
            model_class().save(tmp_path)
