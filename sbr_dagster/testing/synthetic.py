"""Generate MovieLens-1M-shaped data sets: tests and benchmarks run without the real files.

The files are byte-compatible with ML-1M (``::`` separators, Latin-1 movies with accented titles,
users.dat), and the events have the structure the pipeline relies on: each user rates in bursts
separated by pauses of hours to weeks, item popularity is Zipf-like, and within a burst the next
item tends to be a few ids after the previous one, so a next-item model has something to learn.
Everything is vectorized NumPy, so tens of millions of events take seconds; one seed, one output.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import polars as pl

from sbr_dagster.lake.files import write_atomic

GENRES = (
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War",
    "Western",
)  # fmt: skip
_TITLE_WORDS = (
    "Misérables", "Amélie", "Café", "Señor", "Noël", "Garçon", "Night", "River", "Star", "Trek",
    "Return", "Love", "City", "Dead", "Story", "Game", "House", "Man", "Dream", "War",
)  # fmt: skip
_RATING_SHARES = (0.06, 0.11, 0.26, 0.35, 0.22)  # close to ML-1M's rating distribution
_AGES = (1, 18, 25, 35, 45, 50, 56)
_FIRST_EPOCH = 956_703_932  # ML-1M's first rating, 2000-04-25
_HOUR, _DAY = 3600, 86_400


def _cumsum_within(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Inclusive running sum of ``values`` that restarts wherever ``starts`` is True."""
    total = np.cumsum(values)
    first = np.flatnonzero(starts)
    base = total[first] - values[first]
    return total - base[np.cumsum(starts) - 1]


def _zipf_items(rng: np.random.Generator, n_items: int, size: int, exponent: float) -> np.ndarray:
    """0-based item indices with Zipf-like popularity; popular items are scattered over the id range."""
    weights = 1.0 / np.arange(1, n_items + 1) ** exponent
    return rng.permutation(n_items)[rng.choice(n_items, size=size, p=weights / weights.sum())]


def _events(
    rng: np.random.Generator,
    *,
    n_users: int,
    n_items: int,
    sessions_per_user: float,
    events_per_session: float,
    zipf_exponent: float,
    jump_probability: float,
) -> pl.DataFrame:
    sessions_of_user = 1 + rng.poisson(sessions_per_user - 1, n_users)
    session_user = np.repeat(np.arange(1, n_users + 1), sessions_of_user)
    n_sessions = session_user.size
    length = rng.geometric(1.0 / events_per_session, n_sessions)
    session_of_event = np.repeat(np.arange(n_sessions), length)
    first_event = np.zeros(session_of_event.size, dtype=bool)
    first_event[np.cumsum(length) - length] = True

    # Seconds between ratings in a burst: mostly a minute or two, sometimes the same second, and now
    # and then a 10-90 minute break, so 30-minute and 1-hour gap definitions cut differently.
    n_events = session_of_event.size
    chance = rng.random(n_events)
    step = np.where(
        chance < 0.03,
        rng.integers(10 * 60, 90 * 60, n_events),
        rng.exponential(90.0, n_events).astype(np.int64) * (chance > 0.13),
    )
    offset = _cumsum_within(np.where(first_event, 0, step), first_event)
    duration = offset[np.cumsum(length) - 1]
    # Pauses between a user's bursts: log-uniform from 2 hours to 3 weeks, crossing every gap definition.
    pause = np.exp(rng.uniform(np.log(2 * _HOUR), np.log(21 * _DAY), n_sessions)).astype(np.int64)
    first_session = np.zeros(n_sessions, dtype=bool)
    first_session[np.cumsum(sessions_of_user) - sessions_of_user] = True
    previous_duration = np.concatenate(([0], duration[:-1]))
    join = rng.integers(0, 300 * _DAY, n_sessions)
    session_start = _cumsum_within(np.where(first_session, join, previous_duration + pause), first_session)

    anchor = _zipf_items(rng, n_items, n_sessions, zipf_exponent)
    walk = _cumsum_within(np.where(first_event, 0, rng.integers(1, 4, first_event.size)), first_event)
    item = (anchor[session_of_event] + walk) % n_items
    jump = rng.random(item.size) < jump_probability
    item[jump] = _zipf_items(rng, n_items, int(jump.sum()), zipf_exponent)

    return pl.DataFrame(
        {
            "user_id": session_user[session_of_event].astype(np.int32),
            "item_id": (item + 1).astype(np.int32),
            "rating": rng.choice(np.arange(1, 6, dtype=np.int8), size=item.size, p=_RATING_SHARES),
            "timestamp": _FIRST_EPOCH + session_start[session_of_event] + offset,
            "shuffle": rng.random(item.size),
        }
    )


def _movies(rng: np.random.Generator, n_items: int) -> pl.DataFrame:
    words = np.array(_TITLE_WORDS)
    pick = rng.integers(0, len(words), (3, n_items))
    n_genres = rng.integers(1, 4, n_items)
    genre_order = np.argsort(rng.random((n_items, len(GENRES))), axis=1)[:, :3]
    genre = {f"g{k}": np.array(GENRES)[genre_order[:, k]] for k in range(3)}
    frame = pl.DataFrame(
        {
            "item_id": np.arange(1, n_items + 1),
            "w0": words[pick[0]],
            "w1": words[pick[1]],
            "w2": words[pick[2]],
            "colon": rng.random(n_items) < 0.1,
            "article": rng.random(n_items) < 0.15,
            "year": rng.integers(1919, 2001, n_items),
            "n_genres": n_genres,
            **genre,
        }
    )
    title = pl.when("colon").then(pl.format("{} {}: {}", "w0", "w1", "w2")).otherwise(
        pl.format("{} {}", "w0", "w1")
    ) + pl.when("article").then(pl.lit(", The")).otherwise(pl.lit(""))
    return frame.select(
        "item_id",
        pl.format("{} ({})", title, "year"),
        pl.concat_list(pl.when(pl.col("n_genres") > k).then(f"g{k}") for k in range(3))
        .list.drop_nulls()
        .list.join("|"),
    )


def _users(rng: np.random.Generator, n_users: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": np.arange(1, n_users + 1),
            "gender": np.where(rng.random(n_users) < 0.72, "M", "F"),
            "age": rng.choice(np.array(_AGES), n_users),
            "occupation": rng.integers(0, 21, n_users),
            "zip": rng.integers(0, 100_000, n_users),
        }
    ).with_columns(pl.col("zip").cast(pl.String).str.zfill(5))


def _write_dat(fields: pl.DataFrame, path: Path, latin1: bool = False) -> None:
    """Columns -> ``a::b::c`` lines: a ':' separator around empty columns writes '::' at CSV speed.

    Polars writes UTF-8 only, so Latin-1 output (movies.dat, small) is re-encoded in memory.
    """
    empty = [pl.lit(None, pl.String).alias(f"_{i}") for i in range(fields.width)]
    lines = fields.select([e for pair in zip(fields.columns, empty, strict=True) for e in pair][:-1])
    options = {"include_header": False, "separator": ":", "quote_style": "never"}
    if not latin1:
        write_atomic(path, lambda tmp: lines.write_csv(tmp, **options))
        return
    buffer = io.BytesIO()
    lines.write_csv(buffer, **options)
    data = buffer.getvalue().decode("utf-8").encode("latin-1")
    write_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_ml1m_like(
    directory: str | os.PathLike[str],
    n_users: int = 200,
    n_items: int = 300,
    seed: int = 0,
    *,
    sessions_per_user: float = 6.0,
    events_per_session: float = 8.0,
    zipf_exponent: float = 1.0,
    jump_probability: float = 0.2,
) -> Path:
    """Write ratings.dat, movies.dat and users.dat in ML-1M format into ``directory``; return it.

    About ``n_users * sessions_per_user * events_per_session`` ratings, minus repeated (user, movie)
    pairs, which are dropped like ML-1M has none. ratings.dat is grouped by user, in shuffled time
    order within the user, as in the real file.
    """
    if n_users < 1 or n_items < 4 or sessions_per_user < 1 or events_per_session < 1:
        raise ValueError("need n_users >= 1, n_items >= 4, sessions_per_user >= 1, events_per_session >= 1")
    directory = Path(directory)
    rng = np.random.default_rng(seed)
    events = _events(
        rng,
        n_users=n_users,
        n_items=n_items,
        sessions_per_user=sessions_per_user,
        events_per_session=events_per_session,
        zipf_exponent=zipf_exponent,
        jump_probability=jump_probability,
    )
    # Events come user by user in time order, so the first of a (user, movie) pair is the earliest.
    pair = pl.col("user_id").cast(pl.Int64) * 2**32 + pl.col("item_id")
    ratings = (
        events.filter(pair.is_first_distinct())
        .sort(pl.col("user_id") + pl.col("shuffle"))
        .select("user_id", "item_id", "rating", "timestamp")
    )
    _write_dat(ratings, directory / "ratings.dat")
    _write_dat(_movies(rng, n_items), directory / "movies.dat", latin1=True)
    _write_dat(_users(rng, n_users), directory / "users.dat")
    return directory
