"""Describe a table of sessions: the numbers and plots that let a person compare session definitions.

Everything returned is plain JSON-able data (ints, floats, strings) or PNG bytes, so any front
end (Dagster metadata, a report, a notebook) can show it without knowing Polars.
"""

from __future__ import annotations

import base64
import io

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


def histogram_png(values: np.ndarray, title: str, xlabel: str, log_x: bool = False) -> bytes:
    """A small histogram as PNG bytes; ``log_x`` suits long tails (values <= 0 join the first bin)."""
    from matplotlib.figure import Figure  # lazy: keeps importing the core cheap; Figure needs no pyplot state

    values = np.asarray(values, dtype=np.float64)
    figure = Figure(figsize=(5, 3), dpi=100)
    axes = figure.subplots()
    if values.size and log_x:
        low = values[values > 0].min() if (values > 0).any() else 1.0
        high = max(values.max(), low * 1.01)
        axes.hist(np.clip(values, low, None), bins=np.geomspace(low, high, 41))
        axes.set_xscale("log")
    elif values.size:
        axes.hist(values, bins=40)
    axes.set_title(f"{title} (n={values.size:,})", fontsize=10)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("count")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    """Inline ``png`` as a data URI: Dagster's markdown metadata shows it without serving a file."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
