"""A weighted blend of fitted models' replay scores, its weights chosen on validation.

Members score on different scales (GRU4Rec's and SASRec's logits, a neighbour method's summed
similarities), so each member's row of scores is standardised first (mean 0, standard deviation 1
over the finite scores; -inf, a movie a member rules out, stays out) and the blend is the weighted
sum. Ties count against the blend (no member's tie order survives a sum). The stream is taken a few
thousand targets at a time, whole users each, so every member's scores of a part fit in memory and
every weighting is ranked on the same standardised scores.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sbr_dagster.data.timeline import Replay, seen_mask
from sbr_dagster.evaluation.metrics import SELECTION_K, mrr_at, recall_at
from sbr_dagster.models.base import SessionModel
from sbr_dagster.models.ranking import both_ranks

PART_TARGETS = 8192  # targets scored per part: each member's [part, n_items] scores stay in memory

Weights = tuple[float, ...]
Scores = tuple[float, float]  # validation Recall@20, then MRR@20 (the trainer's selection rule)


def standardised(scores: np.ndarray) -> np.ndarray:
    """Each row shifted and scaled to mean 0 and standard deviation 1 over its finite scores (a row
    that does not vary becomes 0); -inf stays -inf."""
    scores = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(scores)
    count = np.maximum(finite.sum(axis=1, keepdims=True), 1)
    values = np.where(finite, scores, 0.0)
    mean = values.sum(axis=1, keepdims=True) / count
    spread = np.sqrt((np.where(finite, scores - mean, 0.0) ** 2).sum(axis=1, keepdims=True) / count)
    z = (values - mean) / np.where(spread > 0, spread, 1.0)
    return np.where(finite, z, -np.inf).astype(np.float32)


def simplex(n_members: int, steps: int) -> list[Weights]:
    """Every weighting of ``n_members`` in multiples of 1/``steps`` that sums to 1."""
    return [
        tuple(c / steps for c in combo)
        for combo in itertools.product(range(steps + 1), repeat=n_members)
        if sum(combo) == steps
    ]


def _parts(stream: Replay) -> list[tuple[int, int]]:
    """``(first, stop)`` user ranges, each starting a new ``PART_TARGETS`` of the stream's targets
    (so a part holds fewer than that plus one user's targets)."""
    targets_before = np.concatenate([[0], np.cumsum(stream.target)])[stream.offsets]
    part = targets_before[:-1] // PART_TARGETS
    starts = np.concatenate([[0], np.flatnonzero(np.diff(part)) + 1]).tolist()
    return list(zip(starts, [*starts[1:], part.size], strict=True)) if part.size else []


def _member_scores(model: SessionModel, part: Replay, n_items: int) -> np.ndarray:
    scores = np.empty((part.target_events.size, n_items), dtype=np.float32)
    for rows, chunk in model.replay_scores(part):
        scores[rows] = standardised(chunk)
    return scores


def blend_ranks(
    members: Sequence[SessionModel], weightings: Sequence[Weights], stream: Replay, n_items: int
) -> dict[Weights, tuple[np.ndarray, np.ndarray]]:
    """Both ranks of every target of ``stream`` under each weighting of ``members``' standardised
    scores (a weighting: one weight per member)."""
    n = stream.target_events.size
    ranks = {w: (np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)) for w in weightings}
    done = 0
    for first, stop in _parts(stream):
        part = stream.users(first, stop)
        events = part.target_events
        if events.size == 0:
            continue
        scores = [_member_scores(model, part, n_items) for model in members]
        seen = seen_mask(part, events, n_items)
        rows = slice(done, done + events.size)
        for weighting in weightings:
            blend = sum(w * s for w, s in zip(weighting, scores, strict=True) if w)
            ranks[weighting][0][rows], ranks[weighting][1][rows] = both_ranks(blend, part.items[events], seen)
        done += events.size
    return ranks


def choose_weights(
    members: Sequence[SessionModel], weightings: Sequence[Weights], valid: Replay, n_items: int
) -> tuple[Weights, list[dict[str, float]]]:
    """The weighting with the best validation Recall@20 (then MRR@20; then the earlier weighting),
    and every weighting's validation row."""
    ranked = blend_ranks(members, weightings, valid, n_items)
    rows = [
        {
            "weights": list(w),
            f"valid_recall_{SELECTION_K}": recall_at(r[0], SELECTION_K),
            f"valid_mrr_{SELECTION_K}": mrr_at(r[0], SELECTION_K),
            f"valid_unseen_recall_{SELECTION_K}": recall_at(r[1], SELECTION_K),
        }
        for w, r in ranked.items()
    ]
    best = max(
        range(len(rows)),
        key=lambda i: (rows[i][f"valid_recall_{SELECTION_K}"], rows[i][f"valid_mrr_{SELECTION_K}"], -i),
    )
    return tuple(rows[best]["weights"]), rows


def best_member(members: Mapping[str, SessionModel], valid: Replay) -> tuple[str, dict[str, Scores]]:
    """The member with the best validation Recall@20 (then MRR@20; then the earlier member), each
    ranked its own way (a neighbour method keeps its popularity tie order), and every member's scores."""
    scores = {}
    for name, model in members.items():
        ranks = model.rank_replay(valid)[0]
        scores[name] = (recall_at(ranks, SELECTION_K), mrr_at(ranks, SELECTION_K))
    return max(scores, key=scores.__getitem__), scores


@dataclass(frozen=True)
class Blend:
    """A chosen weighting of fitted members that ranks a replay like a model (``rank_replay``), so the
    evaluation's tables and paired findings take it as one."""

    members: tuple[SessionModel, ...]
    weights: Weights
    n_items: int

    def rank_replay(self, stream: Replay) -> tuple[np.ndarray, np.ndarray]:
        return blend_ranks(self.members, [self.weights], stream, self.n_items)[self.weights]
