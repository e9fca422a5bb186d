"""Validation-driven tuning of one model: Optuna's TPE over the search space, pruning by the median.

The first trial is always the model's defaults (when the space holds them): on a 10% sample of
ML-1M's users, 8 TPE trials of GRU4Rec never came near its defaults, and the "tuned" model lost to
them on test (Recall@20 0.150 vs 0.161 on `user`).

Every trial trains (or fits) the model on the train sessions and scores it on the validation
stream only, with the selection metric the trainer picks epochs by (Recall@20 among all
candidates, MRR@20 breaking ties); test targets are never read. Whenever a trial is the best so far,
``keep`` gets its fitted model, so the tuned model need not be trained again (same settings, same
seed, same data: the same model on CPU). A trial of an iterative model
reports each epoch's validation Recall@20, and one below the median of earlier trials at the same
epoch stops there. Same seed, same data: the same trials (TPE is seeded, training is on CPU).

A model already fitted on the same train split (``Fitted``: the main job's, with the defaults) stands
in for any trial with exactly its settings: it is scored on validation, not trained again. On ML-1M
that is the defaults trial, 10 to 30 minutes of training per model on 2 cores.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from sbr_dagster.data.arrays import Sessions
from sbr_dagster.data.timeline import Replay
from sbr_dagster.errors import InputDataError
from sbr_dagster.evaluation.comparison import Question
from sbr_dagster.experiments.search_space import Parameter, SearchSpace
from sbr_dagster.models import registry
from sbr_dagster.models.base import SessionModel
from sbr_dagster.training import trainer

Keep = Callable[[int, SessionModel, trainer.Training, tuple[float, float]], object]

TRIAL_COLUMNS = (
    "trial", "state", "valid_recall_20", "valid_mrr_20", "epochs_run", "best_epoch", "seconds", "fitted_by",
)  # fmt: skip
TRIAL_FIT = "trial"  # ``fitted_by`` of a trial that trained its model


@dataclass(frozen=True)
class Fitted:
    """A model fitted on the train split the search uses, and how: a trial with exactly its settings
    takes it (``source`` names it in the trials table)."""

    model: SessionModel
    fit: trainer.Training
    source: str


def same_settings(a: SessionModel, b: SessionModel) -> bool:
    """Whether two models of one kind were built with the same settings (as their bundles write them)."""
    import json

    def written(model: SessionModel) -> str:
        return json.dumps(model.config.to_dict(), sort_keys=True, default=str)

    return a.name == b.name and written(a) == written(b)


def default_trial(
    model: str, parameters: tuple[Parameter, ...], base: dict[str, Any]
) -> dict[str, Any] | None:
    """The model's defaults (under ``base``) as Optuna's first trial, so the search never ends below
    them on validation; None when one lies outside its parameter's range or choices."""
    defaults = {**registry.make_config(model).to_dict(), **base}
    searched = [p for p in parameters if p.choices is not None or p.low is not None]
    values = {p.name: p.trial_value(defaults[p.name]) for p in searched}
    return None if any(v is None for v in values.values()) else values


def tuned_name(model: str) -> str:
    """How a tuned model is named in the metrics and ranks tables, beside its default-settings self."""
    return f"{model}_tuned"


def tuning_questions(
    variants: list[str], tuned: tuple[str, ...], defaults: dict[str, tuple[str, ...]]
) -> list[Question]:
    """What the tuned models answer, in each variant: did tuning help (each tuned model against its
    default self, where ``defaults`` says the variant has it), and which structure wins once every
    model is tuned (each tuned trained model against every other tuned model)."""
    asked = []
    for variant in variants:
        asked += [
            Question("tuning", (variant, tuned_name(m)), (variant, m))
            for m in tuned
            if m in defaults.get(variant, ())
        ]
        trained = [m for m in tuned if m in registry.TRAINED]
        for i, model in enumerate(trained):
            asked += [
                Question("tuned model", (variant, tuned_name(model)), (variant, tuned_name(other)))
                for other in tuned
                if other != model and other not in trained[:i]
            ]
    return asked


@dataclass
class Tuning:
    model: str
    trials: pl.DataFrame  # one row per trial: TRIAL_COLUMNS, then one column per parameter
    best_settings: dict[str, Any]  # the best trial's parameters (the rest: the model's defaults)
    best_value: float  # its validation Recall@20
    wall_s: float


def tune(
    model: str,
    space: SearchSpace,
    train: Sessions,
    n_items: int,
    valid: Replay,
    *,
    trials: int | None = None,
    wall_s: float | None = None,
    seed: int = 0,
    base_settings: dict[str, Any] | None = None,
    log: Callable[[str], object] = print,
    keep: Keep | None = None,
    fitted: Fitted | None = None,
) -> Tuning:
    """Search ``space``'s ranges for ``model`` (``base_settings`` under every trial's choices);
    ``keep(trial, fitted model, fit, (recall, mrr))`` whenever a trial is the best so far; ``fitted``
    stands in for a trial with its settings."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    parameters = space.of(model)
    trials = trials or space.trials
    wall_s = wall_s or space.wall_s
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(5, max(1, trials // 3)))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    first = default_trial(model, parameters, base_settings or {})
    if first is None:
        log(f"{model}'s defaults lie outside the search space: they are not tried first")
    else:
        study.enqueue_trial(first)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    best_so_far = (-math.inf, -math.inf)

    def objective(trial) -> float:
        settings = {**(base_settings or {}), **{p.name: p.suggest(trial) for p in parameters}}
        row: dict[str, Any] = {"trial": trial.number, "state": "running", "fitted_by": TRIAL_FIT, **settings}
        rows.append(row)
        tick = time.perf_counter()
        try:
            candidate = registry.build(model, settings)
        except InputDataError as error:  # a combination the model refuses (e.g. dim and heads)
            row.update(state="refused", seconds=0.0)
            log(f"trial {trial.number}: {error}")
            raise optuna.TrialPruned() from None
        if fitted is not None and same_settings(fitted.model, candidate):
            return finish(row, settings, fitted.model, fitted.fit, reuse(trial, row, fitted), tick)

        def report(epoch: int, recall: float) -> None:
            row.update(epochs_run=epoch)
            trial.report(recall, epoch)
            if trial.should_prune():
                row.update(state="pruned", valid_recall_20=recall)
                log(f"trial {trial.number}: pruned after epoch {epoch}, valid Recall@20 {recall:.4f} below "
                    "the median of earlier trials there")  # fmt: skip
                raise optuna.TrialPruned()

        def progress(line: str) -> None:  # a trial of ML-1M trains for minutes: its epochs are news
            log(f"trial {trial.number}: {line}")

        try:
            result = trainer.fit(candidate, train, n_items, valid, log=progress, report=report)
        finally:
            row["seconds"] = time.perf_counter() - tick
        if result.history:
            best = next(h for h in result.history if h["epoch"] == result.best_epoch)
            scores = best[trainer.VALID_RECALL], best[trainer.VALID_MRR]
        else:  # fitted in one pass: score it once
            scores = trainer.validation_scores(candidate, valid)
        return finish(row, settings, candidate, result, scores, tick)

    def reuse(trial, row: dict[str, Any], known: Fitted) -> tuple[float, float]:
        """``known``'s validation scores on this search's stream (its own epochs' curve feeds the pruner)."""
        for epoch in known.fit.history:
            if trainer.VALID_RECALL in epoch:
                trial.report(epoch[trainer.VALID_RECALL], int(epoch["epoch"]))
        row["fitted_by"] = known.source
        scores = trainer.validation_scores(known.model, valid)
        log(f"trial {trial.number}: {known.source} was fitted with these settings; scored, not trained again")
        return scores

    def finish(row, settings, candidate: SessionModel, result: trainer.Training, scores, tick) -> float:
        """A complete trial: its row, its log line, ``keep`` when it is the best so far; Optuna's value."""
        recall, mrr = scores
        row.setdefault("seconds", time.perf_counter() - tick)
        row.update(
            state="complete", valid_recall_20=recall, valid_mrr_20=mrr,
            epochs_run=len(result.history), best_epoch=result.best_epoch,
        )  # fmt: skip
        log(f"trial {row['trial']}: valid Recall@20 {recall:.4f} MRR@20 {mrr:.4f} with {settings}")
        nonlocal best_so_far
        if keep is not None and (recall, mrr) > best_so_far:  # best_settings' rule: ties keep the earlier
            keep(row["trial"], candidate, result, (recall, mrr))
        best_so_far = max(best_so_far, (recall, mrr))
        # Recall first, MRR breaking ties, as the trainer chooses epochs.
        return recall + mrr * 1e-6

    study.optimize(objective, n_trials=trials, timeout=wall_s)
    complete = [r for r in rows if r["state"] == "complete"]
    if not complete:
        raise InputDataError(
            f"no {model} trial completed in {len(rows)} tries; widen the search space or raise the budget"
        )
    names = [p.name for p in parameters]
    frame = trials_frame(rows, names)
    best = best_settings(frame, parameters)
    return Tuning(
        model=model,
        trials=frame,
        best_settings={**(base_settings or {}), **best},
        best_value=float(
            frame.filter(pl.col("state") == "complete")["valid_recall_20"].max()  # type: ignore[arg-type]
        ),
        wall_s=time.perf_counter() - started,
    )


def best_trial(trials: pl.DataFrame) -> dict[str, Any]:
    """The best complete trial's row: Recall@20, then MRR@20, then the earlier trial."""
    complete = trials.filter(pl.col("state") == "complete")
    if complete.height == 0:
        raise InputDataError("the trials table has no complete trial; run the tuning again")
    return complete.sort(["valid_recall_20", "valid_mrr_20", "trial"], descending=[True, True, False]).row(
        0, named=True
    )


def best_settings(trials: pl.DataFrame, parameters: tuple[Parameter, ...]) -> dict[str, Any]:
    """The best complete trial's settings, read back from its trials table (``tune``'s rule)."""
    import json

    best = best_trial(trials)
    settings = {}
    for parameter in parameters:
        value = best[parameter.name]
        listed = parameter.choices is not None and any(isinstance(c, list) for c in parameter.choices)
        settings[parameter.name] = json.loads(value) if listed and isinstance(value, str) else value
    return settings


def trials_frame(rows: list[dict[str, Any]], names: list[str]) -> pl.DataFrame:
    """The trials as a table; list-valued settings (GRU widths) as their JSON text."""
    import json

    def cell(value: Any) -> Any:
        return json.dumps(value) if isinstance(value, list | tuple) else value

    columns: dict[str, list] = {c: [r.get(c) for r in rows] for c in TRIAL_COLUMNS}
    for name in names:
        values = [cell(r.get(name)) for r in rows]
        kinds = {type(v) for v in values if v is not None}
        columns[name] = values if len(kinds) <= 1 else [str(v) for v in values]
    frame = pl.DataFrame(columns, strict=False)
    return frame.with_columns(
        pl.col("valid_recall_20", "valid_mrr_20", "seconds").cast(pl.Float64),
        pl.col("epochs_run", "best_epoch").cast(pl.Int64),
    ).with_columns(pl.col("valid_recall_20").fill_null(math.nan))
