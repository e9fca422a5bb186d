"""Parse MovieLens ``.dat`` files (``field::field::...``) into typed Polars frames.

Each file is read as lines and validated with vectorized masks; only the first bad line is turned
into text, so a malformed file fails with its path, line number and content instead of a stack
trace deep inside a CSV reader, while a valid file costs no Python work per line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import polars as pl

from sbr_dagster.data import schema
from sbr_dagster.errors import InputDataError

SEPARATOR = "::"
RATINGS_FORMAT = "UserID::MovieID::Rating::Timestamp"
MOVIES_FORMAT = "MovieID::Title::Genres"
RATING_FIELDS = ("user_id", "item_id", "rating", "timestamp")
# Ids must fit the Int32 columns of ``schema``; public so the streaming reader states the same range.
INT32_MAX = 2**31 - 1
# Epoch seconds below this are before the year 5138; larger values are milliseconds or garbage.
_MAX_EPOCH_SECONDS = 10**11
_YEAR = r"\s*\((\d{4})\)\s*$"
_ARCHIVES = {b"PK\x03\x04": "zip", b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}
_SHOWN_CHARS = 120  # a binary or run-together file is one huge "line": quote only its start
# A DataFrame or a LazyFrame: the ratings rules are Polars expressions, the same for both readers.
Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


def _decode(data: bytes) -> str:
    """UTF-8 when the bytes are valid UTF-8 (ASCII, or a copy re-saved by an editor), else Latin-1.

    ML-1M itself is Latin-1, whose accented bytes are never valid UTF-8, so the guess cannot turn an
    original file into mojibake, while a re-saved UTF-8 copy keeps its accents too. Latin-1 decodes
    any byte, so no line is ever lost.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _read_lines(path: str | os.PathLike[str], what: str) -> pl.DataFrame:
    """Lines of ``path`` with their 1-based number."""
    path = Path(path)
    if not path.is_file():
        problem = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise InputDataError(
            f"{what} file {path} {problem}. Point SBR_ML1M_DIR at the extracted MovieLens 1M "
            "directory (the one holding ratings.dat and movies.dat) or let the pipeline download it."
        )
    data = path.read_bytes()
    archive = next((kind for magic, kind in _ARCHIVES.items() if data.startswith(magic)), None)
    if archive:
        raise InputDataError(
            f"{what} file {path} is a {archive} archive, not text: extract it and point SBR_ML1M_DIR at "
            "the directory holding the extracted ratings.dat and movies.dat."
        )
    text = _decode(data)
    if not text.strip():
        raise InputDataError(f"{what} file {path} is empty. Re-download or re-extract MovieLens 1M.")
    if text.endswith("\n"):
        text = text[:-1]
    lines = pl.Series([text]).str.split("\n")[0].str.strip_suffix("\r")
    return lines.alias("text").to_frame().with_row_index("line", offset=1)


def _shown(text: str) -> str:
    """``repr`` of a line or field, cut short so an error about a garbled file stays readable."""
    if len(text) <= _SHOWN_CHARS:
        return repr(text)
    return f"{text[:_SHOWN_CHARS]!r}... ({len(text):,} characters)"


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
        f"expected {n_fields} fields '{layout}', found {found} in {_shown(text)}.{hint} "
        "Fix or remove this line, or re-download the data set."
    )


def rating_fields(lines: Frame) -> Frame:
    """``lines`` (``line``, ``text``) plus the ratings fields as integers (null where not one) and ``valid``.

    A fifth field, ``extra``, catches lines with too many separators; too few leave a null field.
    ``valid`` holds where the line keeps every rule. Works on a LazyFrame too, so the streaming
    reader (``streaming``) applies the very rules of ``read_ratings``.
    """
    split = pl.col("text").str.split_exact(SEPARATOR, 4).struct.rename_fields([*RATING_FIELDS, "extra"])
    valid = (
        pl.col("extra").is_null()
        & pl.col("user_id").is_between(1, INT32_MAX)
        & pl.col("item_id").is_between(1, INT32_MAX)
        & pl.col("rating").is_between(1, 5)
        & pl.col("timestamp").is_between(0, _MAX_EPOCH_SECONDS - 1)
    ).fill_null(False)  # a field that is not an integer is null
    return (
        lines.with_columns(split.alias("fields"))
        .unnest("fields")
        .with_columns(pl.col(RATING_FIELDS).str.to_integer(strict=False))
        .with_columns(valid.alias("valid"))
    )


def rating_columns() -> list[pl.Expr]:
    """``schema.RATINGS`` from ``rating_fields``; casts never fail, so a lazy reader can carry bad lines.

    Only a valid line's values mean anything; an invalid line's may be null.
    """
    return [
        pl.col("user_id").cast(pl.Int32, strict=False),
        pl.col("item_id").cast(pl.Int32, strict=False),
        pl.col("rating").cast(pl.Int8, strict=False),
        pl.when("valid").then(pl.col("timestamp") * 1_000_000).cast(schema.TIMESTAMP),
        pl.col("line").cast(pl.UInt32),
    ]


def _rating_problem(row: dict) -> str:
    """What is wrong with one invalid row of ``rating_fields``, and what to do about it."""
    layout_problem = _field_problem(row["text"], 4, RATINGS_FORMAT)
    if layout_problem:
        return layout_problem
    raw = dict(zip(RATING_FIELDS, row["text"].split(SEPARATOR), strict=True))
    line = _shown(row["text"])
    for name in RATING_FIELDS:
        if row[name] is None:
            return f"{name} {_shown(raw[name])} is not an integer in {line}. Fix or remove this line."
    if not 1 <= row["rating"] <= 5:
        return f"rating {row['rating']} is outside 1..5 in {line}. Fix or remove this line."
    if not 0 <= row["timestamp"] < _MAX_EPOCH_SECONDS:
        return f"timestamp {row['timestamp']} is not Unix epoch seconds in {line}. Fix or remove this line."
    return f"user_id/item_id must be in 1..{INT32_MAX} in {line}. Fix or remove this line."


def fail_on_bad_rating(fields: pl.DataFrame, path: str | os.PathLike[str]) -> None:
    """Raise for the first invalid row of ``rating_fields``, naming file, line, value and the fix.

    Public so the streaming reader, which finds the line lazily, raises the very same message.
    """
    _fail_first(fields, ~pl.col("valid"), path, _rating_problem)


def read_ratings(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read ``ratings.dat`` into ``schema.RATINGS``, in file order; ``line`` keeps that order for ties."""
    fields = rating_fields(_read_lines(path, "ratings"))
    fail_on_bad_rating(fields, path)
    return fields.select(rating_columns())


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
    """Read ``movies.dat`` (Latin-1, or UTF-8 if re-saved) into ``schema.MOVIES``; titles lose "(YYYY)"."""
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
                f"expected 3 fields '{MOVIES_FORMAT}' separated by '::' in {_shown(row['text'])}. "
                "Fix or remove this line, or re-download the data set."
            )
        return (
            f"movie id {_shown(row['raw_id'])} is not an integer in 1..{INT32_MAX} "
            f"in {_shown(row['text'])}. Fix it."
        )

    _fail_first(fields, ~pl.col("item_id").is_between(1, INT32_MAX), path, explain)
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
