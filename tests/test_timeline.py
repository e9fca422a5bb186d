"""The shared timeline: cut times by event share, the candidate set, and the next-movie targets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from sbr_dagster.data import parsing, schema, timeline
from sbr_dagster.errors import InputDataError

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
    assert found.to_dicts() == [{"item_id": 10, "support": 2}]  # 11 has one rating before the cut
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
