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
    report = []
    while True:
        items = supported_items(item_support(sessions), min_item_support)
        kept = cleansing_round(sessions, items, min_session_length)
        if kept.height == sessions.height:
            return kept, report
        report.append(round_report(len(report) + 1, sizes(sessions), sizes(kept)))
        sessions = kept
