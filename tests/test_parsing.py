from datetime import UTC, datetime

import polars as pl
import pytest

from sbr_dagster.data import parsing, schema
from sbr_dagster.errors import InputDataError


def write(tmp_path, name, content: str, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(content.encode(encoding))
    return path


def test_read_ratings_types_values_and_file_order(tmp_path):
    path = write(tmp_path, "ratings.dat", "2::10::5::978300760\n1::20::3::0\r\n1::10::1::978300761\n")
    ratings = parsing.read_ratings(path)
    assert schema.schema_errors(ratings, schema.RATINGS) == []
    assert ratings["user_id"].to_list() == [2, 1, 1]
    assert ratings["item_id"].to_list() == [10, 20, 10]
    assert ratings["rating"].to_list() == [5, 3, 1]
    assert ratings["line"].to_list() == [1, 2, 3]
    assert ratings["timestamp"][0] == datetime(2000, 12, 31, 22, 12, 40, tzinfo=UTC)
    assert ratings["timestamp"][1] == datetime(1970, 1, 1, tzinfo=UTC)


def test_read_ratings_without_trailing_newline(tmp_path):
    path = write(tmp_path, "ratings.dat", "1::10::5::100\n1::11::4::101")
    assert parsing.read_ratings(path).height == 2


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        ("1::10::5::100\n1,11,4,101\n", 2, "commas"),
        ("1::10::5::100\n1\t11\t4\t101\n", 2, "tabs"),
        ("1:10:5:100\n", 1, "single colons"),
        ("1::10::5::100\n1::11::4\n", 2, "found 3"),
        ("1::10::5::100\n1::11::4::101::7\n", 2, "found 5"),
        ("1::10::5::100\n\n1::11::4::101\n", 2, "found 0"),
        ("1::10::5::100\n1::11::4::101\nx::12::4::102\n", 3, "user_id 'x'"),
        ("1::ten::5::100\n", 1, "item_id 'ten'"),
        ("1::10::five::100\n", 1, "rating 'five'"),
        ("1::10::5::2000-01-01\n", 1, "timestamp '2000-01-01'"),
        ("1::10::5::100\n1::11::6::101\n", 2, "rating 6 is outside 1..5"),
        ("1::10::0::100\n", 1, "rating 0 is outside 1..5"),
        ("1::10::5::978300760000\n", 1, "not Unix epoch seconds"),
        ("0::10::5::100\n", 1, "user_id/item_id"),
    ],
)
def test_read_ratings_names_file_line_and_text(tmp_path, content, line, fragment):
    path = write(tmp_path, "ratings.dat", content)
    with pytest.raises(InputDataError) as caught:
        parsing.read_ratings(path)
    message = str(caught.value)
    assert str(path) in message
    assert f"line {line}:" in message
    assert fragment in message


def test_read_ratings_missing_empty_and_directory(tmp_path):
    with pytest.raises(InputDataError, match="does not exist"):
        parsing.read_ratings(tmp_path / "nope.dat")
    with pytest.raises(InputDataError, match="is a directory"):
        parsing.read_ratings(tmp_path)
    with pytest.raises(InputDataError, match="empty") as caught:
        parsing.read_ratings(write(tmp_path, "ratings.dat", "\n"))
    assert "ratings.dat" in str(caught.value)


def test_drop_duplicate_ratings_keeps_earliest_then_first_line(tmp_path):
    path = write(
        tmp_path,
        "ratings.dat",
        "1::10::2::200\n"  # later re-rating: dropped
        "1::10::5::100\n"  # earliest: kept
        "2::10::3::50\n"
        "2::10::4::50\n"  # same time as line 3: file order wins, dropped
        "1::11::1::300\n",
    )
    kept, dropped = parsing.drop_duplicate_ratings(parsing.read_ratings(path))
    assert dropped == 2
    assert kept["line"].to_list() == [2, 3, 5]
    assert kept["rating"].to_list() == [5, 3, 1]


def test_drop_duplicate_ratings_without_duplicates_is_identity(tmp_path):
    ratings = parsing.read_ratings(write(tmp_path, "ratings.dat", "1::10::2::200\n1::11::5::100\n"))
    kept, dropped = parsing.drop_duplicate_ratings(ratings)
    assert dropped == 0
    assert kept.equals(ratings)


def test_read_movies_latin1_years_and_genres(tmp_path):
    content = (
        "73::Misérables, Les (1995)::Drama|Musical\n"
        "648::Mission: Impossible (1996)::Action|Adventure\n"
        "9::Star Trek:: The Odd One (1999)::Sci-Fi\n"
        "10::No Year Here::\n"
    )
    movies = parsing.read_movies(write(tmp_path, "movies.dat", content, encoding="latin-1"))
    assert schema.schema_errors(movies, schema.MOVIES) == []
    assert movies["item_id"].to_list() == [73, 648, 9, 10]
    assert movies["title"].to_list() == [
        "Misérables, Les",
        "Mission: Impossible",
        "Star Trek:: The Odd One",
        "No Year Here",
    ]
    assert movies["year"].to_list() == [1995, 1996, 1999, None]
    assert movies["genres"].to_list() == [["Drama", "Musical"], ["Action", "Adventure"], ["Sci-Fi"], []]


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        ("1::Toy Story (1995)::Comedy\n2,Jumanji (1995),Adventure\n", 2, "expected 3 fields"),
        ("1::Toy Story (1995)::Comedy\nx::Jumanji (1995)::Adventure\n", 2, "movie id 'x'"),
        ("1::Toy Story (1995)::Comedy\n1::Jumanji (1995)::Adventure\n", 2, "already appears on line 1"),
    ],
)
def test_read_movies_errors(tmp_path, content, line, fragment):
    path = write(tmp_path, "movies.dat", content)
    with pytest.raises(InputDataError) as caught:
        parsing.read_movies(path)
    assert str(path) in str(caught.value)
    assert f"line {line}:" in str(caught.value)
    assert fragment in str(caught.value)


def test_read_movies_missing_and_empty(tmp_path):
    with pytest.raises(InputDataError, match="does not exist"):
        parsing.read_movies(tmp_path / "movies.dat")
    with pytest.raises(InputDataError, match="empty"):
        parsing.read_movies(write(tmp_path, "movies.dat", ""))


def test_timestamps_are_utc_microseconds(tmp_path):
    ratings = parsing.read_ratings(write(tmp_path, "ratings.dat", "1::10::5::1\n"))
    assert ratings.select(pl.col("timestamp").dt.epoch("us")).item() == 1_000_000
