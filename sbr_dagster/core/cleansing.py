"""Drop rare items and short sessions until both thresholds hold at once.

Removing a rare item shortens its sessions, and removing a short session lowers its items'
support, so one pass of each filter is not enough: the filters repeat until a round removes
nothing (a fixpoint), and every round is reported for lineage.
"""

from __future__ import annotations

import numbers

import polars as pl

from sbr_dagster.core.errors import InputDataError


def _check_threshold(name: str, value: object, minimum: int, why: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise InputDataError(f"{name} must be an integer >= {minimum} ({why}); got {value!r}.")


def cleanse(
    sessions: pl.DataFrame, min_session_length: int = 2, min_item_support: int = 5
) -> tuple[pl.DataFrame, list[dict]]:
    """Keep items with >= ``min_item_support`` events in sessions with >= ``min_session_length`` events.

    Returns the surviving events (same schema and order) and one report row per round that removed
    something: round, events_removed, sessions_removed, items_removed.
    """
    _check_threshold("min_session_length", min_session_length, 2, "a session needs 2 events to predict one")
    _check_threshold("min_item_support", min_item_support, 1, "1 keeps every item")
    report = []
    while True:
        kept = sessions.filter(pl.len().over("item_id") >= min_item_support)
        kept = kept.filter(pl.len().over("session_id") >= min_session_length)
        if kept.height == sessions.height:
            return kept, report
        report.append(
            {
                "round": len(report) + 1,
                "events_removed": sessions.height - kept.height,
                "sessions_removed": sessions["session_id"].n_unique() - kept["session_id"].n_unique(),
                "items_removed": sessions["item_id"].n_unique() - kept["item_id"].n_unique(),
            }
        )
        sessions = kept
