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

import numbers
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from sbr_dagster.errors import InputDataError

LIKED = 4  # a target rated at least this is one the viewer liked
_EVENT_ORDER = ("timestamp", "line")  # equal timestamps keep file order


@dataclass(frozen=True)
class Cuts:
    """``T_valid`` <= ``T_test``: events before ``T_valid`` train, from ``T_test`` on are test."""

    valid: datetime
    test: datetime


def check_fractions(test_fraction: object, valid_fraction: object) -> None:
    for name, value in (("test_fraction", test_fraction), ("valid_fraction", valid_fraction)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:
            raise InputDataError(f"{name} must be a number strictly between 0 and 1; got {value!r}.")
    if test_fraction + valid_fraction >= 1:
        raise InputDataError(
            f"test_fraction + valid_fraction = {test_fraction + valid_fraction} leaves no events to "
            "train on; keep their sum below 1."
        )


def cut_times(ratings: pl.DataFrame, test_fraction: float = 0.1, valid_fraction: float = 0.1) -> Cuts:
    """The times that leave the latest ``test_fraction`` of events for test and the ``valid_fraction``
    before them for validation; events at a cut time belong to the later part."""
    check_fractions(test_fraction, valid_fraction)
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
