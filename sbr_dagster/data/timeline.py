"""The shared timeline: two global cut times, one candidate set and one set of next-movie targets.

Every variant of the study (session definition, rating policy, model settings) is trained on the
events before ``T_valid`` and scored on the same targets, so any two of them can be compared
prediction by prediction. A target is a validation or test event (at or after ``T_valid``; test
from ``T_test``) of a user with an earlier event, whose movie is a candidate: a movie rated at least
``min_item_support`` times before ``T_valid``, counted over all ratings. Its rating does not matter:
the next movie a viewer rated is what is predicted, liked or not (``liked`` marks the ones rated
at least ``LIKED``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from sbr_dagster.data import sessions, splitting
from sbr_dagster.errors import InputDataError

LIKED = 4  # a target rated at least this is one the viewer liked
_EVENT_ORDER = ("timestamp", "line")  # equal timestamps keep file order


@dataclass(frozen=True)
class Cuts:
    """``T_valid`` <= ``T_test``: events before ``T_valid`` train, from ``T_test`` on are test."""

    valid: datetime
    test: datetime


def cut_times(ratings: pl.DataFrame, test_fraction: float = 0.1, valid_fraction: float = 0.1) -> Cuts:
    """The times that leave the latest ``test_fraction`` of events for test and the ``valid_fraction``
    before them for validation; events at a cut time belong to the later part."""
    splitting.check_fractions(test_fraction, valid_fraction)
    if ratings.height == 0:
        raise InputDataError("cannot cut an empty ratings table into train, validation and test.")
    times = ratings.sort(*_EVENT_ORDER)["timestamp"]
    n = times.len()
    test_at = n - max(1, round(n * test_fraction))
    valid_at = test_at - max(1, round(n * valid_fraction))
    if valid_at <= 0:
        raise InputDataError(
            f"only {n} ratings: test_fraction {test_fraction} and valid_fraction {valid_fraction} "
            "leave none to train on; lower them or use more data."
        )
    return Cuts(valid=times[valid_at], test=times[test_at])


def candidates(ratings: pl.DataFrame, cuts: Cuts, min_item_support: int) -> pl.DataFrame:
    """``item_id`` and ``support`` of the movies rated at least ``min_item_support`` times before
    ``T_valid``, ascending ``item_id``: the items every variant ranks."""
    before = ratings.filter(pl.col("timestamp") < cuts.valid)
    support = before.group_by("item_id").agg(pl.len().cast(pl.UInt32).alias("support"))
    kept = support.filter(pl.col("support") >= min_item_support).sort("item_id")
    if kept.height == 0:
        raise InputDataError(
            f"no movie has {min_item_support} ratings before the validation cut {cuts.valid}: lower "
            "min_item_support or valid_fraction / test_fraction."
        )
    return kept


def targets(ratings: pl.DataFrame, cuts: Cuts, candidate_items: pl.Series) -> pl.DataFrame:
    """The shared targets: ``split``, ``user_id``, ``item_id``, ``timestamp``, ``rating``, ``line``,
    ``liked``, in (user, time, file) order."""
    events = ratings.sort("user_id", *_EVENT_ORDER).with_columns(
        (pl.int_range(pl.len()).over("user_id") > 0).alias("has_earlier")
    )
    picked = events.filter(
        (pl.col("timestamp") >= cuts.valid)
        & pl.col("has_earlier")
        & pl.col("item_id").is_in(candidate_items.implode())
    )
    split = pl.when(pl.col("timestamp") >= cuts.test).then(pl.lit("test")).otherwise(pl.lit("valid"))
    return picked.select(
        split.alias("split"),
        "user_id",
        "item_id",
        "timestamp",
        "rating",
        "line",
        (pl.col("rating") >= LIKED).alias("liked"),
    )


def training_events(events: pl.DataFrame, cuts: Cuts) -> pl.DataFrame:
    """A variant's events the models may learn from: strictly before ``T_valid``."""
    return events.filter(pl.col("timestamp") < cuts.valid)


@dataclass(frozen=True)
class Replay:
    """Every user's whole timeline as one stream, with what a variant does at each event.

    Users are contiguous (``offsets``), each in time order (equal times in file order). A model
    replaying it resets its state where ``session_start`` (the variant's definition cuts a
    session; a user's first event always does), ranks ``target`` events from the state it has
    then, and afterwards consumes the event if ``feed`` (the variant's rating policy keeps it and
    the movie is a candidate). ``items`` are candidate indices, -1 for a movie outside the set.
    """

    items: np.ndarray  # int32
    offsets: np.ndarray  # int64, one more than there are users
    session_start: np.ndarray  # bool
    feed: np.ndarray  # bool
    target: np.ndarray  # bool
    ratings: np.ndarray  # int8

    @property
    def target_events(self) -> np.ndarray:
        return np.flatnonzero(self.target)


def replay(
    ratings: pl.DataFrame,
    candidate_index: pl.DataFrame,
    shared_targets: pl.DataFrame,
    *,
    gap: timedelta | None,
    min_rating: int | None,
) -> Replay:
    """The stream a variant (session ``gap``, rating floor ``min_rating``) is scored on.

    ``candidate_index`` maps ``item_id`` to ``item_idx``; ``shared_targets`` is ``targets(...)``'s
    table, so every variant has the very same target events.
    """
    events = sessions.assign_sessions(ratings, gap)  # sorted by user, time, line
    events = events.join(
        candidate_index.select("item_id", "item_idx"), on="item_id", how="left", maintain_order="left"
    ).with_columns(
        pl.col("session_id").diff().fill_null(1).ne(0).alias("session_start"),
        pl.col("line").is_in(shared_targets["line"].implode()).alias("target"),
    )
    floor = min_rating or 1
    feed = pl.col("item_idx").is_not_null() & (pl.col("rating") >= floor)
    events = events.with_columns(feed.alias("feed"))
    users = events["user_id"].to_numpy()
    starts = np.flatnonzero(np.diff(users)) + 1
    offsets = np.concatenate([[0], starts, [len(users)]]).astype(np.int64) if len(users) else np.zeros(1)
    return Replay(
        items=events["item_idx"].fill_null(-1).to_numpy().astype(np.int32),
        offsets=offsets.astype(np.int64),
        session_start=events["session_start"].to_numpy(),
        feed=events["feed"].to_numpy(),
        target=events["target"].to_numpy(),
        ratings=events["rating"].to_numpy().astype(np.int8),
    )


def last_fed_before(stream: Replay) -> np.ndarray:
    """For every event, the index of the last fed event before it in its session, or -1.

    What a last-item model (the baselines) sees when it predicts that event.
    """
    n = len(stream.items)
    index = np.arange(n)
    session_begin = np.maximum.accumulate(np.where(stream.session_start, index, 0))
    fed = np.maximum.accumulate(np.where(stream.feed, index, -1))
    previous = np.concatenate([[-1], fed[:-1]])  # strictly before the event
    return np.where(previous >= session_begin, previous, -1)


def seen_pairs(stream: Replay, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, item) of every candidate a viewer rated before each of ``events``, whatever the rating.

    Row ``r`` refers to ``events[r]``; pairs are unique, and an item equal to that event's own
    movie is left out (a repeated target is not excluded from its own ranking).
    """
    user = np.searchsorted(stream.offsets, events, side="right") - 1
    begin = stream.offsets[user]
    lengths = events - begin
    rows = np.repeat(np.arange(len(events)), lengths)
    position = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    items = stream.items[np.repeat(begin, lengths) + position]
    keep = (items >= 0) & (items != stream.items[events][rows])
    rows, items = rows[keep], items[keep]
    n_items = int(stream.items.max(initial=0)) + 1
    unique = np.unique(rows.astype(np.int64) * n_items + items)
    return (unique // n_items).astype(np.int64), (unique % n_items).astype(np.int64)
