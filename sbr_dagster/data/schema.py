"""Column names and dtypes of every lake table, in one place: parsers produce them, checks enforce them."""

from __future__ import annotations

import polars as pl

from sbr_dagster.lake import layout

TIMESTAMP = pl.Datetime("us", "UTC")

RATINGS = {
    "user_id": pl.Int32,
    "item_id": pl.Int32,
    "rating": pl.Int8,
    "timestamp": TIMESTAMP,
    "line": pl.UInt32,  # 1-based line number in ratings.dat: the original file order, breaks timestamp ties
}

MOVIES = {
    "item_id": pl.Int32,
    "title": pl.String,
    "year": pl.Int16,  # null when the title carries no "(YYYY)"
    "genres": pl.List(pl.String),
}

# Events with their session: ratings plus session_id, ordered by session_id then timestamp then line.
SESSIONS = {"session_id": pl.Int32, **RATINGS}

# train / valid / test tables (same order as SESSIONS).
SPLIT = {
    "session_id": pl.Int32,
    "user_id": pl.Int32,
    "item_id": pl.Int32,
    "rating": pl.Int8,
    "timestamp": TIMESTAMP,
}

# item_id -> dense index 0..n-1 over the train items, in ascending item_id order; support = train events.
ITEM_INDEX = {"item_id": pl.Int32, "item_idx": pl.Int32, "support": pl.UInt32}

SPLITS = layout.SPLITS  # re-exported: the tables of a split are named in the lake layout


def schema_errors(frame: pl.DataFrame, expected: dict[str, pl.DataType]) -> list[str]:
    """Differences between ``frame``'s schema and ``expected`` (empty when they match exactly)."""
    problems = []
    actual = dict(frame.schema)
    for name, dtype in expected.items():
        if name not in actual:
            problems.append(f"missing column {name!r}")
        elif actual[name] != dtype:
            problems.append(f"column {name!r} has dtype {actual[name]}, expected {dtype}")
    problems += [f"unexpected column {name!r}" for name in actual if name not in expected]
    return problems
