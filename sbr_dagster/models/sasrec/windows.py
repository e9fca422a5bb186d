"""What SASRec reads: sessions as windows of at most ``max_len`` tokens, for training and for scoring.

A session of events e0..e(L-1) is read as the tokens [start, e0, .., e(L-2)], token t predicting
e(t): the start token (item index ``n_items``) lets the model predict a session's first event from
nothing, so under a time-gap definition a target that opens a new session is still predicted from
what the model learnt about first events, not from a zero vector.

Training cuts each session's tokens into consecutive windows of ``max_len``, so every training
event is a target exactly once per epoch. Scoring caps a prediction's context: the prediction
after n events reads tokens 0..n, from the window that starts at the latest multiple of ``step``
keeping it within ``max_len`` tokens. Windows therefore depend only on the session and the count
of events, and one forward pass over a window serves every prediction that reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Windows:
    """Windows of token sequences: window w reads tokens ``first[w]`` .. ``first[w] + length[w] - 1`` of
    the session whose events start at ``begin[w]`` in the events array."""

    begin: np.ndarray  # int64: where the window's session starts among the events
    first: np.ndarray  # int64: the window's first token (0 is the start token)
    length: np.ndarray  # int64: its tokens

    @property
    def n(self) -> int:
        return self.begin.size

    def tokens(self, items: np.ndarray, start_token: int, rows: np.ndarray, width: int) -> np.ndarray:
        """``[len(rows), width]`` token ids of windows ``rows``, right-padded with the start token
        (padding comes after every real token, so causal attention never reads it)."""
        column = np.arange(width)
        token = self.first[rows, None] + column[None, :]  # token t is event t - 1
        real = column[None, :] < self.length[rows, None]
        event = self.begin[rows, None] + token - 1
        ids = np.full((rows.size, width), start_token, dtype=np.int32)
        inside = real & (token > 0)
        ids[inside] = items[event[inside]]
        return ids

    def targets(self, items: np.ndarray, rows: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        """``(targets, mask)`` ``[len(rows), width]``: the event each token predicts, and where one is."""
        column = np.arange(width)
        mask = column[None, :] < self.length[rows, None]
        event = self.begin[rows, None] + self.first[rows, None] + column[None, :]
        ids = np.zeros((rows.size, width), dtype=np.int32)
        ids[mask] = items[event[mask]]
        return ids, mask


def training_windows(offsets: np.ndarray, max_len: int) -> Windows:
    """Consecutive windows of ``max_len`` tokens over every session (``offsets``): a session of L
    events has L tokens (the start token and all events but its last), each a target once."""
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    per_session = -(-lengths // max_len)  # windows per session; empty sessions have none
    session = np.repeat(np.arange(lengths.size), per_session)
    within = np.arange(session.size) - np.repeat(np.cumsum(per_session) - per_session, per_session)
    first = within * max_len
    return Windows(offsets[session], first, np.minimum(max_len, lengths[session] - first))


@dataclass(frozen=True)
class Queries:
    """Where each prediction reads its state: token ``position[q]`` of window ``window[q]``."""

    windows: Windows
    window: np.ndarray  # int64 per prediction
    position: np.ndarray  # int64 per prediction


def context_windows(begin: np.ndarray, end: np.ndarray, max_len: int, step: int) -> Queries:
    """The windows that predictions with current sessions ``events[begin:end]`` read.

    A prediction after n events reads token n; its window starts at the smallest multiple of
    ``step`` that keeps tokens first..n within ``max_len``, so its context holds between
    ``max_len - step + 1`` and ``max_len`` tokens once the session is long, and all of it before.
    """
    begin, end = np.asarray(begin, dtype=np.int64), np.asarray(end, dtype=np.int64)
    n = end - begin
    first = step * -(-np.maximum(n + 1 - max_len, 0) // step)
    keys, window = np.unique(np.stack([begin, first]), axis=1, return_inverse=True)
    window = window.reshape(-1).astype(np.int64)
    position = n - first
    length = np.zeros(keys.shape[1], dtype=np.int64)
    np.maximum.at(length, window, position + 1)
    return Queries(Windows(keys[0], keys[1], length), window, position)


WIDTH_STEP = 8  # batches are padded to a multiple of this many tokens: few distinct shapes


def padded_width(longest: int, max_len: int) -> int:
    """The width a batch whose longest window has ``longest`` tokens is padded to."""
    return min(max_len, -(-longest // WIDTH_STEP) * WIDTH_STEP)


def batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Windows in batches of ``batch_size`` whose lengths are alike (little padding): shuffled,
    sorted by length within pools of 50 batches, then the batches shuffled (``rng`` None: in
    order of length, for scoring)."""
    lengths = np.asarray(lengths)
    if rng is None:
        order = np.argsort(-lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, order.size, batch_size)]
    order = rng.permutation(lengths.size)
    pool = 50 * batch_size
    for lo in range(0, order.size, pool):
        part = order[lo : lo + pool]
        order[lo : lo + pool] = part[np.argsort(-lengths[part], kind="stable")]
    groups = [order[i : i + batch_size] for i in range(0, order.size, batch_size)]
    return [groups[i] for i in rng.permutation(len(groups))]
