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

from sbr_dagster.core import schema
from sbr_dagster.core.errors import InputDataError

_EVENT_ORDER = ("session_id", "timestamp", "line")


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


def _session_ends(events: pl.DataFrame) -> pl.DataFrame:
    """One row per session with its last event time, in (end, session_id) order; none is a user error."""
    if events.height == 0:
        raise InputDataError(
            "cannot split: no sessions are left after cleansing. Lower min_item_support or "
            "min_session_length in the preprocessing settings (resources.preprocessing.config), or keep "
            "more ratings (min_rating / the definition's _rK suffix)."
        )
    return events.group_by("session_id").agg(pl.col("timestamp").max().alias("end")).sort("end", "session_id")


def _check_days(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < math.inf:
        raise InputDataError(f"{name} must be a positive number of days; got {value!r}.")


def _check_fractions(test_fraction: object, valid_fraction: object) -> None:
    for name, value in (("test_fraction", test_fraction), ("valid_fraction", valid_fraction)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:
            raise InputDataError(f"{name} must be a number strictly between 0 and 1; got {value!r}.")
    if test_fraction + valid_fraction >= 1:
        raise InputDataError(
            f"test_fraction + valid_fraction = {test_fraction + valid_fraction} leaves no sessions to "
            "train on; keep their sum below 1."
        )


def _parts_by_cutoffs(ends: pl.DataFrame, valid_cutoff: datetime, test_cutoff: datetime) -> pl.DataFrame:
    """Session -> part: ending at or after ``test_cutoff`` is test, at or after ``valid_cutoff`` valid."""
    return ends.select(
        "session_id",
        pl.when(pl.col("end") >= test_cutoff)
        .then(pl.lit("test"))
        .when(pl.col("end") >= valid_cutoff)
        .then(pl.lit("valid"))
        .otherwise(pl.lit("train"))
        .alias("part"),
    )


def split_by_days(
    cleansed: pl.DataFrame, test_days: float = 30, valid_days: float = 30, min_session_length: int = 2
) -> Split:
    """Test: sessions ending in the last ``test_days``; valid: the ``valid_days`` before the rest ends.

    Every train session ends before ``valid_cutoff`` and every test session at or after
    ``test_cutoff``. Counting valid days back from the last non-test event (not from the test
    cutoff) keeps valid non-empty even when sessions straddling the test cutoff leave a hole.
    """
    _check_days("test_days", test_days)
    _check_days("valid_days", valid_days)
    ends = _session_ends(cleansed)
    test_cutoff = ends["end"].max() - timedelta(days=test_days)
    before_test = ends.filter(pl.col("end") < test_cutoff)
    valid_cutoff = (before_test["end"].max() if before_test.height else test_cutoff) - timedelta(
        days=valid_days
    )
    parts = _parts_by_cutoffs(ends, valid_cutoff, test_cutoff)
    knobs = {"train": "lower test_days / valid_days", "valid": "raise valid_days", "test": "raise test_days"}
    return _finish(
        cleansed,
        parts,
        method="days",
        valid_cutoff=valid_cutoff,
        test_cutoff=test_cutoff,
        min_session_length=min_session_length,
        knobs=knobs,
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
    _check_fractions(test_fraction, valid_fraction)
    ends = _session_ends(cleansed)
    n_test = max(1, round(ends.height * test_fraction))
    n_valid = max(1, round(ends.height * valid_fraction))
    if n_test + n_valid >= ends.height:
        raise InputDataError(
            f"only {ends.height} sessions: test_fraction {test_fraction} and valid_fraction "
            f"{valid_fraction} leave none to train on; lower them or use more data."
        )
    test_cutoff = ends["end"][ends.height - n_test]
    valid_cutoff = ends["end"][ends.height - n_test - n_valid]
    parts = _parts_by_cutoffs(ends, valid_cutoff, test_cutoff)
    knobs = {
        "train": "lower test_fraction + valid_fraction",
        "valid": "raise valid_fraction",
        "test": "raise test_fraction",
    }
    return _finish(
        cleansed,
        parts,
        method="fraction",
        valid_cutoff=valid_cutoff,
        test_cutoff=test_cutoff,
        min_session_length=min_session_length,
        knobs=knobs,
    )


def _size(frame: pl.DataFrame) -> dict[str, int]:
    return {
        "events": frame.height,
        "sessions": frame["session_id"].n_unique(),
        "items": frame["item_id"].n_unique(),
    }


def _finish(
    cleansed: pl.DataFrame,
    parts: pl.DataFrame,
    *,
    method: str,
    valid_cutoff: datetime | None,
    test_cutoff: datetime | None,
    min_session_length: int,
    knobs: dict[str, str],
) -> Split:
    """Shared by every method: cut events by session part, keep valid/test predictable, index items."""
    if isinstance(min_session_length, bool) or not isinstance(min_session_length, numbers.Integral):
        raise InputDataError(f"min_session_length must be an integer >= 2; got {min_session_length!r}.")
    if min_session_length < 2:
        raise InputDataError(
            f"min_session_length must be >= 2 to leave a target to predict; got {min_session_length}."
        )
    events = cleansed.sort(*_EVENT_ORDER).with_columns(
        pl.col("session_id").replace_strict(parts["session_id"], parts["part"]).alias("part")
    )
    frames = {name: events.filter(pl.col("part") == name) for name in schema.SPLITS}
    report: dict = {"assigned": {name: _size(frame) for name, frame in frames.items()}}
    train_items = frames["train"]["item_id"].unique()
    cutoffs = {"valid": valid_cutoff, "test": test_cutoff}
    for name in ("valid", "test"):
        assigned = frames[name]
        known = assigned.filter(pl.col("item_id").is_in(train_items.implode()))
        # A session whose last events were unseen items could now end before its part's cutoff:
        # drop it too, so "every test session ends at or after the test cutoff" stays true.
        in_period = known.filter(pl.col("timestamp").max().over("session_id") >= cutoffs[name])
        long_enough = in_period.filter(pl.len().over("session_id") >= min_session_length)
        report[f"{name}_ended_before_cutoff"] = {
            "events_removed": known.height - in_period.height,
            "sessions_removed": known["session_id"].n_unique() - in_period["session_id"].n_unique(),
        }
        report[f"{name}_unseen_items"] = {
            "events_removed": assigned.height - known.height,
            "items_removed": assigned["item_id"].n_unique() - known["item_id"].n_unique(),
        }
        report[f"{name}_short_sessions"] = {
            "events_removed": in_period.height - long_enough.height,
            "sessions_removed": in_period["session_id"].n_unique() - long_enough["session_id"].n_unique(),
        }
        frames[name] = long_enough
    for name in schema.SPLITS:
        if frames[name].height == 0:
            raise InputDataError(
                f"the {name} split is empty ({report['assigned'][name]['sessions']} sessions assigned before "
                f"dropping unseen items and short sessions; method {method!r}). {knobs[name].capitalize()} "
                "in the preprocessing settings (resources.preprocessing.config), or use more data."
            )
    report["final"] = {name: _size(frame) for name, frame in frames.items()}
    item_index = (
        frames["train"]
        .group_by("item_id")
        .agg(pl.len().cast(pl.UInt32).alias("support"))
        .sort("item_id")
        .select("item_id", pl.int_range(pl.len(), dtype=pl.Int32).alias("item_idx"), "support")
    )
    tables = {name: frame.select(list(schema.SPLIT)) for name, frame in frames.items()}
    return Split(
        train=tables["train"],
        valid=tables["valid"],
        test=tables["test"],
        item_index=item_index,
        method=method,
        valid_cutoff=valid_cutoff,
        test_cutoff=test_cutoff,
        report=report,
    )


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
