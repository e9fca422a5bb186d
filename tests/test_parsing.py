import re
from datetime import UTC, datetime, timedelta, timezone

import polars as pl
import pytest

from sbr_dagster.data import parsing, schema
from sbr_dagster.errors import InputDataError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def write(tmp_path, name, content: str, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(content.encode(encoding))
    return path


def test_read_ratings_types_values_and_file_order(tmp_path):
    path = write(tmp_path, "ratings.dat", "2::10::5::978300760\n1::20::3::0\r\n1::10::1::978300761\n")
    ratings = parsing.read_ratings(path, earliest=EPOCH)  # widened: 1970 is before MOVIELENS_START
    assert schema.schema_errors(ratings, schema.RATINGS) == []
    assert ratings["user_id"].to_list() == [2, 1, 1]
    assert ratings["item_id"].to_list() == [10, 20, 10]
    assert ratings["rating"].to_list() == [5, 3, 1]
    assert ratings["line"].to_list() == [1, 2, 3]
    assert ratings["timestamp"][0] == datetime(2000, 12, 31, 22, 12, 40, tzinfo=UTC)
    assert ratings["timestamp"][1] == datetime(1970, 1, 1, tzinfo=UTC)


def test_read_ratings_without_trailing_newline(tmp_path):
    path = write(tmp_path, "ratings.dat", "1::10::5::978300100\n1::11::4::978300101")
    assert parsing.read_ratings(path).height == 2


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        ("1::10::5::978300100\n1,11,4,101\n", 2, "commas"),
        ("1::10::5::978300100\n1\t11\t4\t101\n", 2, "tabs"),
        ("1:10:5:100\n", 1, "single colons"),
        ("1::10::5::978300100\n1::11::4\n", 2, "found 3"),
        ("1::10::5::978300100\n1::11::4::978300101::7\n", 2, "found 5"),
        ("1::10::5::978300100\n\n1::11::4::978300101\n", 2, "found 0"),
        ("1::10::5::978300100\n1::11::4::978300101\nx::12::4::978300102\n", 3, "user_id 'x'"),
        ("1::ten::5::978300100\n", 1, "item_id 'ten'"),
        ("1::10::five::100\n", 1, "rating 'five'"),
        ("1::10::5::2000-01-01\n", 1, "timestamp '2000-01-01'"),
        ("1::10::5::978300100\n1::11::6::101\n", 2, "rating 6 is outside 1..5"),
        ("1::10::0::100\n", 1, "rating 0 is outside 1..5"),
        ("1::10::5::978300760000\n", 1, "not Unix epoch seconds"),
        ("0::10::5::978300100\n", 1, "user_id/item_id"),
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
        "1::10::2::978300200\n"  # later re-rating: dropped
        "1::10::5::978300100\n"  # earliest: kept
        "2::10::3::978300050\n"
        "2::10::4::978300050\n"  # same time as line 3: file order wins, dropped
        "1::11::1::978300300\n",
    )
    kept, dropped = parsing.drop_duplicate_ratings(parsing.read_ratings(path))
    assert dropped == 2
    assert kept["line"].to_list() == [2, 3, 5]
    assert kept["rating"].to_list() == [5, 3, 1]


def test_drop_duplicate_ratings_without_duplicates_is_identity(tmp_path):
    ratings = parsing.read_ratings(
        write(tmp_path, "ratings.dat", "1::10::2::978300200\n1::11::5::978300100\n")
    )
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
    ratings = parsing.read_ratings(write(tmp_path, "ratings.dat", "1::10::5::1\n"), earliest=EPOCH)
    assert ratings.select(pl.col("timestamp").dt.epoch("us")).item() == 1_000_000


# --- plausible timestamps ---------------------------------------------------------------------------

GOOD = "1::10::5::978300760\n"  # 2000-12-31, inside every window below


def test_window_defaults_and_setting_names():
    assert datetime(1995, 1, 1, tzinfo=UTC) == parsing.MOVIELENS_START
    assert (parsing.EARLIEST_SETTING, parsing.LATEST_SETTING) == ("earliest_rating", "latest_rating")
    before = datetime.now(UTC)
    window = parsing.rating_window()
    assert window.earliest == parsing.MOVIELENS_START
    assert before <= window.latest <= datetime.now(UTC)
    assert window.latest_is_now


def test_both_ends_of_the_window_are_plausible_and_one_second_beyond_is_not(tmp_path):
    earliest, latest = datetime(2000, 1, 1, tzinfo=UTC), datetime(2001, 1, 1, tzinfo=UTC)
    first, last = int(earliest.timestamp()), int(latest.timestamp())
    path = write(tmp_path, "ratings.dat", f"1::10::5::{first}\n1::11::4::{last}\n")
    ratings = parsing.read_ratings(path, earliest=earliest, latest=latest)
    assert ratings["timestamp"].to_list() == [earliest, latest]
    for line, message in ((f"1::10::5::{first - 1}", "before"), (f"1::10::5::{last + 1}", "after")):
        bad = write(tmp_path, "bad.dat", GOOD + line + "\n")
        with pytest.raises(InputDataError, match=f"line 2: timestamp .* is {message} the"):
            parsing.read_ratings(bad, earliest=earliest, latest=latest)


def test_rating_in_2100_is_after_now(tmp_path):
    path = write(tmp_path, "ratings.dat", GOOD + "1::11::4::4102444800\n")
    before = datetime.now(UTC).replace(microsecond=0)
    with pytest.raises(InputDataError) as caught:
        parsing.read_ratings(path)
    after = datetime.now(UTC)
    message = str(caught.value)
    pattern = (
        rf"{re.escape(str(path))}, line 2: timestamp 4102444800 \(2100-01-01 00:00:00 UTC\) is after the "
        r"latest plausible time (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC \(the time of this run\) in "
        r"'1::11::4::4102444800'\. Fix or remove this line, or set latest_rating to a later time\."
    )
    match = re.fullmatch(pattern, message)
    assert match, message
    shown = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert before <= shown <= after


def test_rating_in_1970_is_before_movielens(tmp_path):
    path = write(tmp_path, "ratings.dat", GOOD + "1::11::4::0\n")
    with pytest.raises(InputDataError) as caught:
        parsing.read_ratings(path)
    assert str(caught.value) == (
        f"{path}, line 2: timestamp 0 (1970-01-01 00:00:00 UTC) is before the earliest plausible time "
        "1995-01-01 00:00:00 UTC in '1::11::4::0'. Fix or remove this line, or set earliest_rating to an "
        "earlier time."
    )


def test_a_given_latest_is_shown_in_utc_without_the_time_of_this_run(tmp_path):
    path = write(tmp_path, "ratings.dat", GOOD + "1::11::4::1262304000\n")  # 2010-01-01 00:00:00 UTC
    paris = timezone(timedelta(hours=1))
    with pytest.raises(InputDataError) as caught:
        parsing.read_ratings(path, latest=datetime(2005, 1, 1, 1, tzinfo=paris))
    assert "is after the latest plausible time 2005-01-01 00:00:00 UTC in '1::11::4::1262304000'" in str(
        caught.value
    )
    assert "the time of this run" not in str(caught.value)
    # Widening the window accepts the very same file.
    ratings = parsing.read_ratings(path, latest=datetime(2010, 1, 1, tzinfo=paris) + timedelta(hours=1))
    assert ratings.height == 2


def test_milliseconds_are_still_not_epoch_seconds(tmp_path):
    path = write(tmp_path, "ratings.dat", GOOD + "1::11::4::978300760000\n")
    with pytest.raises(InputDataError, match="timestamp 978300760000 is not Unix epoch seconds"):
        parsing.read_ratings(path, latest=datetime(9999, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"earliest": datetime(1995, 1, 1)}, "earliest_rating must be a timezone-aware datetime"),
        ({"latest": "2010-01-01"}, "latest_rating must be a timezone-aware datetime"),
        ({"latest": 1262304000}, "latest_rating must be a timezone-aware datetime"),
        (
            {"earliest": datetime(2030, 1, 1, tzinfo=UTC)},
            "earliest_rating 2030-01-01 00:00:00 UTC is after latest_rating",
        ),
    ],
)
def test_window_settings_are_checked(tmp_path, settings, fragment):
    with pytest.raises(InputDataError, match=re.escape(fragment)):
        parsing.read_ratings(write(tmp_path, "ratings.dat", GOOD), **settings)


@pytest.mark.real_data
def test_real_movielens_lies_inside_the_default_window(real_ml1m_dir):
    ratings = parsing.read_ratings(real_ml1m_dir / "ratings.dat")
    assert ratings.height == 1_000_209
    wide = parsing.read_ratings(
        real_ml1m_dir / "ratings.dat", earliest=EPOCH, latest=datetime(5000, 1, 1, tzinfo=UTC)
    )
    assert ratings.equals(wide)


# --- ratings of movies missing from movies.dat ------------------------------------------------------


def test_unknown_movies_keeps_file_order_and_every_column(tmp_path):
    ratings = parsing.read_ratings(
        write(
            tmp_path,
            "ratings.dat",
            "1::10::5::978300760\n1::99999::4::978300761\n2::11::3::978300762\n"
            "2::88888::2::978300763\n3::99999::1::978300764\n",
        )
    )
    movies = parsing.read_movies(write(tmp_path, "movies.dat", "10::A (1999)::Drama\n11::B (1999)::Drama\n"))
    unknown = parsing.unknown_movies(ratings, movies)
    assert unknown.schema == ratings.schema
    assert unknown["line"].to_list() == [2, 4, 5]
    assert unknown["item_id"].to_list() == [99999, 88888, 99999]
    assert parsing.unknown_movies(ratings.filter(pl.col("item_id") < 20), movies).height == 0
    assert parsing.unknown_movies_problem(unknown, tmp_path / "movies.dat") == (
        f"3 ratings (of 2 movies) name movies missing from {tmp_path / 'movies.dat'}: 99999, 88888. "
        "Add them to movies.dat, or set drop_unknown_movies to drop these ratings."
    )
    assert parsing.DROP_UNKNOWN_SETTING == "drop_unknown_movies"


def test_unknown_movies_problem_wording_and_at_most_ten_ids():
    one = pl.DataFrame({"item_id": [7]})
    assert parsing.unknown_movies_problem(one, "m.dat").startswith(
        "1 rating (of 1 movie) names a movie missing"
    )
    twice = pl.DataFrame({"item_id": [7, 7]})
    assert parsing.unknown_movies_problem(twice, "m.dat").startswith("2 ratings (of 1 movie) name a movie")
    many = pl.DataFrame({"item_id": [*range(2000, 1988, -1), *range(2000, 1988, -1)]})
    message = parsing.unknown_movies_problem(many, "data/movies.dat")
    assert message == (
        "24 ratings (of 12 movies) name movies missing from data/movies.dat: 2000, 1999, 1998, 1997, 1996, "
        "1995, 1994, 1993, 1992, 1991 and 2 more. Add them to movies.dat, or set drop_unknown_movies to drop "
        "these ratings."
    )
    with pytest.raises(ValueError, match="at least one"):
        parsing.unknown_movies_problem(many.head(0), "m.dat")


def test_unknown_movies_on_many_ratings():
    ratings = pl.DataFrame({"item_id": pl.int_range(0, 200_000, eager=True) % 5_000, "line": range(200_000)})
    movies = pl.DataFrame({"item_id": range(0, 5_000, 2)})
    unknown = parsing.unknown_movies(ratings, movies)
    assert unknown.height == 100_000
    assert unknown["line"].is_sorted()
    assert (unknown["item_id"] % 2 == 1).all()
