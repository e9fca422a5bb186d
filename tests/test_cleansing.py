from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from sbr_dagster.data import cleansing, schema
from sbr_dagster.errors import InputDataError

T0 = datetime(2000, 1, 1, tzinfo=UTC)


def sessions_of(items_per_session: list[str]) -> pl.DataFrame:
    """One session per string, one event per letter; item id = letter's ordinal."""
    rows = [
        (session, session, ord(letter), 4, T0 + timedelta(seconds=position))
        for session, items in enumerate(items_per_session)
        for position, letter in enumerate(items)
    ]
    frame = pl.DataFrame(
        rows, schema=["session_id", "user_id", "item_id", "rating", "timestamp"], orient="row"
    ).with_row_index("line", 1)
    return frame.select(pl.col(name).cast(dtype) for name, dtype in schema.SESSIONS.items())


def letters(frame: pl.DataFrame) -> list[str]:
    return [
        "".join(chr(i) for i in items)
        for items in frame.group_by("session_id", maintain_order=True).agg("item_id")["item_id"].to_list()
    ]


def test_chain_needs_several_rounds_to_reach_the_fixpoint():
    # w is rare -> C shrinks to 1 and goes -> z becomes rare -> B goes -> y rare -> A goes -> x rare.
    frame = sessions_of(["xy", "yz", "zw", "xpq", "pq"])
    kept, report = cleansing.cleanse(frame, min_session_length=2, min_item_support=2)
    assert letters(kept) == ["pq", "pq"]
    assert [r["round"] for r in report] == [1, 2, 3, 4]
    assert [r["events_removed"] for r in report] == [2, 2, 2, 1]
    assert [r["sessions_removed"] for r in report] == [1, 1, 1, 0]
    assert [r["items_removed"] for r in report] == [1, 1, 1, 1]
    assert sum(r["events_removed"] for r in report) == frame.height - kept.height


def test_result_satisfies_both_thresholds_and_is_a_fixpoint():
    frame = sessions_of(["abc", "abd", "ae", "bcd", "cf", "abcdg", "h", "ab"])
    kept, first_report = cleansing.cleanse(frame, min_session_length=3, min_item_support=3)
    assert first_report
    assert kept.group_by("session_id").len()["len"].min() >= 3
    assert kept.group_by("item_id").len()["len"].min() >= 3
    again, report = cleansing.cleanse(kept, min_session_length=3, min_item_support=3)
    assert report == []
    assert again.equals(kept)


def test_keeps_schema_and_order_and_clean_data_untouched():
    frame = sessions_of(["abc", "cab", "bca"])
    kept, report = cleansing.cleanse(frame, min_session_length=2, min_item_support=3)
    assert report == []
    assert kept.equals(frame)
    kept, _ = cleansing.cleanse(sessions_of(["abc", "cab", "bcaz"]), min_session_length=2, min_item_support=3)
    assert schema.schema_errors(kept, schema.SESSIONS) == []
    assert kept["line"].is_sorted()
    assert letters(kept) == ["abc", "cab", "bca"]


def test_everything_removed_names_the_thresholds_that_did_it():
    with pytest.raises(InputDataError) as caught:
        cleansing.cleanse(sessions_of(["ab", "cd"]), min_item_support=2)
    message = str(caught.value)
    assert message.startswith("cleansing removed every event: min_item_support=2 and min_session_length=2")
    assert "the most-rated item has 1 events" in message and "resources.preprocessing.config" in message


def test_only_single_event_sessions_name_the_session_definition_as_the_cause():
    with pytest.raises(InputDataError, match=r"100% of the 3 sessions have fewer than 2 events.*cuts less"):
        cleansing.cleanse(sessions_of(["a", "b", "c"]), min_item_support=1)


def test_no_events_at_all_is_its_own_error():
    with pytest.raises(InputDataError, match="no events to cleanse"):
        cleansing.cleanse(sessions_of(["ab"]).head(0))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"min_session_length": 1}, "min_session_length"),
        ({"min_session_length": 2.5}, "min_session_length"),
        ({"min_item_support": 0}, "min_item_support"),
        ({"min_item_support": True}, "min_item_support"),
    ],
)
def test_rejects_thresholds_that_make_no_sense(kwargs, name):
    with pytest.raises(InputDataError, match=name):
        cleansing.cleanse(sessions_of(["ab"]), **kwargs)
