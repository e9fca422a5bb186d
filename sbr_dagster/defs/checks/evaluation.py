"""Checks on a metrics table: every target ranked (the shared ones on the timeline), replays that
never look ahead, every metric a proportion, trained models beat pop."""

import dagster as dg
import numpy as np
import polars as pl

from sbr_dagster.data import timeline, validation
from sbr_dagster.defs.assets.source import RATINGS_KEY
from sbr_dagster.defs.assets.timeline import COMPARISON_KEY, FINDINGS, REPLAY_INS
from sbr_dagster.defs.checks.preprocessing import result
from sbr_dagster.defs.metadata import table_md
from sbr_dagster.defs.resources import DataLake, PreprocessingSettings
from sbr_dagster.evaluation import comparison, streams
from sbr_dagster.evaluation.metrics_table import CI_COLUMNS
from sbr_dagster.lake import files, layout
from sbr_dagster.models import registry
from sbr_dagster.training.trainer import SELECTION_K


def evaluation_checks(
    definition: str,
    prefix: layout.Key | None = None,
    beat_reference: tuple[str, ...] = (registry.PRIMARY,),
) -> list[dg.AssetChecksDefinition]:
    """Checks of ``<prefix>/metrics``; each model of ``beat_reference`` must beat ``registry.REFERENCE``."""
    prefix = prefix or (definition,)
    metrics_key = dg.AssetKey([*prefix, layout.METRICS])
    parts = {part: dg.AssetIn(list(layout.definition_key(definition, part))) for part in ("valid", "test")}
    parts_index = dg.AssetIn(list(layout.definition_key(definition, layout.ITEM_INDEX)))

    @dg.asset_check(
        asset=metrics_key,
        name="every_event_ranked",
        blocking=True,
        additional_ins={**parts, "targets": REPLAY_INS["targets"]},
        description="Predictions counted, per split, model and ranking: on the timeline protocol the "
        "shared target count; otherwise the sum over sessions of (length - 1).",
    )
    def every_event_ranked(
        metrics: pl.DataFrame, valid: pl.DataFrame, test: pl.DataFrame, targets: pl.DataFrame
    ):
        on_timeline = (metrics["protocol"] == streams.TIMELINE).all()
        expected = {
            name: targets.filter(pl.col("split") == name).height
            if on_timeline
            else validation.expected_predictions(frame)
            for name, frame in {"valid": valid, "test": test}.items()
        }
        counted = (
            metrics.filter(pl.col("slice") == "all")
            .select("split", "model", "ranking", "n_predictions")
            .unique()
        )
        problems = [
            f"{row['model']} on {row['split']} ({row['ranking']} ranking): {row['n_predictions']:,} "
            f"predictions, expected {expected[row['split']]:,}"
            for row in counted.iter_rows(named=True)
            if row["n_predictions"] != expected[row["split"]]
        ]
        missing = set(expected) - set(counted["split"])
        problems += [f"no metrics for split {name}" for name in sorted(missing)]
        return result(
            problems,
            protocol="timeline" if on_timeline else "split sessions",
            **{f"expected_{k}": v for k, v in expected.items()},
        )

    @dg.asset_check(
        asset=metrics_key,
        name="same_targets_as_every_variant",
        blocking=True,
        additional_ins={"targets": REPLAY_INS["targets"]},
        description="On the timeline protocol, every model ranked exactly the shared targets (by their "
        "ratings.dat line), so any two variants pair prediction by prediction.",
    )
    def same_targets(metrics: pl.DataFrame, targets: pl.DataFrame, lake: DataLake):
        if not (metrics["protocol"] == streams.TIMELINE).all():
            return dg.AssetCheckResult(passed=True, description="not the timeline protocol: not applicable")
        ranks = files.read_parquet(lake.table_path((*prefix, layout.RANKS)))
        problems = []
        for (split, model), part in ranks.group_by("split", "model", maintain_order=True):
            shared = np.sort(targets.filter(pl.col("split") == split)["line"].to_numpy().astype(np.int64))
            if not np.array_equal(np.sort(part["target"].to_numpy()), shared):
                problems.append(
                    f"{model} on {split}: its {part.height:,} targets are not the {shared.size:,} shared ones"
                )
        return result(problems, targets=targets.height)

    @dg.asset_check(
        asset=metrics_key,
        name="contexts_precede_targets",
        blocking=True,
        additional_ins={"ratings": dg.AssetIn(RATINGS_KEY), **REPLAY_INS, "item_index": parts_index},
        description="On the timeline protocol, no prediction's context holds an event at or after its "
        "target: every replayed stream is in strict (time, file line) order per viewer.",
    )
    def contexts_precede_targets(
        metrics: pl.DataFrame,
        ratings: pl.DataFrame,
        cuts: pl.DataFrame,
        targets: pl.DataFrame,
        item_index: pl.DataFrame,
        preprocessing: PreprocessingSettings,
    ):
        if not (metrics["protocol"] == streams.TIMELINE).all():
            return dg.AssetCheckResult(passed=True, description="not the timeline protocol: not applicable")
        replayed = streams.split_streams(
            streams.TIMELINE, definition, tables={}, item_index=item_index, ratings=ratings, cuts=cuts,
            targets=targets, min_rating=preprocessing.min_rating,
        )  # fmt: skip
        problems = [
            problem
            for split, stream in replayed.items()
            for problem in timeline.context_problems(stream, targets, split)
        ]
        return result(problems, **{f"{s}_targets": r.target_events.size for s, r in replayed.items()})

    @dg.asset_check(
        asset=metrics_key,
        name="metrics_are_proportions",
        blocking=True,
        description="Every recall, MRR and CI bound lies in [0, 1].",
    )
    def metrics_are_proportions(metrics: pl.DataFrame):
        return result(validation.proportion_problems(metrics, ["recall", "mrr", *CI_COLUMNS]))

    return [
        every_event_ranked,
        same_targets,
        contexts_precede_targets,
        metrics_are_proportions,
        *(beats_reference(metrics_key, m) for m in beat_reference),
    ]


def beats_reference(metrics_key: dg.AssetKey, model: str) -> dg.AssetChecksDefinition:
    reference, k = registry.REFERENCE, SELECTION_K

    @dg.asset_check(
        asset=metrics_key,
        name=f"{model}_beats_popularity",  # registry.REFERENCE is the popularity baseline
        blocking=True,
        description=f"{model}'s test Recall@{k} exceeds {reference}'s: otherwise it is broken.",
    )
    def check(metrics: pl.DataFrame):
        at_k = metrics.filter(
            (pl.col("split") == "test")
            & (pl.col("k") == k)
            & (pl.col("ranking") == "all")
            & (pl.col("slice") == "all")
        )
        recall = dict(zip(at_k["model"], at_k["recall"], strict=True))
        if model not in recall or reference not in recall:
            return result([f"need {model} and {reference} test Recall@{k}, have {sorted(recall)}"])
        problems = (
            []
            if recall[model] > recall[reference]
            else [f"{model} Recall@{k} {recall[model]:.4f} <= {reference} {recall[reference]:.4f}"]
        )
        return result(
            problems, **{f"{model}_recall_{k}": recall[model], f"{reference}_recall_{k}": recall[reference]}
        )

    return check


def trained_beats_baselines() -> dg.AssetChecksDefinition:
    """A warning, not a gate: on data other than ML-1M a default may lose to a simple baseline, and the
    UI should say so while the job goes on (``comparison.baseline_margins``)."""
    k = SELECTION_K

    @dg.asset_check(
        asset=COMPARISON_KEY,
        name="best_trained_model_beats_every_baseline",
        blocking=False,
        description=f"In every definition, the best trained model's test Recall@{k} beats every baseline's "
        "with a paired 95% interval above zero (a warning when it does not).",
    )
    def check(lake: DataLake) -> dg.AssetCheckResult:
        found = files.read_parquet(lake.table_path(FINDINGS))
        if found.height == 0:
            return dg.AssetCheckResult(
                passed=True,
                severity=dg.AssetCheckSeverity.WARN,
                description="nothing paired (not the timeline)",
            )
        margins = comparison.baseline_margins(found, registry.TRAINED)
        problems = [
            f"{row['variant']}: the best trained model, {row['model']}, does not beat every baseline (the "
            f"strongest, {row['strongest_baseline']}: {row['delta_recall']:+.4f} "
            f"[{row['delta_recall_ci_low']:+.4f}, {row['delta_recall_ci_high']:+.4f}])"
            for row in margins.filter(~pl.col("beats_every_baseline")).iter_rows(named=True)
        ]
        return dg.AssetCheckResult(
            passed=not problems,
            severity=dg.AssetCheckSeverity.WARN,
            description="; ".join(problems) if problems else "ok",
            metadata={"margins": table_md(margins), "losing": len(problems)},
        )

    return check
