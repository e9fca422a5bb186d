"""The epoch policy every iterative model shares: validate, keep the best epoch, stop on patience.

The trainer and the evaluator are separate (as in RecBole): a model only runs its epochs and
reports each one; this module ranks the validation targets through the model's own
``rank_replay`` (the same path as ``evaluation.evaluate``), scores them with
``evaluation.metrics`` and decides, on the ranking among all candidates. The best epoch has the
highest validation ``SELECTION`` metric (Recall@20, then MRR@20 to break a tie); its state is
restored at the end. An epoch is better only when it beats the best by more than ``MIN_DELTA``
(``better``): on ML-1M, GRU4Rec's decayed learning rate otherwise gained about 0.0001 an epoch
up to its epoch cap (`gap_1d`: 0.3336 at epoch 10, 0.3343 at 18), about 20 s of training each.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sbr_dagster.data.arrays import Sessions
from sbr_dagster.data.timeline import Replay
from sbr_dagster.evaluation.metrics import SELECTION_K, mrr_at, recall_at
from sbr_dagster.models.base import Log, SessionModel, Verdict

VALID_RECALL = f"valid_recall_{SELECTION_K}"  # the selection metric, as a training-history column
VALID_MRR = f"valid_mrr_{SELECTION_K}"  # its tie-breaker
MIN_DELTA = 0.0005  # the least validation Recall@20 gain that makes an epoch better (5 hits in 10,000)


@dataclass
class Training:
    """What happened while fitting: one history row per epoch, and the epoch that was kept."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0  # 0: no epochs (a model fitted in one pass)
    stopped_early: bool = False
    wall_s: float = 0.0
    events_per_s: float = float("nan")  # training events per second of training (validation excluded)
    device: str = "CPU"

    @classmethod
    def of_summary(cls, history: list[dict[str, float]], summary: dict) -> Training:
        """A fit read back from a bundle (its history rows and ``summary()``)."""
        fields = ("best_epoch", "stopped_early", "wall_s", "events_per_s", "device")
        return cls(history=history, **{name: summary[name] for name in fields if name in summary})

    def summary(self) -> dict[str, object]:
        return {
            "best_epoch": self.best_epoch,
            "epochs_run": len(self.history),
            "stopped_early": self.stopped_early,
            "wall_s": self.wall_s,
            "events_per_s": self.events_per_s,
            "device": self.device,
        }


def describe(row: dict[str, float]) -> str:
    text = f"epoch {row['epoch']}: loss {row['loss']:.4f}, {row['events_per_s']:,.0f} events/s"
    if VALID_RECALL in row:
        text += f", valid Recall@{SELECTION_K} {row[VALID_RECALL]:.4f} MRR@{SELECTION_K} {row[VALID_MRR]:.4f}"
    return text


def better(key: tuple[float, float], best: tuple[float, float]) -> bool:
    """Whether an epoch's (Recall@20, MRR@20) beats the best: Recall@20 by more than ``MIN_DELTA``,
    or, on a tie in Recall@20 (a saturated metric), MRR@20 by more than that."""
    return key[0] > best[0] + MIN_DELTA or (key[0] == best[0] and key[1] > best[1] + MIN_DELTA)


def validation_scores(model: SessionModel, valid: Replay) -> tuple[float, float]:
    """The selection metric and its tie-breaker on ``valid``, ranked among all candidates."""
    ranks = model.rank_replay(valid)[0]
    return recall_at(ranks, SELECTION_K), mrr_at(ranks, SELECTION_K)


def fit(
    model: SessionModel,
    train: Sessions,
    n_items: int,
    valid: Replay | Sessions | None = None,
    *,
    log: Log = print,
    report: Callable[[int, float], object] | None = None,
) -> Training:
    """Fit ``model``; with ``valid`` (the validation stream, or split sessions), keep its best
    validation epoch and stop after ``model.patience`` epochs without a better one. ``report(epoch,
    valid Recall@20)`` hears of every epoch (a tuner's pruning; it may raise to stop the fit)."""
    if isinstance(valid, Sessions):
        valid = Replay.of_sessions(valid)
    started = time.perf_counter()
    result = Training(device=model.device)
    best: dict = {"key": None, "state": None}

    def after_epoch(row: dict[str, float]) -> Verdict:
        epoch = int(row["epoch"])
        if valid is not None:
            row[VALID_RECALL], row[VALID_MRR] = validation_scores(model, valid)
        result.history.append(row)
        log(describe(row))
        if report is not None and valid is not None:
            report(epoch, row[VALID_RECALL])
        if not np.isfinite(row["loss"]):
            log(f"epoch {epoch}: loss is {row['loss']}; stopping (lower the learning rate)")
            result.stopped_early = True
            return Verdict(stop=True, improved=False)
        key = (row.get(VALID_RECALL, epoch), row.get(VALID_MRR, 0.0))
        if best["key"] is None or better(key, best["key"]):
            best.update(key=key, state=model.snapshot())
            result.best_epoch = epoch
            return Verdict()
        if epoch - result.best_epoch >= model.patience:
            result.stopped_early = epoch < model.epochs
            log(f"no better validation Recall@{SELECTION_K} for {model.patience} epochs; best epoch "
                f"{result.best_epoch}")  # fmt: skip
            return Verdict(stop=True, improved=False)
        return Verdict(improved=False)

    model.fit(train, n_items, after_epoch=after_epoch, log=log)
    if best["state"] is not None:
        model.restore(best["state"])
    seconds = sum(row["seconds"] for row in result.history)
    events = sum(row["events"] for row in result.history)
    result.events_per_s = events / seconds if seconds else float("nan")
    result.wall_s = time.perf_counter() - started
    return result
