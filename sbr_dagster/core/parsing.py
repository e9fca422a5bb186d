"""Parse MovieLens ``.dat`` files (``field::field::...``) into typed Polars frames.

Each file is read as lines and validated with vectorized masks; only the first bad line is turned
into text, so a malformed file fails with its path, line number and content instead of a stack
trace deep inside a CSV reader, while a valid file costs no Python work per line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import polars as pl

from sbr_dagster.core import schema
from sbr_dagster.core.errors import InputDataError

SEPARATOR = "::"
RATINGS_FORMAT = "UserID::MovieID::Rating::Timestamp"
MOVIES_FORMAT = "MovieID::Title::Genres"
_INT32_MAX = 2**31 - 1
# Epoch seconds below this are before the year 5138; larger values are milliseconds or garbage.
_MAX_EPOCH_SECONDS = 10**11
_YEAR = r"\s*\((\d{4})\)\s*$"


def _read_lines(path: str | os.PathLike[str], what: str) -> pl.DataFrame:
    """Lines of ``path`` with their 1-based number; Latin-1 decodes any byte, so no line is lost."""
    path = Path(path)
    if not path.is_file():
        problem = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise InputDataError(
            f"{what} file {path} {problem}. Point SBR_ML1M_DIR at the extracted MovieLens 1M "
            "directory (the one holding ratings.dat and movies.dat) or let the pipeline download it."
        )
    text = path.read_bytes().decode("latin-1")
    if not text.strip():
        raise InputDataError(f"{what} file {path} is empty. Re-download or re-extract MovieLens 1M.")
    if text.endswith("\n"):
        text = text[:-1]
    lines = pl.Series([text]).str.split("\n")[0].str.strip_suffix("\r")
    return lines.alias("text").to_frame().with_row_index("line", offset=1)


def _fail_first(
    frame: pl.DataFrame, bad: pl.Expr, path: str | os.PathLike[str], explain: Callable[[dict], str]
) -> None:
    """Raise for the first row where ``bad`` holds; ``explain(row) -> str`` says what is wrong there."""
    flagged = frame.select(bad.fill_null(True).alias("bad"))["bad"]
    if not flagged.any():
        return
    row = frame.row(int(flagged.arg_max()), named=True)
    raise InputDataError(f"{path}, line {row['line']}: {explain(row)}")


def _field_problem(text: str, n_fields: int, layout: str) -> str | None:
    """Why ``text`` does not split into ``n_fields`` fields, or None when the count is right."""
    found = len(text.split(SEPARATOR)) if text else 0
    if found == n_fields:
        return None
    hint = ""
    for sep, name in (
        (",", "commas"),
        ("\t", "tabs"),
        (";", "semicolons"),
        ("|", "pipes"),
        (":", "single colons"),
    ):
        if SEPARATOR not in text and sep in text:
            hint = f" It looks separated by {name}; fields must be separated by '::'."
    return (
        f"expected {n_fields} fields '{layout}', found {found} in {text!r}.{hint} "
        "Fix or remove this line, or re-download the data set."
    )


def read_ratings(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read ``ratings.dat`` into ``schema.RATINGS``, in file order; ``line`` keeps that order for ties."""
    lines = _read_lines(path, "ratings")
    names = ["user_id", "item_id", "rating", "timestamp"]
    # A fifth field catches lines with too many separators; too few leave a null field.
    fields = lines.with_columns(
        pl.col("text").str.split_exact(SEPARATOR, 4).struct.rename_fields([*names, "extra"]).alias("fields")
    ).unnest("fields")
    fields = fields.with_columns(pl.col(names).str.to_integer(strict=False))

    def explain(row: dict) -> str:
        layout_problem = _field_problem(row["text"], 4, RATINGS_FORMAT)
        if layout_problem:
            return layout_problem
        raw = dict(zip(names, row["text"].split(SEPARATOR), strict=True))
        for name in names:
            if row[name] is None:
                return f"{name} {raw[name]!r} is not an integer in {row['text']!r}. Fix or remove this line."
        if not 1 <= row["rating"] <= 5:
            return f"rating {row['rating']} is outside 1..5 in {row['text']!r}. Fix or remove this line."
        if not 0 <= row["timestamp"] < _MAX_EPOCH_SECONDS:
            return (
                f"timestamp {row['timestamp']} is not Unix epoch seconds in {row['text']!r}. "
                "Fix or remove this line."
            )
        return f"user_id/item_id must be in 1..{_INT32_MAX} in {row['text']!r}. Fix or remove this line."

    bad = (
        pl.col("extra").is_not_null()
        | pl.any_horizontal(pl.col(names).is_null())
        | ~pl.col("rating").is_between(1, 5)
        | ~pl.col("timestamp").is_between(0, _MAX_EPOCH_SECONDS - 1)
        | ~pl.col("user_id").is_between(1, _INT32_MAX)
        | ~pl.col("item_id").is_between(1, _INT32_MAX)
    )
    _fail_first(fields, bad, path, explain)
    return fields.select(
        pl.col("user_id").cast(pl.Int32),
        pl.col("item_id").cast(pl.Int32),
        pl.col("rating").cast(pl.Int8),
        (pl.col("timestamp") * 1_000_000).cast(schema.TIMESTAMP),
        pl.col("line").cast(pl.UInt32),
    )


def drop_duplicate_ratings(ratings: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Keep one rating per (user, movie), the earliest (timestamp, then file line); return how many dropped.

    A re-rating is not a new viewing, so only the first one is an event of the user's history.
    The result stays in file order. MovieLens 1M has no duplicates; the policy guards edited inputs.
    """
    pair = pl.col("user_id").cast(pl.Int64) * 2**32 + pl.col("item_id").cast(pl.Int64)
    if ratings.select(pair.n_unique()).item() == ratings.height:
        return ratings, 0
    first = ratings.sort("timestamp", "line").select("line", pair.is_first_distinct().alias("first"))
    kept_lines = first.filter("first")["line"]
    kept = ratings.filter(pl.col("line").is_in(kept_lines.implode()))
    return kept, ratings.height - kept.height


def read_movies(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read ``movies.dat`` (Latin-1) into ``schema.MOVIES``; the title loses its trailing "(YYYY)"."""
    lines = _read_lines(path, "movies")
    # Split on the first and the last '::' so a title may itself contain ':' or '::'.
    fields = lines.with_columns(
        pl.col("text")
        .str.extract_groups(r"^(.*?)::(.*)::(.*)$")
        .struct.rename_fields(["raw_id", "raw_title", "raw_genres"])
        .alias("fields")
    ).unnest("fields")
    fields = fields.with_columns(pl.col("raw_id").str.to_integer(strict=False).alias("item_id"))

    def explain(row: dict) -> str:
        if row["raw_id"] is None:
            return (
                f"expected 3 fields '{MOVIES_FORMAT}' separated by '::' in {row['text']!r}. "
                "Fix or remove this line, or re-download the data set."
            )
        return f"movie id {row['raw_id']!r} is not an integer in 1..{_INT32_MAX} in {row['text']!r}. Fix it."

    _fail_first(fields, ~pl.col("item_id").is_between(1, _INT32_MAX), path, explain)
    repeated = fields.filter(pl.col("item_id").is_duplicated())
    if repeated.height:
        first_two = repeated.filter(pl.col("item_id") == repeated["item_id"][0])["line"].to_list()[:2]
        raise InputDataError(
            f"{path}, line {first_two[1]}: movie id {repeated['item_id'][0]} already appears on line "
            f"{first_two[0]}. Each movie must be listed once; remove the duplicate line."
        )
    title = pl.col("raw_title").str.strip_chars()
    return fields.select(
        pl.col("item_id").cast(pl.Int32),
        title.str.replace(_YEAR, "").alias("title"),
        title.str.extract(_YEAR, 1).cast(pl.Int16).alias("year"),
        pl.col("raw_genres")
        .str.strip_chars()
        .str.split("|")
        .list.eval(pl.element().filter(pl.element() != ""))
        .alias("genres"),
    )
