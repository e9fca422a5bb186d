"""The shared timeline: two global cut times, one candidate set and one set of next-movie targets.

Every variant of the study (session definition, rating policy, model settings) is trained on the
events before ``T_valid`` and scored on the same targets, so any two of them can be compared
prediction by prediction. A target is a validation or test event (at or after ``T_valid``; test
from ``T_test``) of a user with an earlier event, whose movie is a candidate: a movie rated at least
``min_item_support`` times before ``T_valid``, counted over all ratings. Its rating does not matter:
the next movie a viewer rated is what is predicted, liked or not (``liked`` marks the ones rated
at least ``LIKED``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from sbr_dagster.data import cleansing, schema, sessions, splitting
from sbr_dagster.data.arrays import Sessions
from sbr_dagster.errors import InputDataError
from sbr_dagster.kernels import kernel

LIKED = 4  # a target rated at least this is one the viewer liked
CUTS_SCHEMA = {"valid_cut": schema.TIMESTAMP, "test_cut": schema.TIMESTAMP}
TARGETS_SCHEMA = {
    "split": pl.String,
    "user_id": pl.Int32,
    "item_id": pl.Int32,
    "timestamp": schema.TIMESTAMP,
    "rating": pl.Int8,
    "line": pl.UInt32,  # the target's id: the same event in every variant
    "liked": pl.Boolean,
}
_EVENT_ORDER = ("timestamp", "line")  # equal timestamps keep file order


@dataclass(frozen=True)
class Cuts:
    """``T_valid`` <= ``T_test``: events before ``T_valid`` train, from ``T_test`` on are test."""

    valid: datetime
    test: datetime


def cut_times(ratings: pl.DataFrame, test_fraction: float = 0.1, valid_fraction: float = 0.1) -> Cuts:
    """The times that leave the latest ``test_fraction`` of events for test and the ``valid_fraction``
    before them for validation; events at a cut time belong to the later part."""
    splitting.check_fractions(test_fraction, valid_fraction)
    if ratings.height == 0:
        raise InputDataError("cannot cut an empty ratings table into train, validation and test.")
    times = ratings.sort(*_EVENT_ORDER)["timestamp"]
    n = times.len()
    test_at = n - max(1, round(n * test_fraction))
    valid_at = test_at - max(1, round(n * valid_fraction))
    if valid_at <= 0:
        raise InputDataError(
            f"only {n} ratings: test_fraction {test_fraction} and valid_fraction {valid_fraction} "
            "leave none to train on; lower them or use more data."
        )
    return Cuts(valid=times[valid_at], test=times[test_at])


def cuts_frame(cuts: Cuts) -> pl.DataFrame:
    """The cut times as a one-row table (the lake's ``timeline/cuts``)."""
    return pl.DataFrame({"valid_cut": [cuts.valid], "test_cut": [cuts.test]}, schema=CUTS_SCHEMA)


def cuts_of(frame: pl.DataFrame) -> Cuts:
    if frame.height != 1:
        raise InputDataError(f"the timeline cuts table has {frame.height} rows, expected 1: rebuild it")
    return Cuts(valid=frame["valid_cut"].item(), test=frame["test_cut"].item())


def candidates(ratings: pl.DataFrame, cuts: Cuts, min_item_support: int) -> pl.DataFrame:
    """The item index every variant ranks (``schema.ITEM_INDEX``): the movies rated at least
    ``min_item_support`` times before ``T_valid``, ascending ``item_id``."""
    before = ratings.filter(pl.col("timestamp") < cuts.valid)
    support = before.group_by("item_id").agg(pl.len().cast(pl.UInt32).alias("support"))
    kept = support.filter(pl.col("support") >= min_item_support).sort("item_id")
    if kept.height == 0:
        raise InputDataError(
            f"no movie has {min_item_support} ratings before the validation cut {cuts.valid}: lower "
            "min_item_support or valid_fraction / test_fraction."
        )
    return kept.select("item_id", pl.int_range(pl.len(), dtype=pl.Int32).alias("item_idx"), "support")


def targets(ratings: pl.DataFrame, cuts: Cuts, candidate_items: pl.Series) -> pl.DataFrame:
    """The shared targets: ``split``, ``user_id``, ``item_id``, ``timestamp``, ``rating``, ``line``,
    ``liked``, in (user, time, file) order."""
    events = ratings.sort("user_id", *_EVENT_ORDER).with_columns(
        (pl.int_range(pl.len()).over("user_id") > 0).alias("has_earlier")
    )
    picked = events.filter(
        (pl.col("timestamp") >= cuts.valid)
        & pl.col("has_earlier")
        & pl.col("item_id").is_in(candidate_items.implode())
    )
    split = pl.when(pl.col("timestamp") >= cuts.test).then(pl.lit("test")).otherwise(pl.lit("valid"))
    return picked.select(
        split.alias("split"),
        "user_id",
        "item_id",
        "timestamp",
        "rating",
        "line",
        (pl.col("rating") >= LIKED).alias("liked"),
    ).cast(TARGETS_SCHEMA)


def training_events(events: pl.DataFrame, cuts: Cuts) -> pl.DataFrame:
    """A variant's events the models may learn from: strictly before ``T_valid``."""
    return events.filter(pl.col("timestamp") < cuts.valid)


@dataclass(frozen=True)
class Replay:
    """Every user's whole timeline as one stream, with what a variant does at each event.

    Users are contiguous (``offsets``), each in time order (equal times in file order). A model
    replaying it resets its state where ``session_start`` (the variant's definition cuts a
    session; a user's first event always does), ranks ``target`` events from the state it has
    then, and afterwards consumes the event if ``feed`` (the variant's rating policy keeps it and
    the movie is a candidate). ``items`` are candidate indices, -1 for a movie outside the set.
    """

    items: np.ndarray  # int32
    offsets: np.ndarray  # int64, one more than there are users
    session_start: np.ndarray  # bool
    feed: np.ndarray  # bool
    target: np.ndarray  # bool
    ratings: np.ndarray  # int8
    timestamps: np.ndarray | None = None  # int64 epoch seconds per event
    lines: np.ndarray | None = None  # int64 ratings.dat line per event: the id of a target

    @property
    def target_events(self) -> np.ndarray:
        return np.flatnonzero(self.target)

    @property
    def target_groups(self) -> np.ndarray:
        """The user (the stream's unit, a session on the days protocol) of every target: what a
        bootstrap resamples, since one viewer's predictions are not independent."""
        return np.searchsorted(self.offsets, self.target_events, side="right") - 1

    def users(self, first: int, stop: int) -> Replay:
        """The timelines of users ``first`` up to ``stop`` (positions in ``offsets``) as a stream."""
        lo, hi = int(self.offsets[first]), int(self.offsets[stop])
        part = slice(lo, hi)
        return Replay(
            items=self.items[part],
            offsets=self.offsets[first : stop + 1] - lo,
            session_start=self.session_start[part],
            feed=self.feed[part],
            target=self.target[part],
            ratings=self.ratings[part],
            timestamps=None if self.timestamps is None else self.timestamps[part],
            lines=None if self.lines is None else self.lines[part],
        )

    @classmethod
    def of_sessions(cls, sessions: Sessions) -> Replay:
        """Split sessions as a stream (the days and fraction protocols): each session is its own
        timeline, every event is fed, and every event but a session's first is a target."""
        n = len(sessions.items)
        start = np.zeros(n, dtype=bool)
        start[np.asarray(sessions.offsets[:-1], dtype=np.int64)[np.diff(sessions.offsets) > 0]] = True
        return cls(
            items=np.asarray(sessions.items, dtype=np.int32),
            offsets=np.asarray(sessions.offsets, dtype=np.int64),
            session_start=start,
            feed=np.ones(n, dtype=bool),
            target=~start,
            ratings=np.asarray(sessions.ratings, dtype=np.int8),
            timestamps=sessions.timestamps,
        )


def replay(
    ratings: pl.DataFrame,
    candidate_index: pl.DataFrame,
    shared_targets: pl.DataFrame,
    *,
    gap: timedelta | None,
    min_rating: int | None,
) -> Replay:
    """The stream a variant (session ``gap``, rating floor ``min_rating``) is scored on.

    ``candidate_index`` maps ``item_id`` to ``item_idx``; ``shared_targets`` is ``targets(...)``'s
    table, so every variant has the very same target events.
    """
    events = sessions.assign_sessions(ratings, gap)  # sorted by user, time, line
    events = events.join(
        candidate_index.select("item_id", "item_idx"), on="item_id", how="left", maintain_order="left"
    ).with_columns(
        pl.col("session_id").diff().fill_null(1).ne(0).alias("session_start"),
        pl.col("line").is_in(shared_targets["line"].implode()).alias("target"),
    )
    floor = min_rating or 1
    feed = pl.col("item_idx").is_not_null() & (pl.col("rating") >= floor)
    events = events.with_columns(feed.alias("feed"))
    users = events["user_id"].to_numpy()
    starts = np.flatnonzero(np.diff(users)) + 1
    offsets = np.concatenate([[0], starts, [len(users)]]).astype(np.int64) if len(users) else np.zeros(1)
    return Replay(
        items=events["item_idx"].fill_null(-1).to_numpy().astype(np.int32),
        offsets=offsets.astype(np.int64),
        session_start=events["session_start"].to_numpy(),
        feed=events["feed"].to_numpy(),
        target=events["target"].to_numpy(),
        ratings=events["rating"].to_numpy().astype(np.int8),
        timestamps=events["timestamp"].dt.epoch("s").to_numpy().astype(np.int64),
        lines=events["line"].to_numpy().astype(np.int64),
    )


def last_fed_before(stream: Replay) -> np.ndarray:
    """For every event, the index of the last fed event before it in its session, or -1.

    What a last-item model (the baselines) sees when it predicts that event.
    """
    n = len(stream.items)
    index = np.arange(n)
    session_begin = np.maximum.accumulate(np.where(stream.session_start, index, 0))
    fed = np.maximum.accumulate(np.where(stream.feed, index, -1))
    previous = np.concatenate([[-1], fed[:-1]])  # strictly before the event
    return np.where(previous >= session_begin, previous, -1)


@dataclass(frozen=True)
class FedContexts:
    """What every target of a stream knows, for models that read a whole current session (the
    neighbour methods, SASRec): target r's session fed ``items[begin[r]:end[r]]``, oldest first."""

    items: np.ndarray  # int64 candidate index of every fed event, the stream's order
    begin: np.ndarray  # int64 per target: where its current session's fed events start
    end: np.ndarray  # int64 per target: one past its last fed event (the target itself never is)
    times: np.ndarray | None  # float64 seconds of each target's last fed event (nan: none fed)


def fed_contexts(stream: Replay) -> FedContexts:
    """Each target's current session: the events fed since its session (or its user) started."""
    events = stream.target_events
    fed = np.asarray(stream.feed, dtype=bool) & (np.asarray(stream.items) >= 0)
    fed_before = np.cumsum(fed) - fed  # fed events before each event
    starts = np.asarray(stream.session_start, dtype=bool).copy()
    offsets = np.asarray(stream.offsets, dtype=np.int64)
    starts[offsets[:-1][np.diff(offsets) > 0]] = True  # a user's first event starts a session
    session_begin = np.maximum.accumulate(np.where(starts, np.arange(fed.size), 0))
    begin, end = fed_before[session_begin[events]], fed_before[events]
    times = None
    if stream.timestamps is not None:
        fed_times = np.asarray(stream.timestamps, dtype=np.float64)[fed]
        last = fed_times[np.maximum(end - 1, 0)] if fed_times.size else np.full(end.size, np.nan)
        times = np.where(end > begin, last, np.nan)
    return FedContexts(np.asarray(stream.items, dtype=np.int64)[fed], begin, end, times)


def seen_mask(stream: Replay, events: np.ndarray, n_items: int) -> np.ndarray:
    """``[len(events), n_items]``: True where the viewer of ``events[r]`` rated that candidate
    before it, whatever the rating, but never for the event's own movie (a repeated target is not
    excluded from its own ranking). ``events`` are distinct, in any order."""
    return _earlier_mask(stream.items, stream.offsets, events, n_items, stream.items)


def session_seen_mask(stream: Replay, events: np.ndarray, n_items: int) -> np.ndarray:
    """What a model was fed before ``events[r]`` in its current session, as ``seen_mask`` marks what
    the viewer rated: a model that leaves these out knows no more than its own input. Unlike
    ``seen_mask`` the event's own movie is marked when the session fed it before: a model that rules
    out repeats has ruled that target out too."""
    offsets = np.asarray(stream.offsets, dtype=np.int64)
    starts = np.asarray(stream.session_start, dtype=bool).copy()
    starts[offsets[:-1][np.diff(offsets) > 0]] = True
    bounds = np.concatenate([np.flatnonzero(starts), offsets[-1:]])
    fed = np.where(np.asarray(stream.feed, dtype=bool), stream.items, -1)
    return _earlier_mask(fed, bounds, events, n_items, np.full(len(fed), -1))


def _earlier_mask(
    items: np.ndarray, offsets: np.ndarray, events: np.ndarray, n_items: int, own: np.ndarray
) -> np.ndarray:
    """``[len(events), n_items]``: True where ``items`` (-1: none) holds that candidate earlier in the
    span of ``offsets`` that ``events[r]`` lies in, but never for the event's own item ``own[events[r]]``.

    Each span's earlier events give, per movie, the first of the span's rows that comes after
    its first rating; a row has seen the movies whose first row is at or before it. The cost is the
    spans' histories plus one pass over the matrix, not rows times history (what looking up every
    row's whole history would pay); the pass is a kernel, since NumPy would first gather a row of
    first rows per mask row (8 bytes per cell where the mask has 1, 13x slower on ML-1M).
    """
    given = np.asarray(events, dtype=np.int64)
    if given.size == 0:
        return np.zeros((0, n_items), dtype=bool)
    order = np.argsort(given, kind="stable")
    events = given[order]
    span_of = np.searchsorted(offsets, events, side="right") - 1
    first_row = np.flatnonzero(np.concatenate([[True], span_of[1:] != span_of[:-1]]))
    last_row = np.concatenate([first_row[1:], [events.size]]) - 1
    begin, end = offsets[span_of[first_row]], events[last_row]  # what each span's rows may have seen
    lengths = end - begin
    earlier = np.repeat(begin - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
    span = np.repeat(np.arange(first_row.size), lengths)
    earlier_items = items[earlier]
    known = earlier_items >= 0
    rows = np.searchsorted(events, earlier[known], side="right")  # the first row after the event
    # Events ascend, so a (span, movie)'s first occurrence has its smallest row.
    keys, first = np.unique(span[known] * n_items + earlier_items[known], return_index=True)
    seen_from = np.full((first_row.size, n_items), events.size, dtype=np.int64)
    seen_from.flat[keys] = rows[first]
    row_span = np.repeat(np.arange(first_row.size), np.diff(np.concatenate([first_row, [events.size]])))
    mask = np.empty((events.size, n_items), dtype=bool)
    _seen_from_rows(seen_from, row_span, mask)
    own_items = own[events]
    known_own = own_items >= 0
    mask[np.flatnonzero(known_own), own_items[known_own]] = False
    if np.any(order != np.arange(order.size)):
        unsorted = np.empty_like(mask)
        unsorted[order] = mask
        return unsorted
    return mask


@kernel
def _seen_from_rows(seen_from, row_span, mask):
    """``mask[r, j] = seen_from[row_span[r], j] <= r``."""
    for row in range(mask.shape[0]):
        first_rows, out = seen_from[row_span[row]], mask[row]
        for item in range(mask.shape[1]):
            out[item] = first_rows[item] <= row


def split_streams(
    ratings: pl.DataFrame,
    candidate_index: pl.DataFrame,
    shared_targets: pl.DataFrame,
    cuts: Cuts,
    *,
    gap: timedelta | None,
    min_rating: int | None,
    parts: tuple[str, ...] = ("valid", "test"),
) -> dict[str, Replay]:
    """A variant's validation and test streams, of the users with targets in each.

    Validation stops before ``T_test``: choosing epochs and settings never reads a test event.
    """
    streams = {}
    for split in parts:
        events = ratings.filter(pl.col("timestamp") < cuts.test) if split == "valid" else ratings
        chosen = shared_targets.filter(pl.col("split") == split)
        users = events.filter(pl.col("user_id").is_in(chosen["user_id"].unique().implode()))
        streams[split] = replay(users, candidate_index, chosen, gap=gap, min_rating=min_rating)
    return streams


def context_problems(stream: Replay, shared_targets: pl.DataFrame, split: str) -> list[str]:
    """Why ``stream`` would not be a fair replay of ``split``'s shared targets: other targets, or a
    target whose context (its user's earlier events) holds an event at or after it."""
    problems = []
    expected = shared_targets.filter(pl.col("split") == split)["line"].to_numpy().astype(np.int64)
    found = np.asarray(stream.lines, dtype=np.int64)[stream.target_events]
    if not np.array_equal(np.sort(found), np.sort(expected)):
        problems.append(
            f"{split}: the stream has {found.size:,} targets, not the {expected.size:,} shared ones"
        )
    same_user = np.diff(np.searchsorted(stream.offsets, np.arange(len(stream.items)), side="right")) == 0
    times, lines = np.asarray(stream.timestamps), np.asarray(stream.lines)
    later = (np.diff(times) > 0) | ((np.diff(times) == 0) & (np.diff(lines) > 0))
    bad = np.flatnonzero(same_user & ~later)
    if bad.size:
        problems.append(
            f"{split}: {bad.size:,} events come after a later or equal event of their user (first: "
            f"ratings.dat line {lines[bad[0] + 1]} after line {lines[bad[0]]}), so some context is "
            "not strictly earlier than its target"
        )
    return problems


def split_by_timeline(
    train_events: pl.DataFrame,
    ratings: pl.DataFrame,
    candidate_index: pl.DataFrame,
    shared_targets: pl.DataFrame,
    cuts: Cuts,
    *,
    gap: timedelta | None,
    min_session_length: int,
) -> splitting.Split:
    """A variant's tables on the timeline protocol.

    train: its cleansed events before ``T_valid`` (``train_events``), on candidates; valid and
    test: the shared targets, each with the session the variant's definition puts it in; the item
    index: the shared candidates, so a movie the variant never trained on is still ranked.
    """
    before = training_events(train_events, cuts).filter(
        pl.col("item_id").is_in(candidate_index["item_id"].implode())
    )
    train = before.filter(pl.len().over("session_id") >= min_session_length).sort("session_id", *_EVENT_ORDER)
    splitting.require_part("train", train.height, before["session_id"].n_unique(), "timeline")
    labelled = sessions.assign_sessions(ratings, gap).join(
        shared_targets.select("line", "split"), on="line", how="inner", maintain_order="left"
    )
    parts = {name: labelled.filter(pl.col("split") == name) for name in ("valid", "test")}
    for name, part in parts.items():
        splitting.require_part(name, part.height, part["session_id"].n_unique(), "timeline")
    tables = {"train": train, **parts}
    return splitting.Split(
        **{name: frame.select(list(schema.SPLIT)) for name, frame in tables.items()},
        item_index=candidate_index.select(list(schema.ITEM_INDEX)),
        method="timeline",
        valid_cutoff=cuts.valid,
        test_cutoff=cuts.test,
        report={
            "final": {name: cleansing.sizes(frame) for name, frame in tables.items()},
            "train_short_sessions_dropped": before["session_id"].n_unique() - train["session_id"].n_unique(),
        },
    )
