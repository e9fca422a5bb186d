"""Split tables as the arrays every model consumes, and which of their events are predicted.

Sessions travel as ``items`` (dense item_idx per event, sessions contiguous and in time order) and
``offsets`` (session s is ``items[offsets[s]:offsets[s + 1]]``). Every event but a session's first
is one prediction, so every model is scored on exactly the same targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from sbr_dagster.errors import InputDataError


@dataclass(frozen=True)
class Sessions:
    """Events of many sessions: item_idx, rating and session boundaries (and start times for ordering)."""

    items: np.ndarray  # int32 item_idx per event
    offsets: np.ndarray  # int64, one more than there are sessions
    ratings: np.ndarray  # int8 rating per event (1..5)
    start_times: np.ndarray | None = None  # epoch seconds of each session's first event
    timestamps: np.ndarray | None = None  # epoch seconds of every event (time-aware baselines)

    @classmethod
    def of(cls, frame: pl.DataFrame, item_index: pl.DataFrame) -> Sessions:
        """A split table (``schema.SPLIT``, ordered by session then time) with items as dense item_idx."""
        items, offsets = session_arrays(frame, item_index)
        seconds = frame["timestamp"].dt.epoch("s").to_numpy().astype(np.int64)
        return cls(
            items=items,
            offsets=offsets,
            ratings=frame["rating"].to_numpy().astype(np.int8),
            start_times=seconds[offsets[:-1]] if len(seconds) else np.zeros(0, np.int64),
            timestamps=seconds,
        )

    @classmethod
    def of_histories(
        cls, histories: Sequence[np.ndarray], ratings: Sequence[np.ndarray] | None = None
    ) -> Sessions:
        """Histories of item_idx (oldest first), e.g. to score what comes after each of them."""
        lengths = [len(h) for h in histories]
        items = np.concatenate([np.asarray(h, dtype=np.int32) for h in histories] or [np.zeros(0, np.int32)])
        rated = (
            np.concatenate([np.asarray(r, dtype=np.int8) for r in ratings] or [np.zeros(0, np.int8)])
            if ratings is not None
            else np.zeros(items.size, dtype=np.int8)
        )
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return cls(items=items.astype(np.int32), offsets=offsets, ratings=rated)

    @property
    def n_sessions(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_predictions(self) -> int:
        return int(len(self.items) - self.n_sessions)

    def repeats(self) -> int:
        """How many events repeat a movie earlier in their session (none in ML-1M: a viewer rates a
        movie once)."""
        session = np.repeat(np.arange(self.n_sessions), np.diff(self.offsets))
        pairs = session.astype(np.int64) * (int(self.items.max(initial=0)) + 1) + self.items
        return int(pairs.size - np.unique(pairs).size)

    def item_support(self, n_items: int) -> np.ndarray:
        """Events per item_idx (the train item index's ``support`` when these are the train sessions)."""
        return np.bincount(self.items, minlength=n_items).astype(np.float64)


def session_arrays(frame: pl.DataFrame, item_index: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(items, offsets)`` of a split table ordered by session then time, items as dense item_idx."""
    if item_index["item_id"].is_duplicated().any():
        raise InputDataError("item_index maps some item_id more than once; rebuild it from the train split")
    events = frame.select("session_id", "item_id").join(
        item_index.select("item_id", "item_idx"), on="item_id", how="left", maintain_order="left"
    )
    unknown = events.filter(pl.col("item_idx").is_null())
    if unknown.height:
        first = unknown.row(0, named=True)
        raise InputDataError(
            f"{unknown.height} events have an item_id missing from item_index (first: item_id "
            f"{first['item_id']} in session {first['session_id']}); drop items unseen in train "
            "from the split or rebuild item_index from the same train split"
        )
    session_ids = events["session_id"].to_numpy()
    if np.any(np.diff(session_ids) < 0):
        position = int(np.flatnonzero(np.diff(session_ids) < 0)[0]) + 1
        raise InputDataError(
            f"split table is not ordered by session_id (row {position} has session {session_ids[position]} "
            f"after {session_ids[position - 1]}); sort it by session_id then timestamp"
        )
    starts = np.flatnonzero(np.diff(session_ids)) + 1
    offsets = np.concatenate([[0], starts, [len(session_ids)]]) if len(session_ids) else np.zeros(1)
    return events["item_idx"].to_numpy().astype(np.int32), offsets.astype(np.int64)


def prediction_index(offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(session, event)`` of every prediction, ordered by session then position.

    ``event`` indexes ``items``: the target is ``items[event]``, its prefix ends at
    ``items[event - 1]``, and its position in the session is ``event - offsets[session]``.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    if offsets.size == 0 or offsets[0] != 0:
        raise ValueError("offsets must start at 0 and have one entry more than there are sessions")
    if lengths.size and lengths.min() < 2:
        short = int(np.argmin(lengths))
        raise InputDataError(
            f"session {short} has {lengths[short]} events; every session needs at least 2, "
            "filter short sessions before splitting"
        )
    is_target = np.ones(int(offsets[-1]), dtype=bool)
    is_target[offsets[:-1]] = False
    session = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths - 1)
    return session, np.flatnonzero(is_target).astype(np.int64)
