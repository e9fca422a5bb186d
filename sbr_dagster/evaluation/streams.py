"""What each protocol scores a variant on, as ``data.timeline.Replay`` streams.

On the timeline protocol every variant replays the same shared targets through its own session
definition and rating policy; on the days and fraction protocols each test session is its own
stream. Training (validation) and evaluation ask here, so both see the same targets.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from sbr_dagster.data import sessions, timeline
from sbr_dagster.data.arrays import Sessions
from sbr_dagster.data.timeline import Replay
from sbr_dagster.errors import InputDataError

TIMELINE = "timeline"


def all_on_timeline(metrics: Mapping[str, pl.DataFrame]) -> bool:
    """Whether every metrics table was scored on the shared timeline: only then do variants pair."""
    return all((table["protocol"] == TIMELINE).all() for table in metrics.values())


def split_streams(
    method: str,
    definition: str,
    *,
    tables: dict[str, pl.DataFrame],
    item_index: pl.DataFrame,
    ratings: pl.DataFrame,
    cuts: pl.DataFrame,
    targets: pl.DataFrame,
    min_rating: int | None,
    parts: tuple[str, ...] = ("valid", "test"),
) -> dict[str, Replay]:
    """The streams of ``parts`` for ``definition`` under split ``method``.

    ``tables`` holds the definition's valid/test split tables (used by days and fraction).
    """
    if method != TIMELINE:
        return {part: Replay.of_sessions(Sessions.of(tables[part], item_index)) for part in parts}
    shared = targets.group_by("split").len()
    for part in parts:
        expected = shared.filter(pl.col("split") == part)["len"].sum()
        if part in tables and tables[part].height != expected:
            raise InputDataError(
                f"{definition}/{part} holds {tables[part].height:,} events but the timeline has "
                f"{expected:,} {part} targets: the split was made by another method or timeline; "
                f"re-run the preprocessing of {definition} with split_method {method!r}."
            )
    parsed = sessions.parse_definition(definition)
    return timeline.split_streams(
        ratings, item_index, targets, timeline.cuts_of(cuts), gap=parsed.gap,
        min_rating=sessions.rating_floor(parsed, min_rating), parts=parts,
    )  # fmt: skip
