"""Session-parallel schedules: every (input, target) pair once, resets, masking, session order."""

from __future__ import annotations

import numpy as np
import pytest

from sbr_dagster.models.gru4rec.batching import prediction_positions, session_order, session_parallel


def sessions(lengths, seed=0):
    """Offsets for ``lengths`` and items that make every event identifiable (item = 100 + event)."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return offsets, (100 + np.arange(offsets[-1])).astype(np.int32)


LENGTHS = [
    [2, 3, 7, 2, 5, 4, 2, 9, 3],
    [5, 1, 2, 6],  # a single-event session predicts nothing
    [2],
    [11, 2, 2, 2, 2, 2, 2],
]


def expected_pairs(offsets):
    return sorted((e, e + 1) for s in range(len(offsets) - 1) for e in range(offsets[s], offsets[s + 1] - 1))


@pytest.mark.parametrize("lengths", LENGTHS)
@pytest.mark.parametrize("batch_size", [1, 2, 3, 5, 20])
@pytest.mark.parametrize("order", ["shuffle", "time"])
def test_every_input_event_once_with_its_target(lengths, batch_size, order):
    offsets, items = sessions(lengths)
    s = session_parallel(offsets, batch_size, items=items, order=order, seed=3)
    events = s.events[s.mask]
    assert sorted(zip(events.tolist(), (events + 1).tolist(), strict=True)) == expected_pairs(offsets)
    np.testing.assert_array_equal(s.inputs[s.mask], items[events])
    np.testing.assert_array_equal(s.targets[s.mask], items[events + 1])
    assert s.n_events == len(events) == offsets[-1] - len(lengths)
    assert (s.events[~s.mask] == -1).all()


@pytest.mark.parametrize("lengths", LENGTHS)
@pytest.mark.parametrize("batch_size", [1, 3, 20])
def test_resets_exactly_at_session_starts_and_slots_continue_sessions(lengths, batch_size):
    offsets, items = sessions(lengths)
    s = session_parallel(offsets, batch_size, items=items, order="shuffle", seed=1)
    starts = np.isin(s.events, offsets[:-1])
    np.testing.assert_array_equal(s.reset, starts & s.mask)
    # Without a reset, a live slot feeds the next event of the same session.
    follows = s.mask[1:] & ~s.reset[1:]
    np.testing.assert_array_equal(s.events[1:][follows], s.events[:-1][follows] + 1)


@pytest.mark.parametrize("lengths", LENGTHS)
@pytest.mark.parametrize("batch_size", [2, 3, 20])
def test_tail_is_masked_and_live_slots_form_a_shrinking_prefix(lengths, batch_size):
    offsets, items = sessions(lengths)
    s = session_parallel(offsets, batch_size, items=items, order="shuffle", seed=2)
    np.testing.assert_array_equal(s.mask, np.arange(batch_size)[None, :] < s.width[:, None])
    assert (np.diff(s.width) <= 0).all()
    assert s.width[0] == min(batch_size, sum(n > 1 for n in lengths))
    assert s.mask.sum() == s.n_events


def test_freed_slots_take_the_next_session_at_once():
    offsets, items = sessions([3, 2, 4, 2, 2])
    s = session_parallel(offsets, 2, items=items, order="time")
    # Steps (inputs) per session: 2, 1, 3, 1, 1. Session 1 ends after step 0, session 2 takes its slot
    # at step 1; session 0 ends after step 1, session 3 at step 2; session 3's slot gives session 4 step 3.
    first_step = {int(s.events[t, b]): int(t) for t, b in zip(*np.nonzero(s.reset), strict=True)}
    assert first_step == {0: 0, 3: 0, 5: 1, 9: 2, 11: 3}
    assert s.steps == 4


def test_time_order_follows_start_times_and_keeps_given_order_without_them():
    offsets, items = sessions([2, 2, 2, 2])
    kept = session_parallel(offsets, 1, items=items, order="time")
    np.testing.assert_array_equal(kept.events[:, 0], [0, 2, 4, 6])
    by_time = session_parallel(offsets, 1, items=items, order="time", start_times=np.array([30, 10, 40, 20]))
    np.testing.assert_array_equal(by_time.events[:, 0], [2, 6, 0, 4])


def test_shuffle_is_deterministic_by_seed_and_seeds_differ():
    offsets, items = sessions([2, 3, 4, 5, 6, 7, 8, 2, 3, 4] * 3)
    a = session_parallel(offsets, 4, items=items, order="shuffle", seed=7)
    b = session_parallel(offsets, 4, items=items, order="shuffle", seed=7)
    c = session_parallel(offsets, 4, items=items, order="shuffle", seed=8)
    np.testing.assert_array_equal(a.events, b.events)
    assert a.events.shape != c.events.shape or not np.array_equal(a.events, c.events)
    assert not np.array_equal(session_order(30, "shuffle", seed=7), session_order(30, "shuffle", seed=8))


def test_prediction_positions_follow_session_then_position():
    offsets, items = sessions([3, 2, 4])
    s = session_parallel(offsets, 2, items=items, order="shuffle", seed=0)
    positions = prediction_positions(s.events, offsets)
    assert sorted(positions[s.mask].tolist()) == list(range(6))
    # Event 3 (first of session 1) is prediction 2: session 0 has two predictions before it.
    assert positions[s.events == 3].tolist() == [2]
    assert (positions[~s.mask] == -1).all()


def test_bad_arguments_are_rejected():
    offsets, items = sessions([2, 3])
    with pytest.raises(ValueError, match="batch_size"):
        session_parallel(offsets, 0, items=items)
    with pytest.raises(ValueError, match="order"):
        session_parallel(offsets, 2, items=items, order="random")
