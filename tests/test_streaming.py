"""The partitioned streaming path must produce the in-memory pipeline's tables, row for row."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from sbr_dagster import settings
from sbr_dagster.data import cleansing, parsing, schema, sessions, splitting, streaming
from sbr_dagster.errors import InputDataError
from sbr_dagster.lake import layout
from sbr_dagster.testing import synthetic

DEFINITIONS = ("gap_1h", "user_r4")
SETTINGS = {"min_session_length": 3, "min_item_support": 15, "test_days": 20, "valid_days": 15}


@pytest.fixture(scope="module")
def ratings_dat(tmp_path_factory) -> Path:
    """Generated ML-1M-like ratings plus re-ratings of earlier (user, movie) pairs, with timestamp ties."""
    directory = synthetic.write_ml1m_like(
        tmp_path_factory.mktemp("streaming"), n_users=90, n_items=160, seed=11
    )
    path = directory / "ratings.dat"
    lines = path.read_text().splitlines()
    # Every 40th line again, later in the file: a re-rating at the same time (a tie broken by line)
    # and one a day later; drop_duplicate_ratings must keep the first of each pair.
    repeats = lines[::40]
    later = [
        "::".join([*fields[:3], str(int(fields[3]) + 86_400)])
        for fields in (line.split("::") for line in lines[5::40])
    ]
    path.write_text("\n".join([*lines, *repeats, *later]) + "\n")
    return path


def eager(ratings_dat: Path) -> dict:
    """The in-memory pipeline's chain, as the Dagster assets run it."""
    ratings, _ = parsing.drop_duplicate_ratings(parsing.read_ratings(ratings_dat))
    tables = {"ratings": ratings}
    for name in DEFINITIONS:
        cut = sessions.sessionize(ratings, sessions.parse_definition(name))
        cleansed, rounds = cleansing.cleanse(
            cut, SETTINGS["min_session_length"], SETTINGS["min_item_support"]
        )
        split = splitting.split_by_days(
            cleansed, SETTINGS["test_days"], SETTINGS["valid_days"], SETTINGS["min_session_length"]
        )
        tables[name] = {
            "sessions": cut,
            "cleansed": cleansed,
            "rounds": rounds,
            "split": split,
        }
    return tables


@pytest.fixture(scope="module")
def expected(ratings_dat) -> dict:
    return eager(ratings_dat)


def lake_files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


def table(root: Path, definition: str, name: str) -> Path:
    """Where the lake keeps ``definition``'s table ``name``: asked of ``layout``, as the pipeline does."""
    return layout.table_path(root, layout.definition_key(definition, name))


@pytest.mark.parametrize("partition_events", [10**9, 400])
def test_streaming_tables_equal_the_in_memory_pipeline(ratings_dat, expected, tmp_path, partition_events):
    summary = streaming.preprocess_streaming(
        ratings_dat, tmp_path, DEFINITIONS, partition_events=partition_events, **SETTINGS
    )
    if partition_events == 400:
        assert summary["partitions"] > 5  # many partitions: ids, support and cut-offs must join up
    else:
        assert summary["partitions"] == 1
    assert summary["duplicates"] > 0
    ratings = pl.read_parquet(tmp_path / "raw" / "ratings.parquet")
    assert schema.schema_errors(ratings, schema.RATINGS) == []
    assert ratings.equals(expected["ratings"])
    for name in DEFINITIONS:
        want = expected[name]
        assert pl.read_parquet(table(tmp_path, name, "sessions")).equals(want["sessions"])
        assert pl.read_parquet(table(tmp_path, name, "cleansed")).equals(want["cleansed"])
        assert summary[name]["cleansing_rounds"] == want["rounds"]
        split = want["split"]
        for part in schema.SPLITS:
            assert pl.read_parquet(table(tmp_path, name, part)).equals(getattr(split, part)), (name, part)
        assert pl.read_parquet(table(tmp_path, name, "item_index")).equals(split.item_index)
        assert (summary[name]["valid_cutoff"], summary[name]["test_cutoff"]) == (
            split.valid_cutoff,
            split.test_cutoff,
        )
        assert summary[name]["final"] == split.report["final"]
    # The fixture makes cleansing work for it: more than one round, so the fixpoint loop is exercised.
    assert len(expected["gap_1h"]["rounds"]) > 1


def test_split_drops_the_same_unpredictable_events_across_partitions(tmp_path):
    # One session per user (definition "user"), events a minute apart; days from DAY0.
    spec = {
        1: (0, [1, 2, 3]),  # train
        2: (1, [1, 2]),  # train
        3: (2, [2, 3]),  # train
        4: (8, [1, 2, 9]),  # valid; item 9 unseen in train
        5: (9, [3, 9]),  # valid, too short without item 9
        6: (13, [1, 3]),  # test
        7: (14, [2, 1, 3]),  # test; its last event sets the test cutoff to day 11 + 2 min
        8: (11, [1, 2, 8]),  # test only through unseen item 8: ends before the cutoff without it
        9: (7 - 1 / 1440, [3, 1, 7]),  # valid only through unseen item 7
    }
    day0, lines = 978_300_000, []
    for user, (day, items) in spec.items():
        lines += [f"{user}::{item}::4::{int(day0 + day * 86_400 + 60 * k)}" for k, item in enumerate(items)]
    path = tmp_path / "ratings.dat"
    path.write_text("\n".join(lines) + "\n")
    cleansed, _ = cleansing.cleanse(
        sessions.sessionize(parsing.read_ratings(path), sessions.parse_definition("user")), 2, 1
    )
    want = splitting.split_by_days(cleansed, test_days=3, valid_days=2)
    for part in ("valid", "test"):  # every kind of removal happens, so each is compared below
        assert want.report[f"{part}_unseen_items"]["events_removed"] > 0
        assert want.report[f"{part}_ended_before_cutoff"]["sessions_removed"] == 1
    assert want.report["valid_short_sessions"]["sessions_removed"] == 1

    summary = streaming.preprocess_streaming(
        path, tmp_path / "lake", ["user"], min_item_support=1, test_days=3, valid_days=2, partition_events=2
    )
    assert summary["partitions"] == len(spec)
    for part in schema.SPLITS:
        assert pl.read_parquet(table(tmp_path / "lake", "user", part)).equals(getattr(want, part))
    assert pl.read_parquet(table(tmp_path / "lake", "user", "item_index")).equals(want.item_index)
    assert summary["user"]["final"] == want.report["final"]


def test_writes_only_the_lake_tables_and_leaves_no_temporary_files(ratings_dat, tmp_path):
    streaming.preprocess_streaming(ratings_dat, tmp_path, ["gap_1h"], partition_events=500, **SETTINGS)
    names = ("sessions", "cleansed", "train", "valid", "test", "item_index")
    files = {table(tmp_path, "gap_1h", name).relative_to(tmp_path) for name in names}
    folders = {parent for path in files for parent in path.parents if parent != Path(".")}
    assert lake_files(tmp_path) == {"raw", "raw/ratings.parquet"} | {str(p) for p in files | folders}


def test_partitions_left_by_a_killed_run_are_removed(ratings_dat, tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    leftover = tmp_path / f".streaming.{int(dead.stdout)}.abc123"
    leftover.mkdir()
    (leftover / "sessions-00000.arrow").write_bytes(b"half a partition")
    streaming.preprocess_streaming(ratings_dat, tmp_path, ["gap_1h"], **SETTINGS)
    assert not leftover.exists()
    assert table(tmp_path, "gap_1h", "test").is_file()


def test_failure_leaves_earlier_tables_untouched_and_no_temporary_files(ratings_dat, tmp_path):
    streaming.preprocess_streaming(ratings_dat, tmp_path, ["gap_1h"], partition_events=500, **SETTINGS)
    before = {path: path.read_bytes() for path in tmp_path.rglob("*.parquet")}
    with pytest.raises(InputDataError, match="train split is empty"):
        streaming.preprocess_streaming(
            ratings_dat, tmp_path, ["gap_1h"], partition_events=500, **{**SETTINGS, "test_days": 10_000}
        )
    assert {path: path.read_bytes() for path in tmp_path.rglob("*.parquet")} == before
    assert not [path for path in tmp_path.rglob(".*")]


def test_nothing_left_after_cleansing_is_the_in_memory_split_error(ratings_dat, tmp_path):
    too_strict = {**SETTINGS, "min_item_support": 10_000}
    with pytest.raises(InputDataError) as in_memory:
        ratings, _ = parsing.drop_duplicate_ratings(parsing.read_ratings(ratings_dat))
        eager_sessions = sessions.sessionize(ratings, sessions.parse_definition("gap_1h"))
        cleansing.cleanse(eager_sessions, too_strict["min_session_length"], too_strict["min_item_support"])
    with pytest.raises(InputDataError) as partitioned:
        streaming.preprocess_streaming(ratings_dat, tmp_path, ["gap_1h"], partition_events=500, **too_strict)
    assert str(partitioned.value) == str(in_memory.value)
    assert "cleansing removed every event: min_item_support=10000" in str(partitioned.value)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("7::12::4", "found 3 in '7::12::4'"),
        ("7::12::9::978300760", "rating 9 is outside 1..5"),
        ("7::x::3::978300760", "item_id 'x' is not an integer"),
        ("7::12::3::978300760::1", "found 5"),
        ("7,12,3,978300760", "separated by commas"),
        ("", "found 0 in ''"),
    ],
)
def test_first_bad_line_gets_the_in_memory_readers_message(tmp_path, line, problem):
    path = tmp_path / "ratings.dat"
    path.write_text(f"1::10::5::978300760\n1::11::3::978300761\n2::10::4::978300762\n{line}\n3::1::1::1\n")
    with pytest.raises(InputDataError) as in_memory:
        parsing.read_ratings(path)
    with pytest.raises(InputDataError) as streamed:
        streaming.preprocess_streaming(path, tmp_path / "lake")
    assert str(streamed.value) == str(in_memory.value)
    assert str(streamed.value).startswith(f"{path}, line 4: ")
    assert problem in str(streamed.value)
    assert not (tmp_path / "lake" / "raw").exists()
    assert lake_files(tmp_path / "lake") == set()


def test_byte_order_mark_and_crlf_read_as_the_in_memory_reader_reads_them(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_bytes(b"\xef\xbb\xbf1::10::5::978300760\r\n1::11::3::978300761\r\n2::10::4::978300762\r\n")
    summary = streaming.preprocess_streaming(path, tmp_path / "lake", definitions=())  # ratings only
    assert summary == {"lines": 3, "duplicates": 0, "partitions": 1}
    ratings = pl.read_parquet(tmp_path / "lake" / "raw" / "ratings.parquet")
    assert ratings.equals(parsing.read_ratings(path))
    assert ratings["user_id"].to_list() == [1, 1, 2]


def test_unreadable_inputs_are_user_errors(tmp_path):
    with pytest.raises(InputDataError, match="does not exist"):
        streaming.preprocess_streaming(tmp_path / "missing.dat", tmp_path / "lake")
    (tmp_path / "empty.dat").write_bytes(b"")
    with pytest.raises(InputDataError, match="is empty"):
        streaming.preprocess_streaming(tmp_path / "empty.dat", tmp_path / "lake")
    (tmp_path / "latin1.dat").write_bytes("1::10::5::978300760\n1::1\xe9::3::1\n".encode("latin-1"))
    with pytest.raises(InputDataError, match="not text"):
        streaming.preprocess_streaming(tmp_path / "latin1.dat", tmp_path / "lake")
    with pytest.raises(InputDataError, match="partition_events"):
        streaming.preprocess_streaming(tmp_path / "empty.dat", tmp_path / "lake", partition_events=0)
    with pytest.raises(InputDataError, match="unknown session definition"):
        streaming.preprocess_streaming(tmp_path / "empty.dat", tmp_path / "lake", ["gap_1w"])


@pytest.mark.real_data
def test_real_movielens_tables_equal_the_in_memory_pipeline(real_ml1m_dir, tmp_path):
    ratings_dat = real_ml1m_dir / "ratings.dat"
    ratings, _ = parsing.drop_duplicate_ratings(parsing.read_ratings(ratings_dat))
    summary = streaming.preprocess_streaming(
        ratings_dat, tmp_path, settings.DEFAULT_DEFINITIONS, partition_events=200_000
    )
    assert summary["partitions"] >= 5
    assert pl.read_parquet(tmp_path / "raw" / "ratings.parquet").equals(ratings)
    for name in settings.DEFAULT_DEFINITIONS:
        cleansed, rounds = cleansing.cleanse(sessions.sessionize(ratings, sessions.parse_definition(name)))
        split = splitting.split_by_days(cleansed)
        assert pl.read_parquet(table(tmp_path, name, "cleansed")).equals(cleansed)
        assert summary[name]["cleansing_rounds"] == rounds
        for part in schema.SPLITS:
            assert pl.read_parquet(table(tmp_path, name, part)).equals(getattr(split, part))
        assert pl.read_parquet(table(tmp_path, name, "item_index")).equals(split.item_index)


@pytest.mark.parametrize(
    ("timestamp", "problem"),
    [
        (4102444800, "timestamp 4102444800 (2100-01-01 00:00:00 UTC) is after the latest plausible time"),
        (0, "timestamp 0 (1970-01-01 00:00:00 UTC) is before the earliest plausible time 1995-01-01"),
    ],
)
def test_implausible_timestamp_gets_the_in_memory_readers_message(tmp_path, timestamp, problem):
    path = tmp_path / "ratings.dat"
    path.write_text(f"1::10::5::978300760\n1::11::3::978300761\n2::10::4::{timestamp}\n")
    window = {"latest": datetime(2020, 1, 1, tzinfo=UTC)}
    with pytest.raises(InputDataError) as in_memory:
        parsing.read_ratings(path, **window)
    with pytest.raises(InputDataError) as streamed:
        streaming.preprocess_streaming(path, tmp_path / "lake", **window)
    assert str(streamed.value) == str(in_memory.value)
    assert str(streamed.value).startswith(f"{path}, line 3: {problem}")
    assert lake_files(tmp_path / "lake") == set()
    # By default the latest plausible time is now.
    with pytest.raises(InputDataError, match=r"\(the time of this run\)" if timestamp else "earliest_rating"):
        streaming.preprocess_streaming(path, tmp_path / "lake")


def test_window_keywords_widen_the_streaming_reader_as_the_in_memory_one(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_text("1::10::5::1\n1::11::3::4102444800\n2::10::4::978300762\n")
    window = {"earliest": datetime(1970, 1, 1, tzinfo=UTC), "latest": datetime(2101, 1, 1, tzinfo=UTC)}
    summary = streaming.preprocess_streaming(path, tmp_path / "lake", definitions=(), **window)
    assert summary["lines"] == 3
    ratings = pl.read_parquet(tmp_path / "lake" / "raw" / "ratings.parquet")
    assert ratings.equals(parsing.read_ratings(path, **window))
    with pytest.raises(InputDataError, match="latest_rating must be a timezone-aware datetime"):
        streaming.preprocess_streaming(path, tmp_path / "lake", latest=datetime(2101, 1, 1))
