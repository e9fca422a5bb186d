"""Preprocess ratings larger than memory: the in-memory steps, run one partition of users at a time.

Polars' streaming engine (1.44) parses ratings.dat and writes Parquet in bounded memory, but a
sort, a window (``over``) or a frame read twice (a "multiplexer") buffers its whole input, and
its group-by keeps partial counts per morsel, which grow with the rows when the keys (items)
are scattered. Sessions never cross users, so after one streaming parse the events are cut into
partitions of whole users (consecutive user-id ranges of about ``partition_events`` events).
Each partition fits in memory and runs the very functions the in-memory pipeline runs
(``parsing.drop_duplicate_ratings``, ``sessions.assign_sessions``, ``cleansing.cleansing_round``,
``splitting.parts_by_cutoffs``, ``splitting.predictable``), and the lazy parse applies
``parsing.rating_fields``, the in-memory reader's rules, so no rule is written here a second time.
Only small things cross partitions: item support summed partition by partition (one row per
item), session-id offsets and the split cut-offs. Peak memory therefore follows
``partition_events`` and the number of items, not the number of events, and the tables are the
in-memory pipeline's, row for row, written atomically into the lake layout.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

import polars as pl

from sbr_dagster.data import cleansing, parsing, schema, sessions, splitting
from sbr_dagster.errors import InputDataError
from sbr_dagster.lake import layout
from sbr_dagster.lake.files import (
    atomic_directory,
    atomic_path,
    ensure_directory,
    remove_stale,
    temporary_prefix,
    write_parquet,
)

DEFAULT_PARTITION_EVENTS = 1_000_000
_VALID_LINE = (
    f"'{parsing.RATINGS_FORMAT}' with integer ids in 1..{parsing.INT32_MAX}, a rating in 1..5 and "
    "a timestamp in Unix epoch seconds"
)


def _sink(frame: pl.LazyFrame, target: Path) -> Path:
    """Stream ``frame`` into ``target`` atomically, with the lake's Parquet settings."""
    with atomic_path(target, suffix=".parquet") as tmp:
        frame.sink_parquet(tmp, compression="zstd", statistics=True)
    return target


def _lines(path: Path) -> pl.LazyFrame:
    """``parsing.rating_fields``'s input, read lazily: ``line`` (1-based) and ``text``."""
    # The in-memory reader decodes with utf-8-sig: a byte-order mark before line 1 is not data.
    text = pl.col("text")
    text = pl.when(pl.col("line") == 1).then(text.str.strip_prefix("\ufeff")).otherwise(text)
    lines = pl.scan_lines(path, name="text", row_index_name="line", row_index_offset=1)
    return lines.with_columns(text.alias("text"))


def _parse(path: Path, staged: Path, window: parsing.RatingWindow) -> int:
    """Stream ratings.dat into ``staged``; fail on its first bad line. Returns the number of lines.

    The rules and the message for a bad line are ``parsing.read_ratings``'s, ``window`` included;
    only the first bad line is found lazily (``valid`` is staged with the events) and then explained.
    """
    parsing.check_file(path, "ratings", "Point it at MovieLens-format ratings.dat.")
    fields = parsing.rating_fields(_lines(path), window)
    try:
        fields.select(*parsing.rating_columns(), "valid").sink_parquet(staged)
    except pl.exceptions.ComputeError as error:
        if "utf8" not in str(error).lower():
            raise
        raise InputDataError(
            f"{path} holds bytes that are not text (UTF-8): is it an archive or a binary file? Every "
            f"line must be {_VALID_LINE}. Re-download, extract or fix the file."
        ) from error
    staged_events = pl.scan_parquet(staged)
    n_lines, first_bad = (
        staged_events.select(pl.len(), pl.col("line").filter(~pl.col("valid")).min())
        .collect(engine="streaming")
        .row(0)
    )
    if n_lines == 0:
        raise InputDataError(f"ratings file {path} is empty. Re-download or re-extract the data set.")
    if first_bad is not None:
        bad_line = _lines(path).filter(pl.col("line") == first_bad)
        bad_fields = parsing.rating_fields(bad_line, window).collect(engine="streaming")
        parsing.fail_on_bad_rating(bad_fields, path, window)
    return n_lines


def _add_counts(total: pl.DataFrame | None, counts: pl.DataFrame, key: str) -> pl.DataFrame:
    """Sum two count tables by ``key``.

    Counting part by part and adding keeps one row per key in memory. Polars' streaming group-by
    instead buffers partial counts per morsel, which grows with the rows when keys are scattered
    (measured for items: ~9 bytes a row, 260 MB for 30M events over 50k items).
    """
    if total is None:
        return counts
    return pl.concat([total, counts]).group_by(key).agg(pl.all().sum())


class _Parts:
    """Partition files of one table, and what later steps need about them, gathered while writing.

    That is ``cleansing.sizes`` (sessions never cross partitions, so they add up) and the item
    support, so no step scans all partitions for a global count.
    """

    def __init__(self, directory: Path, name: str) -> None:
        self.directory, self.name = directory, name
        self.paths: list[Path] = []
        self.events = self.sessions = 0
        self.support = pl.DataFrame(schema={"item_id": pl.Int32, "support": pl.UInt32})

    def add(self, frame: pl.DataFrame) -> None:
        """Write ``frame`` as the next partition, in Arrow IPC (written once, read back once or twice).

        An empty frame is skipped: no later step needs anything from it.
        """
        if frame.height == 0:
            return
        self.paths.append(self.directory / f"{self.name}-{len(self.paths):05d}.arrow")
        frame.write_ipc(self.paths[-1], compression="uncompressed")
        self.events += frame.height
        self.sessions += frame["session_id"].n_unique()
        self.support = _add_counts(self.support, cleansing.item_support(frame), "item_id")

    def sizes(self) -> dict[str, int]:
        return {"events": self.events, "sessions": self.sessions, "items": self.support.height}

    def frames(self) -> Iterator[pl.DataFrame]:
        """The partitions one at a time, in order, each read only when the previous one is done with."""
        for path in self.paths:
            yield pl.read_ipc(path)


def _user_ranges(staged: Path, partition_events: int) -> list[tuple[int, int]]:
    """First and last user id of consecutive user ranges of about ``partition_events`` events each.

    A user is never cut, so one very active user can make a partition larger than asked.
    """
    events = pl.scan_parquet(staged)
    n_events = events.select(pl.len()).collect().item()
    users = None
    for start in range(0, n_events, partition_events):
        counts = events.slice(start, partition_events).group_by("user_id").len().collect()
        users = _add_counts(users, counts, "user_id")
    ranges = (
        users.sort("user_id")
        .with_columns(((pl.col("len").cum_sum() - pl.col("len")) // partition_events).alias("part"))
        .group_by("part", maintain_order=True)
        .agg(pl.col("user_id").first().alias("first"), pl.col("user_id").last().alias("last"))
    )
    return list(ranges.select("first", "last").iter_rows())


def _partition(staged: Path, ranges: list[tuple[int, int]], work: Path) -> tuple[list[Path], pl.Series]:
    """Write each user range's ratings, minus re-ratings, to ``work``; return the files and dropped lines."""
    parts, dropped = [], [pl.Series("line", [], pl.UInt32)]
    for number, (first, last) in enumerate(ranges):
        ratings = (
            pl.scan_parquet(staged)
            .filter(pl.col("user_id").is_between(first, last))
            .select(list(schema.RATINGS))
            .collect(engine="streaming")
        )
        kept, n_dropped = parsing.drop_duplicate_ratings(ratings)
        if n_dropped:
            dropped.append(ratings.join(kept, on="line", how="anti")["line"])
        parts.append(work / f"ratings-{number:05d}.arrow")
        kept.write_ipc(parts[-1], compression="uncompressed")
    return parts, pl.concat(dropped)


def _sessions(
    ratings_parts: list[Path], definition: sessions.SessionDefinition, min_rating: int | None, work: Path
) -> _Parts:
    """Sessions per partition; each partition's ids continue where the previous one's ended.

    Partitions are user ranges in ascending order, so the ids equal those of one global
    (user, time, line) pass. The offset counts sessions before the rating policy, as ids do.
    """
    parts, offset = _Parts(work, "sessions"), 0
    floor = sessions.rating_floor(definition, min_rating)
    for path in ratings_parts:
        cut = sessions.assign_sessions(pl.read_ipc(path), definition.gap)
        parts.add(sessions.apply_rating_policy(cut, floor).with_columns(pl.col("session_id") + offset))
        offset += int(cut["session_id"].max()) + 1 if cut.height else 0
    return parts


def _cleanse(
    parts: _Parts, min_session_length: int, min_item_support: int, work: Path
) -> tuple[_Parts, list[dict]]:
    """``cleansing.cleanse`` over partitions: item support is summed over all of them each round."""
    cleansing.check_thresholds(min_session_length, min_item_support)
    original, report = parts, []
    while True:
        items = cleansing.supported_items(parts.support, min_item_support)
        kept = _Parts(work, f"cleansed-{len(report)}")
        for frame in parts.frames():
            kept.add(cleansing.cleansing_round(frame, items, min_session_length))
        if kept.events == parts.events:
            if not kept.events:  # the error path alone reads the two id columns of every partition
                columns = [frame.select("session_id", "item_id") for frame in original.frames()]
                events = pl.concat(columns) if columns else pl.DataFrame(schema=schema.SESSIONS)
                cleansing.fail_if_nothing_left(events, 0, min_session_length, min_item_support)
            return kept, report
        report.append(cleansing.round_report(len(report) + 1, parts.sizes(), kept.sizes()))
        parts = kept


def _split_by_days(
    parts: _Parts, test_days: float, valid_days: float, min_session_length: int, work: Path
) -> tuple[dict[str, _Parts], dict[str, datetime]]:
    """``splitting.split_by_days`` over partitions: cut-offs and train items are global, sessions local."""
    splitting.check_days(test_days, valid_days)
    splitting.require_events(parts.events)
    ends = []  # per partition, one row per session: session_id, end
    for frame in parts.frames():
        ends.append(work / f"ends-{len(ends):05d}.arrow")
        splitting.session_ends(frame).write_ipc(ends[-1])
    valid_cutoff, test_cutoff = splitting.day_cutoffs(pl.scan_ipc(ends), test_days, valid_days)
    cutoffs = {"valid": valid_cutoff, "test": test_cutoff}

    assigned = {name: _Parts(work, f"{name}-assigned") for name in schema.SPLITS}
    for frame, path in zip(parts.frames(), ends, strict=True):
        for name, events in splitting.parts_by_cutoffs(
            frame, pl.read_ipc(path), valid_cutoff, test_cutoff
        ).items():
            assigned[name].add(events)

    train_items = assigned["train"].support["item_id"]
    final = {"train": assigned["train"]}
    for name in ("valid", "test"):
        final[name] = _Parts(work, name)
        for frame in assigned[name].frames():
            kept, _ = splitting.predictable(frame, train_items, cutoffs[name], min_session_length)
            final[name].add(kept)
    for name, split in final.items():
        splitting.require_part(name, split.events, assigned[name].sessions, "days")
    return final, cutoffs


def preprocess_streaming(
    ratings_dat: str | os.PathLike[str],
    lake_root: str | os.PathLike[str],
    definitions: Sequence[str] = ("gap_1h",),
    *,
    min_rating: int | None = None,
    min_session_length: int = 2,
    min_item_support: int = 5,
    test_days: float = 30,
    valid_days: float = 30,
    partition_events: int = DEFAULT_PARTITION_EVENTS,
    earliest: datetime = parsing.MOVIELENS_START,
    latest: datetime | None = None,
) -> dict:
    """ratings.dat -> the lake's ratings, sessions, cleansed, train/valid/test and item_index tables.

    Same tables as the in-memory pipeline (``split_method`` days), in memory bounded by
    ``partition_events``; ``earliest`` and ``latest`` (None: now) bound the timestamps as in
    ``parsing.read_ratings``. Intermediate partitions live in a hidden directory under ``lake_root``,
    removed at the end, or by the next run if this one is killed. Returns sizes, cleansing rounds
    and cut-offs per definition.
    """
    ratings_dat, lake_root = Path(ratings_dat), Path(lake_root)
    parsed = [sessions.parse_definition(name) for name in definitions]
    window = parsing.rating_window(earliest, latest)
    if isinstance(partition_events, bool) or not isinstance(partition_events, int) or partition_events < 1:
        raise InputDataError(f"partition_events must be a positive integer; got {partition_events!r}.")
    scratch = ensure_directory(lake_root) / layout.STREAMING_SCRATCH
    remove_stale(scratch)  # partitions left by a killed run
    work = Path(tempfile.mkdtemp(prefix=temporary_prefix(scratch), dir=lake_root))
    try:
        staged = work / "parsed.parquet"
        n_lines = _parse(ratings_dat, staged, window)
        ratings_parts, dropped = _partition(staged, _user_ranges(staged, partition_events), work)
        ratings = pl.scan_parquet(staged).select(list(schema.RATINGS))
        if dropped.len():
            ratings = ratings.filter(~pl.col("line").is_in(dropped.implode()))
        _sink(ratings, layout.table_path(lake_root, layout.RATINGS))
        summary: dict = {"lines": n_lines, "duplicates": dropped.len(), "partitions": len(ratings_parts)}
        for definition in parsed:
            folder = work / definition.name
            folder.mkdir()
            session_parts = _sessions(ratings_parts, definition, min_rating, folder)
            cleansed, rounds = _cleanse(session_parts, min_session_length, min_item_support, folder)
            split, cutoffs = _split_by_days(cleansed, test_days, valid_days, min_session_length, folder)

            def table(name: str, of: str = definition.name) -> Path:
                return layout.table_path(lake_root, layout.definition_key(of, name))

            _sink(pl.scan_ipc(session_parts.paths), table("sessions"))
            _sink(pl.scan_ipc(cleansed.paths), table("cleansed"))
            # The split's tables as one unit, like the in-memory pipeline's: one directory swap.
            with atomic_directory(layout.split_dir(lake_root, definition.name)) as staging:
                for name in schema.SPLITS:
                    _sink(
                        pl.scan_ipc(split[name].paths).select(list(schema.SPLIT)), staging / table(name).name
                    )
                index = splitting.item_index(split["train"].support)
                write_parquet(index, staging / table(layout.ITEM_INDEX).name)
            shutil.rmtree(folder)
            summary[definition.name] = {
                "sessions": session_parts.sizes(),
                "cleansing_rounds": rounds,
                "valid_cutoff": cutoffs["valid"],
                "test_cutoff": cutoffs["test"],
                "final": {name: split[name].sizes() for name in schema.SPLITS},
            }
        return summary
    finally:
        shutil.rmtree(work, ignore_errors=True)
