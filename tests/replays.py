"""Random replay streams for the model-contract tests: one generator serves every model's tests."""

from __future__ import annotations

import numpy as np

from sbr_dagster.data import timeline

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
