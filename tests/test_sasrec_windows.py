"""SASRec's windows: every training event a target once, contexts capped at max_len and shared."""

from __future__ import annotations

import numpy as np
import pytest

from sbr_dagster.models.sasrec.windows import batches, context_windows, training_windows

START = 999  # the start token of these tests


def sessions(lengths):
    """Offsets for ``lengths`` and items that name their event (item = 100 + event)."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return offsets, (100 + np.arange(offsets[-1])).astype(np.int32)


LENGTHS = [[2, 3, 7, 2, 5, 4, 2, 9, 3], [5, 1, 2, 6], [1], [23, 2, 2, 17, 2]]


@pytest.mark.parametrize("lengths", LENGTHS)
@pytest.mark.parametrize("max_len", [1, 2, 4, 7, 50])
def test_every_training_event_is_a_target_once_after_the_events_before_it(lengths, max_len):
    offsets, items = sessions(lengths)
    windows = training_windows(offsets, max_len)
    assert windows.length.max() <= max_len and windows.length.min() >= 1
    rows = np.arange(windows.n)
    width = int(windows.length.max())
    tokens = windows.tokens(items, START, rows, width)
    targets, mask = windows.targets(items, rows, width)
    assert sorted(targets[mask].tolist()) == items.tolist()  # each event once
    assert int(windows.length.sum()) == offsets[-1]
    for w in rows:
        session = np.searchsorted(offsets, windows.begin[w], side="right") - 1
        for t in range(windows.length[w]):
            event = offsets[session] + windows.first[w] + t  # what token t of this window predicts
            assert targets[w, t] == items[event]
            # The token before a target is its session's previous event, or the start token.
            before = items[event - 1] if event > offsets[session] else START
            assert tokens[w, t] == before
    assert (tokens[~mask] == START).all() and (targets[~mask] == 0).all()


@pytest.mark.parametrize("max_len,step", [(4, 1), (4, 2), (5, 5), (8, 3), (50, 12)])
def test_a_context_reads_its_last_events_capped_at_max_len(max_len, step):
    """The prediction after n events of a session reads tokens first..n: at most max_len of them, at
    least max_len - step + 1 once the session is long, always ending with its last event."""
    offsets, items = sessions([1, 30, 3, 12])
    begin = np.concatenate([np.full(offsets[s + 1] - offsets[s] + 1, offsets[s]) for s in range(4)])
    end = np.concatenate([np.arange(offsets[s], offsets[s + 1] + 1) for s in range(4)])
    queries = context_windows(begin, end, max_len, step)
    windows = queries.windows
    n = end - begin
    first = windows.first[queries.window]
    assert (windows.begin[queries.window] == begin).all()
    np.testing.assert_array_equal(first + queries.position, n)  # the token after the last event
    read = queries.position + 1  # tokens from first to n
    assert read.max() <= max_len
    long = n + 1 > max_len
    assert (read[long] >= max_len - step + 1).all() and (read[~long] == n[~long] + 1).all()
    assert (first % step == 0).all()
    assert (queries.position < windows.length[queries.window]).all()
    # One window per (session, start): every prediction of a session that reads it shares it.
    keys = set(zip(windows.begin.tolist(), windows.first.tolist(), strict=True))
    assert len(keys) == windows.n
    tokens = windows.tokens(items, START, np.arange(windows.n), int(windows.length.max()))
    for q in range(begin.size):
        context = items[max(begin[q], begin[q] + first[q] - 1) : end[q]]
        expected = ([START] if first[q] == 0 else []) + context.tolist()
        assert tokens[queries.window[q], : queries.position[q] + 1].tolist() == expected


def test_batches_cover_every_window_once_and_are_seeded():
    lengths = np.random.default_rng(0).integers(1, 200, 1000)
    first = batches(lengths, 32, np.random.default_rng(5))
    assert sorted(np.concatenate(first).tolist()) == list(range(1000))
    assert max(b.size for b in first) == 32
    again = batches(lengths, 32, np.random.default_rng(5))
    assert all((a == b).all() for a, b in zip(first, again, strict=True))
    other = batches(lengths, 32, np.random.default_rng(6))
    assert any(a.shape != b.shape or (a != b).any() for a, b in zip(first, other, strict=True))
    # Lengths within a batch are alike: far less padding than random batches.
    padding = sum(int(lengths[b].max() * b.size - lengths[b].sum()) for b in first)
    shuffled = np.random.default_rng(1).permutation(1000)
    random_padding = sum(
        int(lengths[b].max() * b.size - lengths[b].sum()) for b in np.array_split(shuffled, 1000 // 32)
    )
    assert padding < random_padding / 5
