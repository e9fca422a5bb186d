import re
from datetime import timedelta

import numpy as np
import polars as pl

from sbr_dagster.data import parsing, sessions
from sbr_dagster.testing import synthetic


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    first = synthetic.write_ml1m_like(tmp_path / "a", n_users=50, n_items=80, seed=3)
    again = synthetic.write_ml1m_like(tmp_path / "b", n_users=50, n_items=80, seed=3)
    other = synthetic.write_ml1m_like(tmp_path / "c", n_users=50, n_items=80, seed=4)
    for name in ("ratings.dat", "movies.dat", "users.dat"):
        assert (first / name).read_bytes() == (again / name).read_bytes()
    assert (first / "ratings.dat").read_bytes() != (other / "ratings.dat").read_bytes()


def test_files_are_in_ml1m_format_and_parse_cleanly(tmp_path):
    directory = synthetic.write_ml1m_like(tmp_path, n_users=60, n_items=100, seed=1)
    ratings = parsing.read_ratings(directory / "ratings.dat")
    movies = parsing.read_movies(directory / "movies.dat")
    assert re.fullmatch(r"(\d+::\d+::[1-5]::\d+\n)+", (directory / "ratings.dat").read_text())
    users = (directory / "users.dat").read_text().splitlines()
    assert len(users) == 60
    assert all(re.fullmatch(r"\d+::[MF]::\d+::\d+::\d{5}", line) for line in users)
    # Latin-1 with accented titles, as the real movies.dat.
    raw = (directory / "movies.dat").read_bytes()
    raw.decode("latin-1")
    assert any(byte > 127 for byte in raw)
    assert movies.height == 100
    assert movies["title"].str.contains("é|ñ|ç|ë").any()
    assert movies["year"].null_count() == 0
    assert movies["genres"].list.len().min() >= 1
    assert set(movies["genres"].explode().to_list()) <= set(synthetic.GENRES)
    # ML-1M conventions: every user present, ratings 1..5, no repeated (user, movie), grouped by user.
    assert ratings["user_id"].n_unique() == 60
    assert ratings["item_id"].is_between(1, 100).all()
    assert ratings.select(pl.struct("user_id", "item_id").is_duplicated().any()).item() is False
    assert ratings["user_id"].is_sorted()
    assert parsing.drop_duplicate_ratings(ratings)[1] == 0


def test_bursts_cross_the_gap_definitions(tmp_path):
    directory = synthetic.write_ml1m_like(tmp_path, n_users=100, n_items=200, seed=2)
    ratings = parsing.read_ratings(directory / "ratings.dat")
    counts = [
        sessions.assign_sessions(ratings, sessions.parse_definition(name).gap)["session_id"].n_unique()
        for name in ("user", "gap_1d", "gap_1h", "gap_30m")
    ]
    assert counts[0] == 100
    assert counts[0] < counts[1] < counts[2] < counts[3]
    # Consecutive items in a burst are usually a few ids apart: a next-item signal exists.
    events = sessions.assign_sessions(ratings, timedelta(hours=1))
    step = (
        events.select((pl.col("item_id").diff() * (pl.col("session_id").diff() == 0)).alias("step"))
        .filter(pl.col("step") != 0)["step"]
        .to_numpy()
    )
    assert np.mean((step >= 1) & (step <= 3)) > 0.4


def test_size_scales_with_parameters(tmp_path):
    small = parsing.read_ratings(
        synthetic.write_ml1m_like(tmp_path / "s", n_users=40, seed=0) / "ratings.dat"
    )
    large = parsing.read_ratings(
        synthetic.write_ml1m_like(tmp_path / "l", n_users=40, seed=0, events_per_session=16) / "ratings.dat"
    )
    assert large.height > 1.5 * small.height
