"""Parse MovieLens ``.dat`` files (``field::field::...``) into typed Polars frames.

Each file is read as lines and validated with vectorized masks; only the first bad line is turned
into text, so a malformed file fails with its path, line number and content instead of a stack
trace deep inside a CSV reader, while a valid file costs no Python work per line.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, NamedTuple, TypeVar

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
# Before the earliest rating of any MovieLens release: ML-20M/25M/latest start on 1995-01-09, ML-100K
# in 1997, ML-1M on 2000-04-25. An earlier time is a clock, unit or typing error, not a rating.
MOVIELENS_START = datetime(1995, 1, 1, tzinfo=UTC)
# The names the Dagster resource gives these settings, so a message tells the user what to set.
EARLIEST_SETTING = "earliest_rating"
LATEST_SETTING = "latest_rating"
DROP_UNKNOWN_SETTING = "drop_unknown_movies"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_SHOWN_IDS = 10  # unknown movie ids named in a message
_YEAR = r"\s*\((\d{4})\)\s*$"
_ARCHIVES = {b"PK\x03\x04": "zip", b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}
_SHOWN_CHARS = 120  # a binary or run-together file is one huge "line": quote only its start
# A DataFrame or a LazyFrame: the ratings rules are Polars expressions, the same for both readers.
Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


# Windows-1252 is Latin-1 with printable characters (curly quotes, dashes, ellipsis, euro sign ...)
# in place of the C1 control codes 0x80-0x9F. The five bytes cp1252 leaves undefined (0x81, 0x8D,
# 0x8F, 0x90, 0x9D) keep their Latin-1 meaning, so no byte fails to decode.
_C1_AS_CP1252 = {
    code: bytes([code]).decode("cp1252", errors="ignore") or chr(code) for code in range(0x80, 0xA0)
}


def _decode(data: bytes) -> str:
    """UTF-8 when the bytes are valid UTF-8 (ASCII, or a copy re-saved by an editor), else Windows-1252.

    ML-1M itself is Latin-1, whose accented bytes are never valid UTF-8, so the guess cannot turn an
    original file into mojibake, while a re-saved UTF-8 copy keeps its accents too. Windows-1252 equals
    Latin-1 except on 0x80-0x9F, bytes ML-1M does not contain and which in Latin-1 are invisible control
    codes, so a file saved by a Windows editor gets its smart quotes and dashes and ML-1M reads as before.
    Every byte decodes, so no line is ever lost.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1").translate(_C1_AS_CP1252)


class PathProblem(NamedTuple):
    """Why a path is not what a reader needs: ``cause`` completes "<path> ...", ``fix`` says what to do.

    ``code`` names the cause for callers that word their advice per cause: missing, wrong_kind,
    broken_link, link_loop, denied, unreachable or os_error.
    """

    code: str
    cause: str
    fix: str = ""

    @property
    def missing(self) -> bool:
        """Nothing at all is there: not a link, a directory or an unreadable file."""
        return self.code == "missing"

    def remedy(self, advice: str) -> str:
        """This cause's own fix, then the caller's general ``advice`` (a sentence) as the alternative."""
        return f"{self.fix}, or {advice[0].lower()}{advice[1:]}" if self.fix else advice


def path_problem(path: str | os.PathLike[str], kind: Literal["file", "directory"]) -> PathProblem | None:
    """What keeps ``path`` from being a readable ``kind``, or None when it is one.

    ``Path.is_file()`` says False for half a dozen different causes; a user can fix each only once told
    which: nothing there, the wrong kind, a broken link, a link loop or missing permission.
    """
    path = Path(path)
    try:
        path.stat()  # follows links
    except FileNotFoundError:
        if not path.is_symlink():
            return PathProblem("missing", "does not exist")
        target = os.readlink(path)
        resolved = path.resolve()
        where = target if str(resolved) == target else f"{target} (that is {resolved})"
        return PathProblem(
            "broken_link",
            f"is a broken symbolic link: it points to {where}, which does not exist",
            f"Fix the link (ln -sfn <real {kind}> {path})",
        )
    except PermissionError:
        return PathProblem(
            "unreachable",
            "cannot be reached: permission denied on a directory above it",
            "Give this user search (x) permission on the directories above it",
        )
    except NotADirectoryError:
        return PathProblem("unreachable", "does not exist: a path above it is a file, not a directory")
    except OSError as error:
        if error.errno != errno.ELOOP:
            return PathProblem("os_error", f"cannot be read: {error.strerror}")
        if path.is_symlink():
            return PathProblem(
                "link_loop",
                "is a symbolic link loop: following it leads back to itself",
                f"Replace the link with one to the real {kind}",
            )
        return PathProblem(
            "link_loop",
            "cannot be reached: a symbolic link above it loops back to itself",
            "Replace that link with one to a real directory",
        )
    if kind == "file" and path.is_dir():
        return PathProblem(
            "wrong_kind", "is a directory, not a file", f"Put the real {path.name} file there instead"
        )
    if kind == "directory" and not path.is_dir():
        return PathProblem("wrong_kind", "is a file, not a directory")
    if kind == "file" and not path.is_file():
        return PathProblem("wrong_kind", "is not a regular file", f"Replace it with the {path.name} file")
    access = os.R_OK if kind == "file" else os.R_OK | os.X_OK
    if not os.access(path, access):
        rights = "r" if kind == "file" else "rx"
        return PathProblem(
            "denied",
            "cannot be read: permission denied",
            f"Give this user read permission (chmod u+{rights} {path})",
        )
    return None


def check_file(path: str | os.PathLike[str], what: str, advice: str) -> None:
    """Raise an ``InputDataError`` naming the real cause when ``path`` is not a readable file.

    ``what`` names the file ("ratings"); ``advice`` is the caller's general remedy, appended to the
    cause's own fix. Public so the streaming reader states the same causes.
    """
    problem = path_problem(path, "file")
    if problem is not None:
        raise InputDataError(f"{what} file {path} {problem.cause}. {problem.remedy(advice)}")


def _read_lines(path: str | os.PathLike[str], what: str) -> pl.DataFrame:
    """Lines of ``path`` with their 1-based number."""
    path = Path(path)
    advice = (
        "Point SBR_ML1M_DIR at the extracted MovieLens 1M directory (the one holding ratings.dat and "
        "movies.dat) or let the pipeline download it."
    )
    check_file(path, what, advice)
    try:
        data = path.read_bytes()
    except OSError as error:  # permission checks can pass and reading still fail (ACLs, I/O errors)
        raise InputDataError(f"{what} file {path} cannot be read: {error.strerror}. {advice}") from error
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


@dataclass(frozen=True)
class RatingWindow:
    """When a rating can plausibly have been made, both ends included; outside it a timestamp is wrong.

    ``latest_is_now`` says the latest time is the time of this run, so a message can say so.
    """

    earliest: datetime
    latest: datetime
    latest_is_now: bool = False

    @property
    def first_second(self) -> int:
        """The first whole epoch second inside the window."""
        return -((_EPOCH - self.earliest) // _SECOND)

    @property
    def last_second(self) -> int:
        """The last whole epoch second inside the window."""
        return (self.latest - _EPOCH) // _SECOND


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _as_utc(value: object, setting: str) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InputDataError(
            f"{setting} must be a timezone-aware datetime such as 1995-01-01T00:00:00+00:00; got {value!r}."
        )
    return value.astimezone(UTC)


def rating_window(earliest: datetime = MOVIELENS_START, latest: datetime | None = None) -> RatingWindow:
    """The window ``read_ratings`` accepts; ``latest`` None is now, resolved once, here.

    Resolved once so every line of one read (and the explanation of a bad one) meets the same bound.
    """
    first = _as_utc(earliest, EARLIEST_SETTING)
    last = datetime.now(UTC) if latest is None else _as_utc(latest, LATEST_SETTING)
    if first > last:
        now = " (the time of this run)" if latest is None else ""
        raise InputDataError(
            f"{EARLIEST_SETTING} {_utc(first)} is after {LATEST_SETTING} {_utc(last)}{now}, so no rating "
            f"could be accepted: set {EARLIEST_SETTING} before {LATEST_SETTING}."
        )
    return RatingWindow(first, last, latest_is_now=latest is None)


def parse_moment(text: str, setting: str) -> datetime:
    """A setting's ISO date or date-time (``2003-02-28``, ``2003-02-28T12:00:00+02:00``); UTC unless it
    names an offset."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except (AttributeError, ValueError):
        raise InputDataError(
            f"{setting} {text!r} is not an ISO date or date-time such as 1995-01-01 or "
            "2003-02-28T12:00:00+00:00."
        ) from None
    return moment if moment.utcoffset() is not None else moment.replace(tzinfo=UTC)


def rating_fields(lines: Frame, window: RatingWindow) -> Frame:
    """``lines`` (``line``, ``text``) plus the ratings fields as integers (null where not one) and ``valid``.

    A fifth field, ``extra``, catches lines with too many separators; too few leave a null field.
    ``valid`` holds where the line keeps every rule, its timestamp inside ``window`` included. Works
    on a LazyFrame too, so the streaming reader (``streaming``) applies the very rules of ``read_ratings``.
    """
    split = pl.col("text").str.split_exact(SEPARATOR, 4).struct.rename_fields([*RATING_FIELDS, "extra"])
    valid = (
        pl.col("extra").is_null()
        & pl.col("user_id").is_between(1, INT32_MAX)
        & pl.col("item_id").is_between(1, INT32_MAX)
        & pl.col("rating").is_between(1, 5)
        & pl.col("timestamp").is_between(0, _MAX_EPOCH_SECONDS - 1)
        & pl.col("timestamp").is_between(window.first_second, window.last_second)
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


def _timestamp_problem(seconds: int, line: str, window: RatingWindow) -> str:
    """Why an epoch-seconds timestamp outside ``window`` is refused, and which setting widens it."""
    moment = f"timestamp {seconds} ({_utc(_EPOCH + seconds * _SECOND)})"
    if seconds < window.first_second:
        return (
            f"{moment} is before the earliest plausible time {_utc(window.earliest)} in {line}. "
            f"Fix or remove this line, or set {EARLIEST_SETTING} to an earlier time."
        )
    now = " (the time of this run)" if window.latest_is_now else ""
    return (
        f"{moment} is after the latest plausible time {_utc(window.latest)}{now} in {line}. "
        f"Fix or remove this line, or set {LATEST_SETTING} to a later time."
    )


def _rating_problem(row: dict, window: RatingWindow) -> str:
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
    if not window.first_second <= row["timestamp"] <= window.last_second:
        return _timestamp_problem(row["timestamp"], line, window)
    return f"user_id/item_id must be in 1..{INT32_MAX} in {line}. Fix or remove this line."


def fail_on_bad_rating(fields: pl.DataFrame, path: str | os.PathLike[str], window: RatingWindow) -> None:
    """Raise for the first invalid row of ``rating_fields``, naming file, line, value and the fix.

    Public so the streaming reader, which finds the line lazily, raises the very same message;
    ``window`` must be the one ``rating_fields`` was given.
    """
    _fail_first(fields, ~pl.col("valid"), path, lambda row: _rating_problem(row, window))


def read_ratings(
    path: str | os.PathLike[str], *, earliest: datetime = MOVIELENS_START, latest: datetime | None = None
) -> pl.DataFrame:
    """Read ``ratings.dat`` into ``schema.RATINGS``, in file order; ``line`` keeps that order for ties.

    A timestamp before ``earliest`` or after ``latest`` (None: now) is an error, not a rating: a
    clock or unit mistake would otherwise bend every session and the time-based split.
    """
    window = rating_window(earliest, latest)
    fields = rating_fields(_read_lines(path, "ratings"), window)
    fail_on_bad_rating(fields, path, window)
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


def unknown_movies(ratings: pl.DataFrame, movies: pl.DataFrame) -> pl.DataFrame:
    """The ratings whose ``item_id`` is not in ``movies``, in file order.

    Such a rating has no title or genres; the caller decides whether to fail or to drop them.
    """
    return ratings.filter(~pl.col("item_id").is_in(movies["item_id"].implode()))


def unknown_movies_problem(unknown: pl.DataFrame, movies_path: str | os.PathLike[str]) -> str:
    """One line naming how many ratings and movies ``unknown_movies`` found, the first ids, and the fix."""
    if unknown.height == 0:
        raise ValueError("unknown_movies_problem needs at least one unknown rating")
    ids = unknown["item_id"].unique(maintain_order=True)
    shown = ", ".join(map(str, ids.head(_SHOWN_IDS).to_list()))
    if ids.len() > _SHOWN_IDS:
        shown += f" and {ids.len() - _SHOWN_IDS:,} more"
    ratings = f"{unknown.height:,} rating{'s' if unknown.height > 1 else ''}"
    movies = f"{ids.len():,} movie{'s' if ids.len() > 1 else ''}"
    verb = ("name " if unknown.height > 1 else "names ") + ("movies" if ids.len() > 1 else "a movie")
    return (
        f"{ratings} (of {movies}) {verb} missing from {movies_path}: {shown}. Add them to "
        f"{Path(movies_path).name}, or set {DROP_UNKNOWN_SETTING} to drop these ratings."
    )
