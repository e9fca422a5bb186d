import re
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from sbr_dagster import settings
from sbr_dagster.data import cleansing, parsing, schema, sessions, source, splitting
from sbr_dagster.errors import InputDataError
from sbr_dagster.testing import synthetic

T0 = datetime(2000, 1, 1, tzinfo=UTC)


def sessions_frame(spec: list[tuple[float, list[int]]]) -> pl.DataFrame:
    """spec: one (start day, items) per session; events one minute apart, session i by user i."""
    rows = [
        (session, session, item, 4, T0 + timedelta(days=day, minutes=position))
        for session, (day, items) in enumerate(spec)
        for position, item in enumerate(items)
    ]
    frame = pl.DataFrame(
        rows, schema=["session_id", "user_id", "item_id", "rating", "timestamp"], orient="row"
    ).with_row_index("line", 1)
    return frame.select(pl.col(name).cast(dtype) for name, dtype in schema.SESSIONS.items())


def ends(frame: pl.DataFrame, source: pl.DataFrame | None = None) -> pl.Series:
    """End times of ``frame``'s sessions as they were in ``source``, before events were dropped."""
    source = (
        frame if source is None else source.filter(pl.col("session_id").is_in(frame["session_id"].implode()))
    )
    return source.group_by("session_id").agg(pl.col("timestamp").max())["timestamp"]


def assert_no_leak(result: splitting.Split, source: pl.DataFrame, min_session_length: int = 2) -> None:
    train, valid, test = result.train, result.valid, result.test
    for frame in (train, valid, test):
        assert schema.schema_errors(frame, schema.SPLIT) == []
        assert frame.height > 0
        assert frame.select(pl.col("session_id").is_sorted()).item()
        # Within a session, events stay in time order.
        assert frame.select((pl.col("timestamp").diff().over("session_id") >= timedelta(0)).all()).item()
    ids = [set(frame["session_id"]) for frame in (train, valid, test)]
    assert not ids[0] & ids[1] and not ids[0] & ids[2] and not ids[1] & ids[2]
    train_items = set(train["item_id"])
    assert set(valid["item_id"]) <= train_items
    assert set(test["item_id"]) <= train_items
    for frame in (valid, test):
        assert frame.group_by("session_id").len()["len"].min() >= min_session_length
    # Parts are decided on whole sessions, before unseen items are dropped from valid/test.
    assert ends(train, source).max() <= result.valid_cutoff <= result.test_cutoff
    assert ends(valid, source).min() >= result.valid_cutoff
    assert ends(test, source).min() >= result.test_cutoff
    index = result.item_index
    assert schema.schema_errors(index, schema.ITEM_INDEX) == []
    assert index["item_id"].to_list() == sorted(train_items)
    assert index["item_idx"].to_list() == list(range(len(train_items)))
    counts = dict(train.group_by("item_id").len().iter_rows())
    assert index.select("item_id", "support").rows() == sorted(counts.items())


@pytest.fixture(scope="module")
def cleansed(tmp_path_factory) -> pl.DataFrame:
    directory = synthetic.write_ml1m_like(tmp_path_factory.mktemp("split"), n_users=150, n_items=800, seed=5)
    events = sessions.assign_sessions(parsing.read_ratings(directory / "ratings.dat"), timedelta(hours=1))
    return cleansing.cleanse(events, min_item_support=2)[0]


def test_days_split_leaks_nothing(cleansed):
    result = splitting.split_by_days(cleansed, test_days=20, valid_days=20)
    assert_no_leak(result, cleansed)
    assert result.method == "days"
    assert ends(result.train).max() < result.valid_cutoff
    assert result.test_cutoff == cleansed["timestamp"].max() - timedelta(days=20)
    final = result.report["final"]
    assert final["test"]["events"] == result.test.height
    assert final["valid"]["sessions"] == result.valid["session_id"].n_unique()


def test_fraction_split_leaks_nothing(cleansed):
    result = splitting.split_by_fraction(cleansed, test_fraction=0.15, valid_fraction=0.1)
    assert_no_leak(result, cleansed)
    assert result.method == "fraction"
    # Many rare items: some valid/test events had items unseen in train, so the drop was exercised.
    assert result.report["valid_unseen_items"]["events_removed"] > 0
    assert result.report["test_unseen_items"]["events_removed"] > 0


def test_days_split_assigns_by_session_end_and_drops_unpredictable_events():
    frame = sessions_frame(
        [
            (0, [1, 2, 3]),  # train
            (1, [1, 2]),  # train
            (2, [2, 3]),  # train
            (8, [1, 2, 9]),  # valid: ends on day 8 >= valid cutoff (day 9 - 2); item 9 unseen in train
            (9, [3, 9]),  # valid, but only item 3 is known -> too short, dropped
            (13, [1, 3]),  # test: ends >= day 14 - 3
            (14, [2, 1, 3]),  # test
        ]
    )
    result = splitting.split_by_days(frame, test_days=3, valid_days=2)
    assert set(result.train["session_id"]) == {0, 1, 2}
    assert result.valid.select("session_id", "item_id").rows() == [(3, 1), (3, 2)]
    assert set(result.test["session_id"]) == {5, 6}
    assert result.test.filter(pl.col("session_id") == 6)["item_id"].to_list() == [2, 1, 3]
    assert result.valid_cutoff == T0 + timedelta(days=9, minutes=1) - timedelta(days=2)
    assert result.report["valid_unseen_items"] == {"events_removed": 2, "items_removed": 1}
    assert result.report["valid_short_sessions"] == {"events_removed": 1, "sessions_removed": 1}
    assert result.item_index.select("item_id", "support").rows() == [(1, 2), (2, 3), (3, 2)]
    assert_no_leak(result, frame)


def test_valid_days_count_back_from_the_last_non_test_session():
    # Nothing ends in the 5 days before the test cutoff; valid still gets the sessions before that hole.
    frame = sessions_frame([(0, [1, 2]), (1, [1, 2]), (2, [1, 2]), (3, [1, 2]), (20, [1, 2])])
    result = splitting.split_by_days(frame, test_days=10, valid_days=1.5)
    assert set(result.valid["session_id"]) == {2, 3}
    assert set(result.test["session_id"]) == {4}


def test_fraction_split_proportions_and_cutoffs():
    frame = sessions_frame([(day, [1, 2, 3]) for day in range(100)])
    result = splitting.split_by_fraction(frame, test_fraction=0.1, valid_fraction=0.2)
    assert set(result.test["session_id"]) == set(range(90, 100))
    assert set(result.valid["session_id"]) == set(range(70, 90))
    assert result.train["session_id"].n_unique() == 70
    assert result.test_cutoff == T0 + timedelta(days=90, minutes=2)
    assert result.valid_cutoff == T0 + timedelta(days=70, minutes=2)


def test_fraction_split_keeps_sessions_tied_at_a_cutoff_together():
    # ten sessions; the 2nd..4th latest end at the same moment, straddling the 20% test boundary
    days = [0, 1, 2, 3, 4, 5, 6, 7, 7, 9]
    frame = sessions_frame([(day, [1, 2]) for day in days])
    result = splitting.split_by_fraction(frame, test_fraction=0.2, valid_fraction=0.3)
    assert set(result.test["session_id"]) == {7, 8, 9}  # both sessions tied at day 7 go to test
    assert set(result.valid["session_id"]) == {5, 6}  # the 5th-latest session ends day 5: the valid cutoff
    train_ends = result.train.group_by("session_id").agg(pl.col("timestamp").max())["timestamp"]
    assert (train_ends < result.valid_cutoff).all()


def test_fraction_split_with_every_session_tied_has_nothing_to_train_on():
    frame = sessions_frame([(0, [1, 2])] * 10)
    with pytest.raises(InputDataError, match="train split is empty"):
        splitting.split_by_fraction(frame, test_fraction=0.2, valid_fraction=0.3)


def test_dispatcher_uses_the_knobs_of_its_method():
    frame = sessions_frame([(day, [1, 2]) for day in range(20)])
    by_days = splitting.split(frame, "days", test_days=2.5, valid_days=5, test_fraction=0.5)
    assert by_days.test["session_id"].n_unique() == 3
    by_fraction = splitting.split(frame, "fraction", test_days=2.5, test_fraction=0.25, valid_fraction=0.25)
    assert by_fraction.test["session_id"].n_unique() == 5
    with pytest.raises(InputDataError, match="'days' or 'fraction'"):
        splitting.split(frame, "random")


@pytest.mark.parametrize(
    ("spec", "kwargs", "message"),
    [
        ([(0, [1, 2]), (1, [1, 2])], {"test_days": 100}, "train split is empty.*test_days"),
        ([(0, [1, 2]), (5, [1, 2]), (10, [7, 8])], {"test_days": 1, "valid_days": 1}, "test split is empty"),
        ([(0, [1, 2]), (5, [3, 4]), (10, [1, 2])], {"test_days": 1, "valid_days": 1}, "valid split is empty"),
    ],
)
def test_empty_split_names_the_split_and_the_knob(spec, kwargs, message):
    with pytest.raises(InputDataError, match=message):
        splitting.split_by_days(sessions_frame(spec), **kwargs)


def test_empty_fraction_split_names_the_fraction_knob():
    # the latest session only has items never seen in train: the test split ends up empty
    frame = sessions_frame([(d, [1, 2]) for d in range(8)] + [(9, [7, 8])])
    with pytest.raises(InputDataError, match=re.escape("test split is empty") + ".*test_fraction"):
        splitting.split_by_fraction(frame, 0.1, 0.2)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda f: splitting.split_by_days(f, test_days=0), "test_days"),
        (lambda f: splitting.split_by_days(f, valid_days=-1), "valid_days"),
        (lambda f: splitting.split_by_fraction(f, test_fraction=1.0), "test_fraction"),
        (lambda f: splitting.split_by_fraction(f, valid_fraction=0), "valid_fraction"),
        (lambda f: splitting.split_by_fraction(f, 0.5, 0.5), "sum below 1"),
        (lambda f: splitting.split_by_days(f, min_session_length=1), "min_session_length"),
    ],
)
def test_rejects_bad_knobs(call, message):
    with pytest.raises(InputDataError, match=message):
        call(sessions_frame([(d, [1, 2]) for d in range(30)]))


@pytest.mark.real_data
def test_real_ml1m_fingerprint_and_whole_chain(real_ml1m_dir):
    ratings, duplicates = parsing.drop_duplicate_ratings(parsing.read_ratings(real_ml1m_dir / "ratings.dat"))
    assert duplicates == 0
    fingerprint = {
        "ratings": ratings.height,
        "users": ratings["user_id"].n_unique(),
        "items": ratings["item_id"].n_unique(),
    }
    assert fingerprint == source.ML1M_FINGERPRINT == {"ratings": 1_000_209, "users": 6_040, "items": 3_706}
    assert parsing.read_movies(real_ml1m_dir / "movies.dat").height == 3_883
    for name in settings.DEFAULT_DEFINITIONS:
        cut = sessions.sessionize(ratings, sessions.parse_definition(name))
        kept, _ = cleansing.cleanse(cut)
        assert_no_leak(splitting.split_by_days(kept), kept)
        assert_no_leak(splitting.split_by_fraction(kept), kept)
