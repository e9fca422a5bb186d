"""Drop rare items and short sessions until both thresholds hold at once.

Removing a rare item shortens its sessions, and removing a short session lowers its items'
support, so one pass of each filter is not enough: the filters repeat until a round removes
nothing (a fixpoint), and every round is reported for lineage.

A round is split in two so it also runs on data larger than memory (``streaming``): item
support is a global count, summed over parts of the events, while the session-length filter
only needs whole sessions, so it runs on any part of the events holding whole sessions.
"""

from __future__ import annotations

import numbers

import polars as pl

from sbr_dagster.errors import InputDataError


def _check_threshold(name: str, value: object, minimum: int, why: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise InputDataError(f"{name} must be an integer >= {minimum} ({why}); got {value!r}.")


def check_thresholds(min_session_length: object, min_item_support: object) -> None:
    _check_threshold("min_session_length", min_session_length, 2, "a session needs 2 events to predict one")
    _check_threshold("min_item_support", min_item_support, 1, "1 keeps every item")


def item_support(events: pl.DataFrame) -> pl.DataFrame:
    """Events per item (``item_id``, ``support``); supports of parts holding disjoint events add up."""
    return events.group_by("item_id").agg(pl.len().alias("support"))


def supported_items(support: pl.DataFrame, min_item_support: int) -> pl.Series:
    """Items of an ``item_support`` table with at least ``min_item_support`` events."""
    return support.filter(pl.col("support") >= min_item_support)["item_id"]


def cleansing_round(events: pl.DataFrame, items: pl.Series, min_session_length: int) -> pl.DataFrame:
    """Keep the events of ``items``, then drop sessions left shorter than ``min_session_length``.

    ``events`` must hold whole sessions (all of the data, or a part cut between sessions).
    """
    kept = events.filter(pl.col("item_id").is_in(items.implode()))
    return kept.filter(pl.len().over("session_id") >= min_session_length)


def sizes(events: pl.DataFrame) -> dict[str, int]:
    return {
        "events": events.height,
        "sessions": events["session_id"].n_unique(),
        "items": events["item_id"].n_unique(),
    }


def round_report(number: int, before: dict[str, int], after: dict[str, int]) -> dict:
    """One report row from the ``sizes`` before and after a round."""
    return {"round": number, **{f"{key}_removed": before[key] - after[key] for key in before}}


def cleanse(
    sessions: pl.DataFrame, min_session_length: int = 2, min_item_support: int = 5
) -> tuple[pl.DataFrame, list[dict]]:
    """Keep items with >= ``min_item_support`` events in sessions with >= ``min_session_length`` events.

    Returns the surviving events (same schema and order) and one report row per round that removed
    something: round, events_removed, sessions_removed, items_removed.
    """
    check_thresholds(min_session_length, min_item_support)
    original, report = sessions, []
    while True:
        items = supported_items(item_support(sessions), min_item_support)
        kept = cleansing_round(sessions, items, min_session_length)
        if kept.height == sessions.height:
            fail_if_nothing_left(original, kept.height, min_session_length, min_item_support)
            return kept, report
        report.append(round_report(len(report) + 1, sizes(sessions), sizes(kept)))
        sessions = kept


def fail_if_nothing_left(
    sessions: pl.DataFrame, kept: int, min_session_length: int, min_item_support: int
) -> None:
    """Nothing left after cleansing is an error that names its real cause, found in the input sessions.

    Shared with the streaming path, which passes a sample of whole sessions (any part of them tells
    the same story when every session is too short).
    """
    if kept:
        return
    if sessions.height == 0:
        raise InputDataError("there are no events to cleanse: the rating policy or the data left none.")
    lengths = sessions.group_by("session_id").len()["len"]
    short = float((lengths < min_session_length).mean())
    if short == 1.0:
        raise InputDataError(
            f"{short:.0%} of the {lengths.len():,} sessions have fewer than {min_session_length} events "
            f"(the longest has {lengths.max()}), so nothing can be predicted: use a session definition "
            "that cuts less (a longer gap, or 'user'), or keep more ratings."
        )
    raise InputDataError(
        f"cleansing removed every event: min_item_support={min_item_support} and "
        f"min_session_length={min_session_length} leave nothing ({short:.0%} of sessions are shorter; the "
        f"most-rated item has {item_support(sessions)['support'].max():,} events). Lower them in the "
        "preprocessing settings (resources.preprocessing.config)."
    )
