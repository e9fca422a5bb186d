"""The time since a session's previous event, as a small integer a model can embed.

On the `user` definition a session is a viewer's whole history, years of it: a fixed time gap
tells a model where a sitting ends, while a gap input lets one model learn what a break means.
Buckets are log2 of seconds, two doublings wide: 0 means no earlier event in the session, 1 under
3 s (ML-1M's viewers rate many movies within a second), 9 about a day, 13 about a year,
``N_GAPS - 1`` anything longer. Without times (a history given to ``sbr recommend``) every event is
taken to follow the one before it in the same sitting (``SAME_SITTING``), and a recommendation to be
asked for right after the last one.
"""

from __future__ import annotations

import numpy as np

from sbr_dagster.data.arrays import Sessions
from sbr_dagster.data.timeline import Replay, last_fed_before

N_GAPS = 17
SAME_SITTING = 1  # the bucket of an event rated within seconds of the one before


def bucket(seconds: np.ndarray) -> np.ndarray:
    """The gap bucket (1 .. N_GAPS - 1) of each non-negative number of seconds."""
    doublings = np.floor(np.log2(1.0 + np.maximum(np.asarray(seconds, dtype=np.float64), 0.0)))
    return (1 + np.minimum(doublings.astype(np.int64) // 2, N_GAPS - 2)).astype(np.int32)


def session_gaps(sessions: Sessions) -> np.ndarray:
    """Each event's bucket of the time since the event before it in its session (0 at a start)."""
    n = len(sessions.items)
    if sessions.timestamps is None:
        gaps = np.full(n, SAME_SITTING, dtype=np.int32)
    else:
        times = np.asarray(sessions.timestamps, dtype=np.int64)
        gaps = bucket(np.diff(times, prepend=times[:1]))
    gaps[np.asarray(sessions.offsets[:-1], dtype=np.int64)[np.diff(sessions.offsets) > 0]] = 0
    return gaps


def replay_gaps(stream: Replay) -> np.ndarray:
    """Each event's bucket of the time since the last event its session fed before it (0: none).

    The same rule as ``session_gaps`` on a split's sessions, where every event is fed: what a
    model is trained on is what it is asked with.
    """
    previous = last_fed_before(stream)
    if stream.timestamps is None:
        gaps = np.full(len(stream.items), SAME_SITTING, dtype=np.int32)
    else:
        times = np.asarray(stream.timestamps, dtype=np.int64)
        gaps = bucket(times - times[np.maximum(previous, 0)])
    return np.where(previous >= 0, gaps, 0).astype(np.int32)


def next_gaps(histories: Sessions) -> np.ndarray:
    """The bucket before the event that follows each whole history: asked for now, right after its
    last rating (0 for an empty history, as for a session's first event)."""
    return np.where(np.diff(histories.offsets) > 0, SAME_SITTING, 0).astype(np.int32)
