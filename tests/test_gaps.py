"""The gap input: buckets of the time since a session's previous event, and GRU4Rec reading them.

The rule is the same on a split's sessions (training) and on a replayed timeline (evaluation), and
a GRU4Rec that reads gaps ranks exactly as a step-by-step reference does.
"""

from __future__ import annotations

import numpy as np
import pytest
import replays

from sbr_dagster.data import gaps, timeline
from sbr_dagster.data.arrays import Sessions
from sbr_dagster.evaluation import metrics
from sbr_dagster.models.gru4rec.config import GRU4RecConfig
from sbr_dagster.models.gru4rec.model import GRU4Rec
from sbr_dagster.models.ranking import target_ranks
from sbr_dagster.training import trainer

DAY = 86_400


def test_buckets_grow_by_two_doublings_from_one_for_a_same_second_event():
    seconds = np.array([0, 2, 3, 15, 16, DAY, 365 * DAY, 10**12])
    np.testing.assert_array_equal(gaps.bucket(seconds), [1, 1, 2, 3, 3, 9, 13, gaps.N_GAPS - 1])
    many = gaps.bucket(np.arange(0, 10**8, 997))
    assert np.all(np.diff(many) >= 0) and many.min() == 1 and many.max() < gaps.N_GAPS


def sessions_with_times(seed: int, n_sessions: int = 9, n_items: int = 7) -> Sessions:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 8, n_sessions)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n = int(offsets[-1])
    steps = rng.choice([0, 5, 600, 3 * DAY, 400 * DAY], n)
    times = np.cumsum(steps).astype(np.int64)
    items = rng.integers(0, n_items, n).astype(np.int32)
    return Sessions(items, offsets, rng.integers(1, 6, n).astype(np.int8), times[offsets[:-1]], times)


def test_session_gaps_are_zero_at_a_start_and_the_bucket_of_the_time_since_the_event_before():
    sessions = sessions_with_times(0)
    found = gaps.session_gaps(sessions)
    for s in range(sessions.n_sessions):
        begin, end = sessions.offsets[s], sessions.offsets[s + 1]
        assert found[begin] == 0
        for e in range(begin + 1, end):
            assert found[e] == gaps.bucket(np.array([sessions.timestamps[e] - sessions.timestamps[e - 1]]))[0]
    # Without times: one sitting, each event right after the one before.
    untimed = Sessions(sessions.items, sessions.offsets, sessions.ratings)
    expected = np.full(len(sessions.items), gaps.SAME_SITTING)
    expected[sessions.offsets[:-1]] = 0
    np.testing.assert_array_equal(gaps.session_gaps(untimed), expected)


def test_replay_gaps_count_from_the_last_fed_event_of_the_session():
    stream = replays.random_replay(np.random.default_rng(3), 8, 6, max_length=15, new_session=0.3, times=True)
    found = gaps.replay_gaps(stream)
    for event in range(len(stream.items)):
        begin = max(e for e in range(event + 1) if stream.session_start[e])
        fed = [e for e in range(begin, event) if stream.feed[e]]
        expected = (
            gaps.bucket(np.array([stream.timestamps[event] - stream.timestamps[fed[-1]]]))[0] if fed else 0
        )
        assert found[event] == expected, event
    # A split's sessions as a stream (every event fed): the training rule, with times or without.
    sessions = sessions_with_times(1)
    untimed = Sessions(sessions.items, sessions.offsets, sessions.ratings)
    for case in (sessions, untimed):
        np.testing.assert_array_equal(
            gaps.replay_gaps(timeline.Replay.of_sessions(case)), gaps.session_gaps(case)
        )
    np.testing.assert_array_equal(
        gaps.next_gaps(Sessions.of_histories([[1, 2], [], [3]])), [gaps.SAME_SITTING, 0, gaps.SAME_SITTING]
    )


network = pytest.importorskip("sbr_dagster.models.gru4rec.network")


def test_a_gru_reading_gaps_ranks_as_a_step_by_step_reference():
    sessions = sessions_with_times(2, n_items=7)
    # The reference scores every movie: the session's own movies are not ruled out here.
    model = GRU4Rec(GRU4RecConfig(layers=(6,), gap_dim=3, rating_dim=2, exclude_seen=False))
    model.network = network.build_network(7, model.config, seed=2)
    shift = np.random.default_rng(2).normal(size=model.network.gap_output.shape).astype("float32")
    model.network.gap_output.assign(shift)  # zero at first: make the output side matter
    code = gaps.session_gaps(sessions)
    expected = []
    for s in range(sessions.n_sessions):
        states = model.network.initial_states(1)
        for e in range(sessions.offsets[s], sessions.offsets[s + 1] - 1):
            at = slice(e, e + 1)
            output, states = model.network.step(sessions.items[at], states, sessions.ratings[at], code[at])
            scores = np.asarray(
                model.network.score_all(model.network.before_target(output, code[e + 1 : e + 2]))
            )
            expected.append(target_ranks(scores, sessions.items[e + 1 : e + 2])[0])
    ranks = model.rank(sessions)
    np.testing.assert_array_equal(ranks, expected)
    # Replaying the sessions as a timeline reads the same gaps: the same ranks.
    np.testing.assert_array_equal(model.rank_replay(timeline.Replay.of_sessions(sessions))[0], ranks)
    untimed = Sessions(sessions.items, sessions.offsets, sessions.ratings)
    assert not np.array_equal(model.rank(untimed), ranks)  # the gaps are read, not ignored
    # Scores for whole histories (sbr recommend): the same steps, then the next event's bucket.
    histories = Sessions(
        sessions.items[:5], np.array([0, 2, 5]), sessions.ratings[:5], None, sessions.timestamps[:5]
    )
    scores = model.score_next(histories)
    code = gaps.session_gaps(histories)
    for h, (begin, end) in enumerate([(0, 2), (2, 5)]):
        states = model.network.initial_states(1)
        for e in range(begin, end):
            at = slice(e, e + 1)
            output, states = model.network.step(histories.items[at], states, histories.ratings[at], code[at])
        expected = model.network.score_all(model.network.before_target(output, np.array([gaps.SAME_SITTING])))
        np.testing.assert_allclose(scores[h], np.asarray(expected)[0], rtol=1e-5, atol=1e-5)


def returning_viewers(seed: int, n_sessions: int, n_items: int = 10) -> Sessions:
    """The next movie follows the last one after a short gap, and is movie 0 after a long one: only
    a model that reads the gap before a target can know which."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, 12, n_sessions)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n = int(offsets[-1])
    long = rng.random(n) < 0.4
    long[offsets[:-1]] = False
    items = np.zeros(n, np.int32)
    first = np.zeros(n, bool)
    first[offsets[:-1]] = True
    start_items = rng.integers(1, n_items, n)
    for e in range(n):  # a tiny generator, written plainly
        items[e] = start_items[e] if first[e] else (0 if long[e] else (items[e - 1] + 1) % n_items)
    times = np.cumsum(np.where(long, 30 * DAY, 60)).astype(np.int64)
    return Sessions(items, offsets, np.full(n, 4, np.int8), times[offsets[:-1]], times)


def test_gaps_teach_gru4rec_what_a_long_break_means():
    train, valid = returning_viewers(0, 300), returning_viewers(1, 40)
    found = {}
    for gap_dim in (0, 4):
        # These viewers come back to movie 0, which they have seen: it must stay a candidate.
        config = GRU4RecConfig(
            layers=(16,), gap_dim=gap_dim, exclude_seen=False, batch_size=16, epochs=8, learning_rate=0.02
        )
        model = GRU4Rec(config)
        trainer.fit(model, train, 10, valid, log=lambda _: None)
        found[gap_dim] = metrics.recall_at(model.rank(valid), 1)
    assert found[4] > 0.95, found
    assert found[0] < 0.8, found
