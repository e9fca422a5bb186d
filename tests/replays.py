"""Random replay streams for the model-contract tests: one generator serves every model's tests."""

from __future__ import annotations

import numpy as np

from sbr_dagster.data import timeline
from sbr_dagster.data.arrays import Sessions

DAY = 86_400


def random_replay(
    rng: np.random.Generator,
    n_users: int,
    n_items: int,
    *,
    max_length: int,
    new_session: float,
    times: bool = False,
) -> timeline.Replay:
    """Timelines with session starts, unfed events and movies outside the candidates (-1); with
    ``times``, sorted event times over 30 days per user."""
    lengths = rng.integers(1, max_length, n_users)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n = int(offsets[-1])
    items = np.where(rng.random(n) < 0.1, -1, rng.integers(0, n_items, n)).astype(np.int32)
    first = np.zeros(n, bool)
    first[offsets[:-1]] = True
    return timeline.Replay(
        items=items,
        offsets=offsets,
        session_start=first | (rng.random(n) < new_session),
        feed=(items >= 0) & (rng.random(n) < 0.8),
        target=(items >= 0) & ~first & (rng.random(n) < 0.6),
        ratings=rng.integers(1, 6, n).astype(np.int8),
        timestamps=(
            np.concatenate([np.sort(rng.integers(0, 30 * DAY, m)) for m in lengths]) if times else None
        ),
    )


def target_contexts(stream: timeline.Replay) -> Sessions:
    """What each target's session fed before it (items, ratings and, when the stream has them, times),
    found one event at a time: the brute force the replays are checked against."""
    fed_events = []
    for event in stream.target_events:
        begin = max(e for e in range(event + 1) if stream.session_start[e])
        fed_events.append([e for e in range(begin, event) if stream.feed[e]])
    histories = Sessions.of_histories(
        [stream.items[fed] for fed in fed_events], [stream.ratings[fed] for fed in fed_events]
    )
    if stream.timestamps is None:
        return histories
    stamps = np.concatenate([stream.timestamps[fed] for fed in fed_events] or [np.zeros(0, np.int64)])
    return Sessions(histories.items, histories.offsets, histories.ratings, None, stamps)


def without_seen(scores: np.ndarray, stream: timeline.Replay) -> np.ndarray:
    """``scores`` of the stream's targets with every movie the viewer rated before (other than the
    target itself) at NaN, which never counts against a target, not even one the model itself scored
    -inf: what ranking among the unseen means, one target at a time."""
    masked = scores.astype(np.float64, copy=True)
    events = stream.target_events
    for row, event in enumerate(events):
        user = np.searchsorted(stream.offsets, event, side="right") - 1
        seen = set(stream.items[stream.offsets[user] : event].tolist()) - {-1, int(stream.items[event])}
        masked[row, sorted(seen)] = np.nan
    return masked
