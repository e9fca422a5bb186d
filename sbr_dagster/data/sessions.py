"""Cut each user's rating history into sessions.

MovieLens has no session ids, so a session is a modelling choice: the user's whole history, or a
run of events with no pause longer than a gap. The choice is named (``user``, ``gap_30m``, ...)
so every derived table and result can say which definition produced it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from sbr_dagster.data import schema
from sbr_dagster.errors import InputDataError

GRAMMAR = "'user' or 'gap_<N><s|m|h|d>' (N >= 1), optionally followed by '_r<K>' with K in 1..5"
_NAME = re.compile(r"(?:user|gap_(?P<n>\d+)(?P<unit>[smhd]))(?:_r(?P<k>[1-5]))?")
_EVENT_ORDER = ("user_id", "timestamp", "line")
# A longer pause is not a session boundary but a typo, and far beyond what ``timedelta`` can hold.
MAX_GAP = timedelta(days=36_525)  # 100 years
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}


@dataclass(frozen=True)
class SessionDefinition:
    """``gap`` None: the user's whole history is one session. ``min_rating`` None: keep every rating."""

    name: str
    gap: timedelta | None
    min_rating: int | None = None


def parse_definition(name: str) -> SessionDefinition:
    """``user``, ``gap_30m``, ``gap_1d_r4``, ... -> a definition; anything else is a user error."""
    match = _NAME.fullmatch(name)
    digits = (match["n"] or "").lstrip("0") if match else ""
    if match is None or (match["n"] is not None and not digits):
        raise InputDataError(
            f"unknown session definition {name!r}: expected {GRAMMAR}, e.g. gap_30m or user_r4."
        )
    gap = None
    if digits:
        # Compare digit counts first: int() refuses numbers past 4,300 digits, timedelta past 10^9 days.
        max_seconds = int(MAX_GAP.total_seconds())
        seconds = int(digits) * _UNIT_SECONDS[match["unit"]] if len(digits) <= 15 else max_seconds + 1
        if seconds > max_seconds:
            shown = repr(name) if len(name) <= 60 else f"{name[:40]!r}... ({len(name):,} characters)"
            raise InputDataError(
                f"session definition {shown} has a gap longer than the largest allowed gap, "
                f"gap_{MAX_GAP.days}d (100 years): use a shorter gap, or 'user' for one session per user."
            )
        gap = timedelta(seconds=seconds)
    return SessionDefinition(name=name, gap=gap, min_rating=int(match["k"]) if match["k"] else None)


def assign_sessions(ratings: pl.DataFrame, gap: timedelta | None) -> pl.DataFrame:
    """Add ``session_id``: a new session at each user change or pause STRICTLY longer than ``gap``.

    Equal timestamps keep file order (``line``), so the result never depends on sort stability.
    Ids run 0..n-1 in (user, time, line) order and are unique across users.
    """
    events = ratings.sort(*_EVENT_ORDER)
    starts = pl.col("user_id").diff().fill_null(1) != 0
    if gap is not None:
        starts = starts | (pl.col("timestamp").diff() > gap)
    return events.select(
        (starts.cum_sum() - 1).cast(pl.Int32).alias("session_id"),
        *schema.RATINGS,
    )


def check_min_rating(min_rating: object) -> None:
    if isinstance(min_rating, bool) or not isinstance(min_rating, int) or not 1 <= min_rating <= 5:
        raise InputDataError(
            f"min_rating must be a whole number of stars in 1..5 (1 keeps every rating); got {min_rating!r}."
        )


def apply_rating_policy(sessions: pl.DataFrame, min_rating: int | None) -> pl.DataFrame:
    """Drop events rated below ``min_rating``; session boundaries stay those cut on ALL activity.

    Watching a disliked movie is still activity, so sessions are cut first and filtered after:
    a low rating removes an event, it never splits or merges sessions. Sessions left empty vanish,
    so ids may then have gaps. The rating column stays for analysis.
    """
    if min_rating is None or min_rating <= 1:
        return sessions
    if min_rating > 5:
        raise InputDataError(f"min_rating {min_rating} removes every rating: use a value in 1..5.")
    return sessions.filter(pl.col("rating") >= min_rating)


def rating_floor(definition: SessionDefinition, min_rating: int | None = None) -> int | None:
    """The minimum rating kept: the definition's own ``_rK`` wins over the run-wide ``min_rating``."""
    return definition.min_rating if definition.min_rating is not None else min_rating


def sessionize(
    ratings: pl.DataFrame, definition: SessionDefinition, min_rating: int | None = None
) -> pl.DataFrame:
    """Sessions of ``definition`` with ``rating_floor``'s policy applied."""
    return apply_rating_policy(assign_sessions(ratings, definition.gap), rating_floor(definition, min_rating))
