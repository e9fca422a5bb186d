"""Session-parallel mini-batches, the GRU4Rec way.

A recurrent model cannot batch by padding whole sessions without wasting most of its work on
padding (session lengths are heavily skewed). GRU4Rec instead keeps ``batch_size`` slots: at each
step every live slot feeds its session's current item and targets the next one; when a session
runs out, its slot takes the next unused session and that slot's hidden state is reset to zero.

The whole epoch is laid out up front as ``[steps, slots]`` arrays so the training loop can run
many steps per compiled call with no Python per event. Slots are numbered so that the live ones
always form a prefix (``width[t]``): at the tail of an epoch, when fewer sessions than slots are
left, the batch simply shrinks instead of computing masked rows.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Literal

import numpy as np

Order = Literal["shuffle", "time"]


@dataclass(frozen=True)
class Schedule:
    """One epoch of session-parallel steps; entries outside ``mask`` are zero / -1 and must be ignored."""

    inputs: np.ndarray  # [T, B] int32: item fed at step t in slot b
    targets: np.ndarray  # [T, B] int32: next item, to be predicted
    reset: np.ndarray  # [T, B] bool: a session starts here, so the slot's hidden state is zeroed first
    mask: np.ndarray  # [T, B] bool: the slot is live at this step
    events: np.ndarray  # [T, B] int64: position of the input event in the items array, -1 when not live
    width: np.ndarray  # [T] int64: live slots at step t are exactly 0 .. width[t]-1 (non-increasing)

    @property
    def steps(self) -> int:
        return self.inputs.shape[0]

    @property
    def n_events(self) -> int:
        """Input events (= predictions) in the epoch."""
        return int(self.width.sum())


def session_order(
    n_sessions: int,
    order: Order,
    *,
    seed: int | np.random.Generator = 0,
    start_times: np.ndarray | None = None,
) -> np.ndarray:
    """Session indices in the order slots take them: shuffled by ``seed``, or by start time (stable)."""
    if order == "shuffle":
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        return rng.permutation(n_sessions)
    if order == "time":
        if start_times is None:
            return np.arange(n_sessions)
        return np.argsort(np.asarray(start_times), kind="stable")
    raise ValueError(f"unknown session order {order!r}: use 'shuffle' or 'time'")


def _assign_slots(steps: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """First step and slot of each session when every freed slot greedily takes the next session.

    Sessions start in the given order; among slots freed at the same step the lowest slot wins,
    exactly GRU4Rec's rule. The recurrence (a session's start depends on the ends of the earlier
    ones) is inherently sequential, so this is the one loop: over sessions, O(log B) each.
    """
    n = len(steps)
    start = np.zeros(n, dtype=np.int64)
    slot = np.arange(n, dtype=np.int64) % max(batch_size, 1)
    if n > batch_size:
        heap = [(int(steps[b]), b) for b in range(batch_size)]
        heapq.heapify(heap)
        for k in range(batch_size, n):
            free_at, b = heap[0]
            start[k], slot[k] = free_at, b
            heapq.heapreplace(heap, (free_at + int(steps[k]), b))
    return start, slot


def session_parallel(
    offsets: np.ndarray,
    batch_size: int,
    *,
    items: np.ndarray,
    order: Order = "time",
    seed: int | np.random.Generator = 0,
    start_times: np.ndarray | None = None,
    every_event: bool = False,
) -> Schedule:
    """Lay out one epoch over the sessions ``offsets`` delimits in ``items``.

    Every event except each session's last is an input exactly once, with the following event as
    its target. ``order="time"`` without ``start_times`` keeps the given session order (what
    evaluation needs); sessions with a single event predict nothing and are skipped.
    ``every_event`` lays out every event, the last included, with no target: a timeline replay
    decides per event whether to predict it and whether to consume it.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    offsets = np.asarray(offsets, dtype=np.int64)
    items = np.asarray(items)
    sessions = session_order(len(offsets) - 1, order, seed=seed, start_times=start_times)
    steps = np.diff(offsets)[sessions] - (0 if every_event else 1)
    keep = steps > 0
    sessions, steps = sessions[keep], steps[keep]

    start, slot = _assign_slots(steps, batch_size)
    end = start + steps
    # Relabel slots by when they fall idle (latest first) so the live slots form a prefix.
    slot_end = np.zeros(batch_size, dtype=np.int64)
    np.maximum.at(slot_end, slot, end)
    by_end = np.argsort(-slot_end, kind="stable")
    relabel = np.empty(batch_size, dtype=np.int64)
    relabel[by_end] = np.arange(batch_size)
    slot = relabel[slot]
    n_steps = int(slot_end.max()) if len(steps) else 0
    width = batch_size - np.searchsorted(np.sort(slot_end), np.arange(n_steps), side="right")

    # Every input event with its step and slot, without a loop over events.
    session_of = np.repeat(np.arange(len(steps)), steps)
    within = np.arange(len(session_of)) - np.repeat(np.cumsum(steps) - steps, steps)
    event = offsets[sessions][session_of] + within
    t, b = start[session_of] + within, slot[session_of]

    shape = (n_steps, batch_size)
    events = np.full(shape, -1, dtype=np.int64)
    events[t, b] = event
    mask = events >= 0
    reset = np.zeros(shape, dtype=bool)
    reset[t, b] = within == 0
    inputs = np.zeros(shape, dtype=np.int32)
    targets = np.zeros(shape, dtype=np.int32)
    inputs[t, b] = items[event]
    if not every_event:
        targets[t, b] = items[event + 1]
    return Schedule(inputs=inputs, targets=targets, reset=reset, mask=mask, events=events, width=width)


def prediction_positions(events: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Prediction index of each input event (-1 stays -1): predictions run by session, then position.

    The input event ``e`` of session ``s`` predicts event ``e+1``; each earlier session has one
    prediction fewer than events, so its prediction index is ``e - s``.
    """
    events = np.asarray(events)
    session = np.searchsorted(np.asarray(offsets), events, side="right") - 1
    return np.where(events >= 0, events - session, -1)


def chunks(schedule: Schedule, *, steps: int | None = None, cells: int | None = None):
    """(first step, end step, live width) of each compiled call; the width only shrinks over time.

    ``steps`` fixes the steps per call (training); ``cells`` bounds steps x width instead, so that
    a call's [cells, n_items] score matrix stays small however narrow the tail gets (inference).
    """
    begin = 0
    while begin < schedule.steps:
        width = int(schedule.width[begin])
        n = steps if steps is not None else max(1, cells // max(width, 1))
        end = min(begin + n, schedule.steps)
        yield begin, end, width
        begin = end


def cell_values(values: np.ndarray | None, events: np.ndarray) -> np.ndarray:
    """``values`` of each schedule cell's input event as int32 (0 where the cell is not live)."""
    if values is None:
        return np.zeros(events.shape, dtype=np.int32)
    return np.where(events >= 0, np.asarray(values)[np.maximum(events, 0)], 0).astype(np.int32)
