"""Preprocess ratings larger than memory: the in-memory steps, run one partition of users at a time.

Polars' streaming engine (1.44) runs scans, filters, projections, group-by aggregates and sinks
in bounded memory, but a sort, a window (``over``) or a frame read twice (a "multiplexer")
buffers its whole input. Sessions never cross users, so after one streaming parse the events
are cut into partitions of whole users (consecutive user-id ranges of about
``partition_events`` events). Each partition fits in memory and runs the very functions the
in-memory pipeline runs (``parsing.drop_duplicate_ratings``, ``sessions.assign_sessions``,
``cleansing.cleansing_round``); what crosses partitions are streamed aggregates of one row per
item (support, train items) or a single value (split cut-offs, session-id offsets). Peak
memory therefore follows ``partition_events``, not the input size, and the tables are the
in-memory pipeline's, row for row, written atomically into the lake layout.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import polars as pl

from sbr_dagster.core import cleansing, parsing, schema, sessions, splitting
from sbr_dagster.core.errors import InputDataError
from sbr_dagster.core.lake import atomic_path, ensure_directory, remove_stale, temporary_prefix

DEFAULT_PARTITION_EVENTS = 2_000_000
_FIELDS = ("user_id", "item_id", "rating", "timestamp")
_VALID_LINE = (
    f"'{parsing.RATINGS_FORMAT}' with integer ids in 1..{parsing._INT32_MAX}, a rating in 1..5 and "
    "a timestamp in Unix epoch seconds"
)


def _sink(frame: pl.LazyFrame, target: Path) -> Path:
    """Stream ``frame`` into ``target`` atomically, with the lake's Parquet settings."""
    with atomic_path(target, suffix=".parquet") as tmp:
        frame.sink_parquet(tmp, compression="zstd", statistics=True)
    return target


def _lines(path: Path) -> pl.LazyFrame:
    return pl.scan_lines(path, name="text", row_index_name="line", row_index_offset=1)


def _typed_ratings(path: Path) -> pl.LazyFrame:
    """ratings.dat as a lazy ``schema.RATINGS`` frame plus ``valid``, the eager parser's rules per line."""
    # The in-memory reader decodes with utf-8-sig: a byte-order mark before line 1 is not data.
    text = pl.col("text")
    text = pl.when(pl.col("line") == 1).then(text.str.strip_prefix("\ufeff")).otherwise(text)
    fields = text.str.split_exact(parsing.SEPARATOR, 4).struct.rename_fields([*_FIELDS, "extra"])
    numbers = (
        _lines(path)
        .select("line", fields.alias("fields"))
        .unnest("fields")
        .with_columns(pl.col(_FIELDS).str.to_integer(strict=False))
    )
    valid = (
        pl.col("extra").is_null()
        & pl.col("user_id").is_between(1, parsing._INT32_MAX)
        & pl.col("item_id").is_between(1, parsing._INT32_MAX)
        & pl.col("rating").is_between(1, 5)
        & pl.col("timestamp").is_between(0, parsing._MAX_EPOCH_SECONDS - 1)
    ).fill_null(False)
    return numbers.select(
        pl.col("user_id").cast(pl.Int32, strict=False),
        pl.col("item_id").cast(pl.Int32, strict=False),
        pl.col("rating").cast(pl.Int8, strict=False),
        pl.when(valid).then(pl.col("timestamp") * 1_000_000).cast(schema.TIMESTAMP),
        pl.col("line").cast(pl.UInt32),
        valid.alias("valid"),
    )


def _parse(path: Path, staged: Path) -> int:
    """Stream ratings.dat into ``staged``; fail on its first bad line. Returns the number of lines."""
    if not path.is_file():
        problem = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise InputDataError(f"ratings file {path} {problem}. Point it at MovieLens-format ratings.dat.")
    try:
        _typed_ratings(path).sink_parquet(staged)
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
        text = _lines(path).filter(pl.col("line") == first_bad).collect(engine="streaming")["text"][0]
        raise InputDataError(
            f"{path}, line {first_bad}: {parsing._shown(text)} is not {_VALID_LINE}. Fix or remove this line."
        )
    return n_lines


def _save(frame: pl.DataFrame, path: Path) -> Path:
    """Intermediate partitions are Arrow IPC, uncompressed: written once, read back once or twice."""
    frame.write_ipc(path, compression="uncompressed")
    return path


def _height(path: Path) -> int:
    return pl.scan_ipc(path).select(pl.len()).collect().item()


def _user_ranges(staged: Path, partition_events: int) -> list[tuple[int, int]]:
    """First and last user id of consecutive user ranges of about ``partition_events`` events each.

    A user is never cut, so one very active user can make a partition larger than asked.
    """
    users = pl.scan_parquet(staged).group_by("user_id").len().sort("user_id").collect(engine="streaming")
    ranges = (
        users.with_columns(((pl.col("len").cum_sum() - pl.col("len")) // partition_events).alias("part"))
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
        parts.append(_save(kept, work / f"ratings-{number:05d}.arrow"))
    return parts, pl.concat(dropped)


def _sessions(
    ratings_parts: list[Path], definition: sessions.SessionDefinition, min_rating: int | None, work: Path
) -> list[Path]:
    """Sessions per partition; each partition's ids continue where the previous one's ended.

    Partitions are user ranges in ascending order, so the ids equal those of one global
    (user, time, line) pass. The offset counts sessions before the rating policy, as ids do.
    """
    parts, offset = [], 0
    floor = sessions.rating_floor(definition, min_rating)
    for number, path in enumerate(ratings_parts):
        cut = sessions.assign_sessions(pl.read_ipc(path), definition.gap)
        kept = sessions.apply_rating_policy(cut, floor).with_columns(pl.col("session_id") + offset)
        offset += int(cut["session_id"].max()) + 1 if cut.height else 0
        parts.append(_save(kept, work / f"sessions-{number:05d}.arrow"))
    return parts


def _sizes(parts: list[Path]) -> dict[str, int]:
    """``cleansing.sizes`` over partitioned events: sessions never cross partitions, items do."""
    per_part = pl.concat(
        pl.scan_ipc(path).select(pl.len().alias("events"), pl.col("session_id").n_unique().alias("sessions"))
        for path in parts
    ).collect()
    items = pl.scan_ipc(parts).select(pl.col("item_id").n_unique()).collect(engine="streaming").item()
    return {
        "events": int(per_part["events"].sum()),
        "sessions": int(per_part["sessions"].sum()),
        "items": items,
    }


def _cleanse(
    parts: list[Path], min_session_length: int, min_item_support: int, work: Path
) -> tuple[list[Path], list[dict]]:
    """``cleansing.cleanse`` over partitions: item support is counted over all of them each round."""
    cleansing.check_thresholds(min_session_length, min_item_support)
    report, before = [], _sizes(parts)
    while True:
        items = cleansing.supported_items(pl.scan_ipc(parts), min_item_support)
        kept = [
            _save(
                cleansing.cleansing_round(pl.read_ipc(path), items, min_session_length),
                work / f"cleansed-{len(report)}-{number:05d}.arrow",
            )
            for number, path in enumerate(parts)
        ]
        after = _sizes(kept)
        if after["events"] == before["events"]:
            return kept, report
        report.append(cleansing.round_report(len(report) + 1, before, after))
        parts, before = kept, after


def _split_by_days(
    parts: list[Path], test_days: float, valid_days: float, min_session_length: int, work: Path
) -> dict:
    """``splitting.split_by_days`` over partitions: cut-offs and train items are global, sessions local."""
    parts = [path for path in parts if _height(path)]
    if not parts:  # nothing left to split: the in-memory split of no rows raises its user error
        splitting.split_by_days(
            pl.DataFrame(schema=schema.SESSIONS), test_days, valid_days, min_session_length
        )
        raise InputDataError("cannot split: no sessions are left after cleansing.")
    splitting._check_days("test_days", test_days)
    splitting._check_days("valid_days", valid_days)
    last_event = pl.scan_ipc(parts).select(pl.col("timestamp").max()).collect(engine="streaming").item()
    test_cutoff = last_event - timedelta(days=test_days)
    ends = [
        _save(splitting._session_ends(pl.read_ipc(path)), work / f"ends-{number:05d}.arrow")
        for number, path in enumerate(parts)
    ]
    before_test = pl.scan_ipc(ends).filter(pl.col("end") < test_cutoff).select(pl.col("end").max())
    valid_end = before_test.collect().item()
    valid_cutoff = (test_cutoff if valid_end is None else valid_end) - timedelta(days=valid_days)
    cutoffs = {"valid": valid_cutoff, "test": test_cutoff}

    assigned = {name: [] for name in schema.SPLITS}
    for number, (path, session_ends) in enumerate(zip(parts, ends, strict=True)):
        session_part = splitting._parts_by_cutoffs(pl.read_ipc(session_ends), valid_cutoff, test_cutoff)
        part_of_event = pl.col("session_id").replace_strict(session_part["session_id"], session_part["part"])
        events = pl.read_ipc(path).with_columns(part_of_event.alias("part"))
        for name in schema.SPLITS:
            frame = events.filter(pl.col("part") == name).drop("part")
            assigned[name].append(_save(frame, work / f"{name}-assigned-{number:05d}.arrow"))

    train_items = pl.scan_ipc(assigned["train"]).select(pl.col("item_id").unique()).collect()["item_id"]
    final = {"train": assigned["train"]}
    for name in ("valid", "test"):
        final[name] = []
        for number, path in enumerate(assigned[name]):
            known = pl.read_ipc(path).filter(pl.col("item_id").is_in(train_items.implode()))
            in_period = known.filter(pl.col("timestamp").max().over("session_id") >= cutoffs[name])
            long_enough = in_period.filter(pl.len().over("session_id") >= min_session_length)
            final[name].append(_save(long_enough, work / f"{name}-{number:05d}.arrow"))
    sizes = {name: _sizes(files) for name, files in final.items()}
    for name, size in sizes.items():
        if size["events"] == 0:
            raise InputDataError(
                f"the {name} split is empty (split by days: test_days={test_days}, valid_days={valid_days}); "
                "change test_days / valid_days or relax the cleansing thresholds."
            )
    return {"files": final, "valid_cutoff": valid_cutoff, "test_cutoff": test_cutoff, "final": sizes}


def _item_index(train: list[Path]) -> pl.LazyFrame:
    """Dense index over train items in ascending item_id; streams, holding one row per item."""
    return (
        pl.scan_ipc(train)
        .group_by("item_id")
        .agg(pl.len().cast(pl.UInt32).alias("support"))
        .sort("item_id")
        .select("item_id", pl.int_range(pl.len(), dtype=pl.Int32).alias("item_idx"), "support")
    )


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
) -> dict:
    """ratings.dat -> the lake's ratings, sessions, cleansed, train/valid/test and item_index tables.

    Same tables as the in-memory pipeline (``split_method`` days), in memory bounded by
    ``partition_events``. Intermediate partitions live in a hidden directory under ``lake_root``,
    removed at the end, or by the next run if this one is killed. Returns sizes, cleansing rounds
    and cut-offs per definition.
    """
    ratings_dat, lake_root = Path(ratings_dat), Path(lake_root)
    parsed = [sessions.parse_definition(name) for name in definitions]
    if isinstance(partition_events, bool) or not isinstance(partition_events, int) or partition_events < 1:
        raise InputDataError(f"partition_events must be a positive integer; got {partition_events!r}.")
    scratch = ensure_directory(lake_root) / "streaming"
    remove_stale(scratch)  # partitions left by a killed run
    work = Path(tempfile.mkdtemp(prefix=temporary_prefix(scratch), dir=lake_root))
    try:
        staged = work / "parsed.parquet"
        n_lines = _parse(ratings_dat, staged)
        ratings_parts, dropped = _partition(staged, _user_ranges(staged, partition_events), work)
        ratings = pl.scan_parquet(staged).select(list(schema.RATINGS))
        if dropped.len():
            ratings = ratings.filter(~pl.col("line").is_in(dropped.implode()))
        _sink(ratings, lake_root / "raw" / "ratings.parquet")
        summary: dict = {"lines": n_lines, "duplicates": dropped.len(), "partitions": len(ratings_parts)}
        for definition in parsed:
            folder = work / definition.name
            folder.mkdir()
            session_parts = _sessions(ratings_parts, definition, min_rating, folder)
            session_sizes = _sizes(session_parts)
            cleansed_parts, rounds = _cleanse(session_parts, min_session_length, min_item_support, folder)
            split = _split_by_days(cleansed_parts, test_days, valid_days, min_session_length, folder)
            target = lake_root / definition.name
            _sink(pl.scan_ipc(session_parts), target / "sessions.parquet")
            _sink(pl.scan_ipc(cleansed_parts), target / "cleansed.parquet")
            for name, files in split["files"].items():
                _sink(pl.scan_ipc(files).select(list(schema.SPLIT)), target / f"{name}.parquet")
            _sink(_item_index(split["files"]["train"]), target / "item_index.parquet")
            shutil.rmtree(folder)
            summary[definition.name] = {
                "sessions": session_sizes,
                "cleansing_rounds": rounds,
                "valid_cutoff": split["valid_cutoff"],
                "test_cutoff": split["test_cutoff"],
                "final": split["final"],
            }
        return summary
    finally:
        shutil.rmtree(work, ignore_errors=True)
