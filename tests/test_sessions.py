import re
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from sbr_dagster import settings
from sbr_dagster.data import schema, sessions
from sbr_dagster.errors import InputDataError

T0 = datetime(2000, 1, 1, tzinfo=UTC)


def ratings(rows):
    """rows: (user, item, rating, seconds after T0); line = position in ``rows`` (1-based)."""
    return pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "rating": [r[2] for r in rows],
            "timestamp": [T0 + timedelta(seconds=r[3]) for r in rows],
            "line": list(range(1, len(rows) + 1)),
        },
        schema=schema.RATINGS,
    )


@pytest.mark.parametrize(
    ("name", "gap", "min_rating"),
    [
        ("user", None, None),
        ("gap_30m", timedelta(minutes=30), None),
        ("gap_1h", timedelta(hours=1), None),
        ("gap_1d", timedelta(days=1), None),
        ("gap_90s", timedelta(seconds=90), None),
        ("gap_1h_r4", timedelta(hours=1), 4),
        ("user_r1", None, 1),
    ],
)
def test_parse_definition(name, gap, min_rating):
    assert sessions.parse_definition(name) == sessions.SessionDefinition(name, gap, min_rating)


@pytest.mark.parametrize(
    "name", ["", "users", "gap_30", "gap_m", "gap_0m", "gap_1w", "gap_1h_r6", "gap_1h_r", "GAP_1H"]
)
def test_parse_definition_rejects_with_grammar(name):
    with pytest.raises(InputDataError, match=re.escape("gap_<N><s|m|h|d>")):
        sessions.parse_definition(name)


def test_default_definitions_parse():
    assert [sessions.parse_definition(n).name for n in settings.DEFAULT_DEFINITIONS] == list(
        settings.DEFAULT_DEFINITIONS
    )


def test_gap_equal_to_threshold_stays_and_one_second_more_splits():
    frame = ratings([(1, 10, 5, 0), (1, 11, 5, 3600), (1, 12, 5, 7201)])
    result = sessions.assign_sessions(frame, timedelta(hours=1))
    assert schema.schema_errors(result, schema.SESSIONS) == []
    assert result["session_id"].to_list() == [0, 0, 1]


def test_user_change_splits_even_at_the_same_time():
    frame = ratings([(1, 10, 5, 0), (2, 10, 5, 0), (2, 11, 5, 1)])
    for gap in (None, timedelta(days=1)):
        result = sessions.assign_sessions(frame, gap)
        assert result["session_id"].to_list() == [0, 1, 1]
        assert result["user_id"].to_list() == [1, 2, 2]


def test_timestamp_ties_keep_file_order_and_output_is_time_ordered():
    # Lines 1..4: user 1 events out of time order in the file, two of them tied at t=50.
    frame = ratings([(1, 30, 3, 100), (1, 20, 4, 50), (1, 21, 4, 50), (1, 10, 1, 0)])
    result = sessions.assign_sessions(frame, None)
    assert result["item_id"].to_list() == [10, 20, 21, 30]
    assert result["line"].to_list() == [4, 2, 3, 1]
    assert result["session_id"].to_list() == [0, 0, 0, 0]


def test_session_ids_unique_across_users_in_user_then_time_order():
    frame = ratings([(2, 10, 5, 0), (1, 11, 5, 0), (2, 12, 5, 10_000), (1, 13, 5, 10_000), (3, 14, 5, 5)])
    result = sessions.assign_sessions(frame, timedelta(hours=1))
    assert result.select("user_id", "session_id").rows() == [(1, 0), (1, 1), (2, 2), (2, 3), (3, 4)]
    assert result.group_by("session_id").agg(pl.col("user_id").n_unique())["user_id"].max() == 1
    # Whole-history sessions: one per user.
    assert sessions.assign_sessions(frame, None)["session_id"].to_list() == [0, 0, 1, 1, 2]


def test_rating_policy_cuts_on_all_activity_then_filters():
    # The 1-star event at t=3000 bridges two liked events 6000 s apart: it keeps them in one session.
    frame = ratings([(1, 10, 5, 0), (1, 11, 1, 3000), (1, 12, 4, 6000), (1, 13, 2, 20_000)])
    cut = sessions.assign_sessions(frame, timedelta(hours=1))
    kept = sessions.apply_rating_policy(cut, 4)
    assert kept["item_id"].to_list() == [10, 12]
    assert kept["session_id"].to_list() == [0, 0]
    assert kept.columns == list(schema.SESSIONS)
    assert sessions.apply_rating_policy(cut, None).equals(cut)
    assert sessions.apply_rating_policy(cut, 1).equals(cut)
    with pytest.raises(InputDataError, match=re.escape("1..5")):
        sessions.apply_rating_policy(cut, 6)


def test_sessionize_definition_rating_wins_over_fallback():
    frame = ratings([(1, 10, 5, 0), (1, 11, 3, 10), (1, 12, 4, 20)])
    assert sessions.sessionize(frame, sessions.parse_definition("user_r5"), 3)["item_id"].to_list() == [10]
    assert sessions.sessionize(frame, sessions.parse_definition("user"), 4)["item_id"].to_list() == [10, 12]


@pytest.mark.parametrize(
    "name",
    [
        "gap_99999999999999999999d",  # too large for a timedelta: was a raw OverflowError
        "gap_999999999d_r4",
        "gap_36526d",  # one day past the largest gap
        "gap_876601h",
        "gap_3155760001s",
        "gap_" + "9" * 5_000 + "m",  # too many digits for int()
    ],
)
def test_absurd_gap_names_the_definition_and_the_largest_gap(name):
    with pytest.raises(InputDataError) as caught:
        sessions.parse_definition(name)
    message = str(caught.value)
    assert message.startswith(f"session definition {name[:40]!r}")
    assert "has a gap longer than the largest allowed gap, gap_36525d (100 years)" in message
    assert "'user' for one session per user" in message
    assert len(message) < 250


def test_largest_gap_and_leading_zeros_are_accepted():
    assert sessions.parse_definition("gap_36525d").gap == sessions.MAX_GAP == timedelta(days=36_525)
    assert sessions.parse_definition("gap_876600h").gap == sessions.MAX_GAP
    assert sessions.parse_definition("gap_0030m").gap == timedelta(minutes=30)
    with pytest.raises(InputDataError, match="unknown session definition 'gap_000m'"):
        sessions.parse_definition("gap_000m")
