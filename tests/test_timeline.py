"""The shared timeline: cut times by event share, the candidate set, and the next-movie targets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from sbr_dagster.data import parsing, schema, timeline
from sbr_dagster.data.arrays import Sessions
from sbr_dagster.errors import InputDataError
from sbr_dagster.models import registry

T0 = datetime(2000, 6, 1, tzinfo=UTC)


def ratings(rows: list[tuple[int, int, int, int]]) -> pl.DataFrame:
    """(user, item, rating, day) rows, file order = row order."""
    return pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "rating": [r[2] for r in rows],
            "timestamp": [T0 + timedelta(days=r[3]) for r in rows],
            "line": list(range(1, len(rows) + 1)),
        }
    ).select(pl.col(name).cast(dtype) for name, dtype in schema.RATINGS.items())


def test_cut_times_leave_the_latest_shares_of_events_and_ties_go_later():
    frame = ratings([(1, i, 4, day) for i, day in enumerate([0, 1, 2, 3, 4, 5, 6, 7, 8, 8])])
    cuts = timeline.cut_times(frame, test_fraction=0.2, valid_fraction=0.2)
    assert cuts.test == T0 + timedelta(days=8)  # the last 2 of 10 events (both on day 8)
    assert cuts.valid == T0 + timedelta(days=6)
    at_or_after = frame.filter(pl.col("timestamp") >= cuts.test).height
    assert at_or_after == 2


def test_candidates_count_every_rating_before_the_validation_cut():
    frame = ratings([(1, 10, 1, 0), (2, 10, 5, 1), (3, 11, 3, 2), (1, 11, 2, 9), (2, 12, 4, 9)])
    cuts = timeline.Cuts(valid=T0 + timedelta(days=5), test=T0 + timedelta(days=9))
    found = timeline.candidates(frame, cuts, min_item_support=2)
    # 11 has one rating before the cut
    assert found.to_dicts() == [{"item_id": 10, "item_idx": 0, "support": 2}]
    with pytest.raises(InputDataError, match="no movie has 3 ratings before the validation cut"):
        timeline.candidates(frame, cuts, min_item_support=3)


def test_targets_are_later_events_of_users_with_history_among_candidates_whatever_the_rating():
    frame = ratings(
        [
            (1, 10, 5, 0),
            (1, 11, 1, 6),  # valid, rated 1: still a target
            (1, 12, 4, 9),  # test, liked
            (2, 10, 3, 7),  # the user's first event: nothing to predict from
            (2, 13, 4, 8),  # not a candidate
            (2, 11, 4, 9),
            (3, 10, 4, 1),  # before the cut: context only
        ]
    )
    cuts = timeline.Cuts(valid=T0 + timedelta(days=5), test=T0 + timedelta(days=9))
    found = timeline.targets(frame, cuts, pl.Series([10, 11, 12]))
    assert found.select("split", "user_id", "item_id", "rating", "liked").rows() == [
        ("valid", 1, 11, 1, False),
        ("test", 1, 12, 4, True),
        ("test", 2, 11, 4, True),
    ]
    assert timeline.training_events(frame, cuts)["line"].to_list() == [1, 7]


@pytest.mark.parametrize(("test", "valid"), [(0, 0.1), (0.1, 1.0), (0.6, 0.5), (True, 0.1)])
def test_impossible_fractions_are_user_errors(test, valid):
    with pytest.raises(InputDataError, match="fraction"):
        timeline.cut_times(ratings([(1, 1, 4, 0), (1, 2, 4, 1)]), test_fraction=test, valid_fraction=valid)


@pytest.mark.real_data
def test_real_ml1m_gives_many_test_targets_from_many_users(real_ml1m_dir):
    frame, _ = parsing.drop_duplicate_ratings(parsing.read_ratings(real_ml1m_dir / "ratings.dat"))
    cuts = timeline.cut_times(frame)
    items = timeline.candidates(frame, cuts, min_item_support=5)["item_id"]
    found = timeline.targets(frame, cuts, items)
    test = found.filter(split="test")
    assert test.height >= 80_000 and test["user_id"].n_unique() >= 1_000
    assert found.filter(split="valid").height >= 80_000


def _stream(rows, *, gap_days=None, min_rating=None, candidates=(10, 11, 12), cut_day=5, test_day=9):
    frame = ratings(rows)
    cuts = timeline.Cuts(valid=T0 + timedelta(days=cut_day), test=T0 + timedelta(days=test_day))
    index = pl.DataFrame({"item_id": list(candidates), "item_idx": list(range(len(candidates)))}).cast(
        {"item_id": pl.Int32, "item_idx": pl.Int32}
    )
    shared = timeline.targets(frame, cuts, pl.Series(list(candidates)))
    gap = None if gap_days is None else timedelta(days=gap_days)
    return timeline.replay(frame, index, shared, gap=gap, min_rating=min_rating)


ROWS = [
    (1, 10, 5, 0),  # user 1: session 1
    (1, 13, 4, 1),  # not a candidate: never fed, never a target
    (1, 11, 2, 6),  # valid target; rated 2
    (1, 12, 4, 20),  # a 14-day pause: a new session under a 10-day gap; test target
    (2, 12, 4, 6),  # user 2's first event: context only
    (2, 10, 3, 7),  # valid target
]


def test_the_replay_stream_marks_resets_feeds_and_the_shared_targets():
    stream = _stream(ROWS, gap_days=10, min_rating=3)
    assert stream.offsets.tolist() == [0, 4, 6]
    assert stream.items.tolist() == [0, -1, 1, 2, 2, 0]
    assert stream.session_start.tolist() == [True, False, False, True, True, False]
    assert stream.feed.tolist() == [True, False, False, True, True, True]  # rating 2 is not fed
    assert stream.target.tolist() == [False, False, True, True, False, True]


def test_some_users_of_a_stream_are_the_stream_of_those_users():
    rows = [*ROWS, (3, 11, 4, 2), (3, 12, 5, 8)]
    whole = _stream(rows, gap_days=10, min_rating=3)
    part = whole.users(1, 3)
    alone = _stream([r for r in rows if r[0] in (2, 3)], gap_days=10, min_rating=3)
    for name in ("items", "offsets", "session_start", "feed", "target", "ratings", "timestamps"):
        np.testing.assert_array_equal(getattr(part, name), getattr(alone, name), err_msg=name)
    np.testing.assert_array_equal(part.lines, whole.lines[whole.offsets[1] :])  # the same events


def test_a_last_item_model_sees_the_last_fed_event_of_the_current_session():
    stream = _stream(ROWS, gap_days=10, min_rating=3)
    assert timeline.last_fed_before(stream).tolist() == [-1, 0, 0, -1, -1, 4]


def test_seen_items_are_the_viewers_earlier_candidates_but_never_the_target_itself():
    stream = _stream([(1, 10, 4, 0), (1, 11, 4, 1), (1, 10, 4, 6), (1, 12, 4, 7)])
    rows, items = np.nonzero(timeline.seen_mask(stream, np.array([2, 3]), 3))
    assert list(zip(rows.tolist(), items.tolist(), strict=True)) == [(0, 1), (1, 0), (1, 1)]


def random_stream(seed: int, *, new_session: float = 0.0, fed: float = 1.0):
    """40 viewers' timelines over 12 candidates (-1: a movie outside them), with session starts and
    unfed events at the given rates, and half their candidate events in shuffled order (as the GRU's
    chunks give them)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 30, 40)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n = int(offsets[-1])
    items = np.where(rng.random(n) < 0.1, -1, rng.integers(0, 12, n)).astype(np.int32)
    stream = timeline.Replay(
        items=items, offsets=offsets, session_start=rng.random(n) < new_session,
        feed=(items >= 0) & (rng.random(n) < fed), target=np.zeros(n, bool), ratings=np.full(n, 4, np.int8),
    )  # fmt: skip
    return stream, rng.permutation(np.flatnonzero(items >= 0))[: n // 2]


def test_seen_mask_equals_a_brute_force_lookup_for_targets_in_any_order():
    stream, events = random_stream(7)
    items, offsets = stream.items, stream.offsets
    mask = timeline.seen_mask(stream, events, 12)
    for row, event in enumerate(events):
        user = np.searchsorted(offsets, event, side="right") - 1
        seen = set(items[offsets[user] : event].tolist()) - {-1, int(items[event])}
        assert set(np.flatnonzero(mask[row]).tolist()) == seen, (row, event)


def test_session_seen_mask_holds_only_what_the_current_session_fed():
    stream, events = random_stream(11, new_session=0.15, fed=0.8)
    items, offsets, starts, feed = stream.items, stream.offsets, stream.session_start, stream.feed
    mask = timeline.session_seen_mask(stream, events, 12)
    for row, event in enumerate(events):
        user_begin = offsets[np.searchsorted(offsets, event, side="right") - 1]
        begin = max([user_begin, *np.flatnonzero(starts[: event + 1]).tolist()])
        fed = set(items[begin:event][feed[begin:event]].tolist())  # a repeated target is marked too
        assert set(np.flatnonzero(mask[row]).tolist()) == fed, (row, event)
    own = np.zeros_like(mask)
    own[np.arange(events.size), items[events]] = True
    assert own[mask].any()  # the data repeats movies: some target was fed earlier in its session
    assert not (mask & ~own & ~timeline.seen_mask(stream, events, 12)).any()  # else the viewer's


@pytest.mark.parametrize("name", ["pop", "markov", "sr", "item_knn"])
@pytest.mark.parametrize(("gap_days", "min_rating"), [(None, None), (2, 4)])
def test_baseline_replay_ranks_equal_a_brute_force_replay(name, gap_days, min_rating):
    rng = np.random.default_rng(3)
    rows = [
        (user, int(item), int(stars), day)
        for user in range(1, 9)
        for day, (item, stars) in enumerate(
            zip(rng.integers(10, 16, 12), rng.integers(1, 6, 12), strict=True)
        )
    ]
    stream = _stream(rows, gap_days=gap_days, min_rating=min_rating, candidates=tuple(range(10, 16)))
    train = Sessions(
        np.array([0, 1, 2, 3, 4, 5, 0, 2, 4], np.int32), np.array([0, 6, 9]), np.zeros(9, np.int8)
    )
    model = registry.build(name)
    model.fit(train, 6)
    everything, unseen = model.rank_replay(stream)
    expected_all, expected_unseen = [], []
    for event in stream.target_events:
        user = np.searchsorted(stream.offsets, event, side="right") - 1
        begin = max(
            [e for e in range(stream.offsets[user], event + 1) if stream.session_start[e]], default=event
        )
        fed = [e for e in range(begin, event) if stream.feed[e]]
        last = stream.items[fed[-1]] if fed else -1
        scores = np.asarray(model.scores(np.array([last])))[0]
        order = list(np.lexsort((model.tie_order, -scores)))
        target = stream.items[event]
        expected_all.append(order.index(target) + 1)
        seen = set(stream.items[stream.offsets[user] : event].tolist()) - {target, -1}
        expected_unseen.append([i for i in order if i not in seen].index(target) + 1)
    assert everything.tolist() == expected_all
    assert unseen.tolist() == expected_unseen
    assert (unseen <= everything).all()
