"""Split sessions by time into train / valid / test, so evaluation never sees the future.

Whole sessions go to one part, decided by when they END: a test session finishes after every
train session has ended, as in deployment, where a model trained on the past serves later
sessions. Valid and test keep only items the model was trained on (an item without an embedding
cannot be predicted), and sessions left too short to predict anything are dropped.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import polars as pl

from sbr_dagster.data import cleansing, schema
from sbr_dagster.errors import InputDataError

_EVENT_ORDER = ("session_id", "timestamp", "line")
# What to change when a part comes out empty, per method.
_KNOBS = {
    "days": {"train": "lower test_days / valid_days", "valid": "raise valid_days", "test": "raise test_days"},
    "fraction": {
        "train": "lower test_fraction + valid_fraction",
        "valid": "raise valid_fraction",
        "test": "raise test_fraction",
    },
}
_KNOBS["timeline"] = _KNOBS["fraction"]  # data.timeline: global cut times by the same fractions
METHODS = tuple(_KNOBS)


@dataclass(frozen=True)
class Split:
    """train / valid / test in ``schema.SPLIT``, the train item index, and how they were cut."""

    train: pl.DataFrame
    valid: pl.DataFrame
    test: pl.DataFrame
    item_index: pl.DataFrame
    method: str
    valid_cutoff: datetime
    test_cutoff: datetime
    report: dict = field(default_factory=dict)


def require_events(n_events: int) -> None:
    """No events left after cleansing is a user error, whether the events are in memory or partitioned."""
    if n_events == 0:
        raise InputDataError(
            "cannot split: no sessions are left after cleansing. Lower min_item_support or "
            "min_session_length in the preprocessing settings (resources.preprocessing.config), or keep "
            "more ratings (min_rating / the definition's _rK suffix)."
        )


def session_ends(events: pl.DataFrame) -> pl.DataFrame:
    """One row per session with its last event time, in (end, session_id) order; none is a user error.

    Public because a part of the events holding whole sessions (``streaming``) has its own ends.
    """
    require_events(events.height)
    return events.group_by("session_id").agg(pl.col("timestamp").max().alias("end")).sort("end", "session_id")


def check_days(test_days: object, valid_days: object) -> None:
    """The days rule's knobs are positive numbers; shared with the streaming split, which checks first."""
    for name, value in (("test_days", test_days), ("valid_days", valid_days)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < math.inf:
            raise InputDataError(f"{name} must be a positive number of days; got {value!r}.")


def check_fractions(test_fraction: object, valid_fraction: object) -> None:
    for name, value in (("test_fraction", test_fraction), ("valid_fraction", valid_fraction)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:
            raise InputDataError(f"{name} must be a number strictly between 0 and 1; got {value!r}.")
    if test_fraction + valid_fraction >= 1:
        raise InputDataError(
            f"test_fraction + valid_fraction = {test_fraction + valid_fraction} leaves no sessions to "
            "train on; keep their sum below 1."
        )


def day_cutoffs(
    ends: pl.DataFrame | pl.LazyFrame, test_days: float, valid_days: float
) -> tuple[datetime, datetime]:
    """(valid_cutoff, test_cutoff) of ``split_by_days`` from ``session_ends``.

    Also takes a LazyFrame over many partitions' ends, so the streaming split gets the same cut-offs.
    """
    ends = ends.lazy()
    test_cutoff = ends.select(pl.col("end").max()).collect().item() - timedelta(days=test_days)
    valid_end = ends.filter(pl.col("end") < test_cutoff).select(pl.col("end").max()).collect().item()
    valid_cutoff = (test_cutoff if valid_end is None else valid_end) - timedelta(days=valid_days)
    return valid_cutoff, test_cutoff


def parts_by_cutoffs(
    events: pl.DataFrame, ends: pl.DataFrame, valid_cutoff: datetime, test_cutoff: datetime
) -> dict[str, pl.DataFrame]:
    """``events`` cut into the parts by their session's end (``session_ends`` of those sessions).

    Ending at or after ``test_cutoff`` is test, at or after ``valid_cutoff`` valid, else train.
    Public so the streaming split cuts each partition with the same rule.
    """
    part = (
        pl.when(pl.col("end") >= test_cutoff)
        .then(pl.lit("test"))
        .when(pl.col("end") >= valid_cutoff)
        .then(pl.lit("valid"))
        .otherwise(pl.lit("train"))
    )
    parts = ends.select("session_id", part.alias("part"))
    events = events.with_columns(
        pl.col("session_id").replace_strict(parts["session_id"], parts["part"]).alias("part")
    )
    return {name: events.filter(pl.col("part") == name).drop("part") for name in schema.SPLITS}


def predictable(
    events: pl.DataFrame, train_items: pl.Series, cutoff: datetime, min_session_length: int
) -> tuple[pl.DataFrame, dict]:
    """Valid or test ``events`` the model can be scored on, and what was removed, by reason.

    Items without a train embedding cannot be predicted, so they go. A session whose last events
    were such items could then end before its part's ``cutoff``: it goes too, so "every test
    session ends at or after the test cutoff" stays true. Sessions left shorter than
    ``min_session_length`` go last. ``events`` must hold whole sessions (all of a part, or a
    partition of it, as ``streaming`` runs it).
    """
    known = events.filter(pl.col("item_id").is_in(train_items.implode()))
    in_period = known.filter(pl.col("timestamp").max().over("session_id") >= cutoff)
    long_enough = in_period.filter(pl.len().over("session_id") >= min_session_length)
    report = {
        "ended_before_cutoff": {
            "events_removed": known.height - in_period.height,
            "sessions_removed": known["session_id"].n_unique() - in_period["session_id"].n_unique(),
        },
        "unseen_items": {
            "events_removed": events.height - known.height,
            "items_removed": events["item_id"].n_unique() - known["item_id"].n_unique(),
        },
        "short_sessions": {
            "events_removed": in_period.height - long_enough.height,
            "sessions_removed": in_period["session_id"].n_unique() - long_enough["session_id"].n_unique(),
        },
    }
    return long_enough, report


def require_part(name: str, n_events: int, assigned_sessions: int, method: str) -> None:
    """An empty part is a user error that names the knob to turn; shared with the streaming split."""
    if n_events == 0:
        raise InputDataError(
            f"the {name} split is empty ({assigned_sessions} sessions assigned before "
            f"dropping unseen items and short sessions; method {method!r}). "
            f"{_KNOBS[method][name].capitalize()} in the preprocessing settings "
            "(resources.preprocessing.config), or use more data."
        )


def item_index(support: pl.DataFrame) -> pl.DataFrame:
    """Dense index over train items in ascending item_id, from their ``cleansing.item_support``.

    Takes the support, not the events, so the streaming split can sum it over partitions.
    """
    return support.sort("item_id").select(
        "item_id",
        pl.int_range(pl.len(), dtype=pl.Int32).alias("item_idx"),
        pl.col("support").cast(pl.UInt32),
    )


def split_by_days(
    cleansed: pl.DataFrame, test_days: float = 30, valid_days: float = 30, min_session_length: int = 2
) -> Split:
    """Test: sessions ending in the last ``test_days``; valid: the ``valid_days`` before the rest ends.

    Every train session ends before ``valid_cutoff`` and every test session at or after
    ``test_cutoff``. Counting valid days back from the last non-test event (not from the test
    cutoff) keeps valid non-empty even when sessions straddling the test cutoff leave a hole.
    """
    check_days(test_days, valid_days)
    ends = session_ends(cleansed)
    valid_cutoff, test_cutoff = day_cutoffs(ends, test_days, valid_days)
    return _finish(
        cleansed,
        ends,
        method="days",
        valid_cutoff=valid_cutoff,
        test_cutoff=test_cutoff,
        min_session_length=min_session_length,
    )


def split_by_fraction(
    cleansed: pl.DataFrame,
    test_fraction: float = 0.1,
    valid_fraction: float = 0.1,
    min_session_length: int = 2,
) -> Split:
    """Test: the latest-ending ``test_fraction`` of sessions; valid: the ``valid_fraction`` before them.

    Sessions are ranked by end time; each cutoff is the end time found at its fraction, and every
    session ending at or after a cutoff goes to the later part. Sessions tied at a cutoff therefore
    stay together, so the parts can be slightly larger than their fraction, and every train session
    ends strictly before ``valid_cutoff`` as with the days rule.
    """
    check_fractions(test_fraction, valid_fraction)
    ends = session_ends(cleansed)
    n_test = max(1, round(ends.height * test_fraction))
    n_valid = max(1, round(ends.height * valid_fraction))
    if n_test + n_valid >= ends.height:
        raise InputDataError(
            f"only {ends.height} sessions: test_fraction {test_fraction} and valid_fraction "
            f"{valid_fraction} leave none to train on; lower them or use more data."
        )
    test_cutoff = ends["end"][ends.height - n_test]
    valid_cutoff = ends["end"][ends.height - n_test - n_valid]
    return _finish(
        cleansed,
        ends,
        method="fraction",
        valid_cutoff=valid_cutoff,
        test_cutoff=test_cutoff,
        min_session_length=min_session_length,
    )


def _finish(
    cleansed: pl.DataFrame,
    ends: pl.DataFrame,
    *,
    method: str,
    valid_cutoff: datetime,
    test_cutoff: datetime,
    min_session_length: int,
) -> Split:
    """Shared by every method: cut events by session part, keep valid/test predictable, index items."""
    if isinstance(min_session_length, bool) or not isinstance(min_session_length, numbers.Integral):
        raise InputDataError(f"min_session_length must be an integer >= 2; got {min_session_length!r}.")
    if min_session_length < 2:
        raise InputDataError(
            f"min_session_length must be >= 2 to leave a target to predict; got {min_session_length}."
        )
    frames = parts_by_cutoffs(cleansed.sort(*_EVENT_ORDER), ends, valid_cutoff, test_cutoff)
    report: dict = {"assigned": {name: cleansing.sizes(frame) for name, frame in frames.items()}}
    train_items = frames["train"]["item_id"].unique()
    cutoffs = {"valid": valid_cutoff, "test": test_cutoff}
    for name in ("valid", "test"):
        frames[name], removed = predictable(frames[name], train_items, cutoffs[name], min_session_length)
        report.update({f"{name}_{reason}": counts for reason, counts in removed.items()})
    for name in schema.SPLITS:
        require_part(name, frames[name].height, report["assigned"][name]["sessions"], method)
    report["final"] = {name: cleansing.sizes(frame) for name, frame in frames.items()}
    tables = {name: frame.select(list(schema.SPLIT)) for name, frame in frames.items()}
    return Split(
        train=tables["train"],
        valid=tables["valid"],
        test=tables["test"],
        item_index=item_index(cleansing.item_support(frames["train"])),
        method=method,
        valid_cutoff=valid_cutoff,
        test_cutoff=test_cutoff,
        report=report,
    )


def check_settings(
    method: object, *, test_days: object, valid_days: object, test_fraction: object, valid_fraction: object
) -> None:
    """Every split knob, whichever method is used: a wrong one fails before anything is written."""
    if method not in _KNOBS:
        raise InputDataError(f"unknown split method {method!r}: use {' or '.join(map(repr, _KNOBS))}.")
    check_days(test_days, valid_days)
    check_fractions(test_fraction, valid_fraction)


def split(
    cleansed: pl.DataFrame,
    method: Literal["days", "fraction"] = "days",
    *,
    test_days: float = 30,
    valid_days: float = 30,
    test_fraction: float = 0.1,
    valid_fraction: float = 0.1,
    min_session_length: int = 2,
) -> Split:
    """Dispatch on ``method``; the knobs of the other method are ignored."""
    if method == "days":
        return split_by_days(cleansed, test_days, valid_days, min_session_length)
    if method == "fraction":
        return split_by_fraction(cleansed, test_fraction, valid_fraction, min_session_length)
    raise InputDataError(f"unknown split method {method!r}: use 'days' or 'fraction'.")
