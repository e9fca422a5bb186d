"""Describe a table of sessions: the numbers that let a person compare session definitions (plots: ``plots``).

Everything returned is plain JSON-able data (ints, floats, strings) or arrays, so any front
end (Dagster metadata, a report, a notebook) can show it without knowing Polars.
"""

from __future__ import annotations

import numpy as np
import polars as pl


def session_lengths(frame: pl.DataFrame) -> np.ndarray:
    """Events per session, in session id order."""
    return frame.group_by("session_id").len().sort("session_id")["len"].to_numpy().astype(np.int64)


def session_durations(frame: pl.DataFrame) -> np.ndarray:
    """Seconds from each session's first to its last event, in session id order."""
    spans = frame.group_by("session_id").agg(
        (pl.col("timestamp").max() - pl.col("timestamp").min()).alias("span")
    )
    return spans.sort("session_id")["span"].dt.total_microseconds().to_numpy() / 1e6


def _summary(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return dict.fromkeys(("min", "median", "mean", "p99", "max"))
    return {
        "min": float(values.min()),
        "median": float(np.median(values)),
        "mean": float(values.mean()),
        "p99": float(np.percentile(values, 99)),
        "max": float(values.max()),
    }


def session_stats(frame: pl.DataFrame) -> dict:
    """Sizes, session length and duration summaries, time span and rating counts of ``frame``."""
    first, last = frame["timestamp"].min(), frame["timestamp"].max()
    ratings = dict(frame.group_by("rating").len().iter_rows()) if "rating" in frame.columns else {}
    return {
        "events": frame.height,
        "sessions": frame["session_id"].n_unique(),
        "users": frame["user_id"].n_unique(),
        "items": frame["item_id"].n_unique(),
        "session_length": _summary(session_lengths(frame)),
        "session_duration_s": _summary(session_durations(frame)),
        "time_span": {
            "first": first.isoformat() if first is not None else None,
            "last": last.isoformat() if last is not None else None,
            "days": (last - first).total_seconds() / 86_400 if first is not None else None,
        },
        "ratings": {stars: int(ratings.get(stars, 0)) for stars in range(1, 6)},
    }
