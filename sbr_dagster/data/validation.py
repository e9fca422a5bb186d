"""Invariants of the lake tables as plain functions returning problems, so checks and tests share them.

Each function returns a list of human-readable problems; an empty list means the invariant holds.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl


def empty_problems(frame: pl.DataFrame, what: str) -> list[str]:
    """An empty table never passes a check: every other invariant would hold vacuously."""
    return [] if frame.height else [f"{what} is empty"]


def null_problems(frame: pl.DataFrame) -> list[str]:
    counts = frame.null_count().row(0, named=True)
    return [f"column {col!r} has {n} nulls" for col, n in counts.items() if n]


def session_length_problems(frame: pl.DataFrame, min_length: int) -> list[str]:
    lengths = frame.group_by("session_id").len()
    short = lengths.filter(pl.col("len") < min_length)
    if short.is_empty():
        return []
    return [f"{short.height} sessions shorter than {min_length} events, e.g. {short.row(0, named=True)}"]


def item_support_problems(frame: pl.DataFrame, min_support: int) -> list[str]:
    support = frame.group_by("item_id").len()
    rare = support.filter(pl.col("len") < min_support)
    if rare.is_empty():
        return []
    return [f"{rare.height} items with fewer than {min_support} events, e.g. {rare.row(0, named=True)}"]


def disjoint_session_problems(parts: dict[str, pl.DataFrame]) -> list[str]:
    problems = []
    names = list(parts)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = (
                parts[a]
                .select("session_id")
                .unique()
                .join(parts[b].select("session_id").unique(), on="session_id")
            )
            if shared.height:
                problems.append(f"{shared.height} sessions are in both {a} and {b}")
    return problems


def unseen_item_problems(train: pl.DataFrame, parts: dict[str, pl.DataFrame]) -> list[str]:
    known = train.select("item_id").unique()
    problems = []
    for name, frame in parts.items():
        unseen = frame.select("item_id").unique().join(known, on="item_id", how="anti")
        if unseen.height:
            problems.append(
                f"{unseen.height} {name} items never appear in train, e.g. {unseen['item_id'][0]}"
            )
    return problems


def session_ends(frame: pl.DataFrame) -> pl.Series:
    return frame.group_by("session_id").agg(pl.col("timestamp").max())["timestamp"]


def cutoff_problems(
    train: pl.DataFrame, test: pl.DataFrame, valid_cutoff: datetime, test_cutoff: datetime
) -> list[str]:
    """Train ends before the validation cut-off, test at or after the test cut-off: nothing leaks back."""
    problems = []
    checks = [
        (
            "train",
            train,
            lambda ends: ends < valid_cutoff,
            f"end before the validation cut-off {valid_cutoff}",
        ),
        ("test", test, lambda ends: ends >= test_cutoff, f"end at or after the test cut-off {test_cutoff}"),
    ]
    for name, frame, holds, rule in checks:
        ends = session_ends(frame)
        bad = ends.filter(~holds(ends))
        if bad.len():
            problems.append(f"{bad.len()} {name} sessions do not {rule} (e.g. one ends {bad[0]})")
    return problems


def expected_predictions(frame: pl.DataFrame) -> int:
    """Every event but each session's first is predicted once."""
    return frame.height - frame["session_id"].n_unique()


def proportion_problems(frame: pl.DataFrame, columns: list[str]) -> list[str]:
    problems = []
    for col in columns:
        values = frame[col].drop_nulls()
        bad = values.filter((values < 0) | (values > 1) | values.is_nan())
        if bad.len():
            problems.append(f"{bad.len()} values of {col!r} outside [0, 1], e.g. {bad[0]}")
    return problems


def timeline_problems(
    train: pl.DataFrame, valid: pl.DataFrame, test: pl.DataFrame, valid_cut: datetime, test_cut: datetime
) -> list[str]:
    """The timeline protocol's split: no train event at or after ``T_valid`` (the models learn from
    nothing later), validation targets in [T_valid, T_test), test targets from T_test on."""
    rules = (
        ("train", train, pl.col("timestamp") >= valid_cut, f"at or after T_valid {valid_cut}"),
        ("valid", valid, (pl.col("timestamp") < valid_cut) | (pl.col("timestamp") >= test_cut),
         f"outside [T_valid {valid_cut}, T_test {test_cut})"),
        ("test", test, pl.col("timestamp") < test_cut, f"before T_test {test_cut}"),
    )  # fmt: skip
    problems = []
    for name, frame, wrong, where in rules:
        bad = frame.filter(wrong)
        if bad.height:
            problems.append(f"{bad.height:,} {name} events are {where} (e.g. at {bad['timestamp'][0]})")
    return problems
