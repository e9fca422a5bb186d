"""Checks on a metrics table: every event ranked, every metric a proportion, trained models beat pop."""

import dagster as dg
import polars as pl

from sbr_dagster.data import validation
from sbr_dagster.defs.checks.preprocessing import result
from sbr_dagster.evaluation.metrics_table import CI_COLUMNS
from sbr_dagster.lake import layout
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

    @dg.asset_check(
        asset=metrics_key,
        name="every_event_ranked",
        blocking=True,
        additional_ins=parts,
        description="Predictions counted = sum over sessions of (length - 1), per split and model.",
    )
    def every_event_ranked(metrics: pl.DataFrame, valid: pl.DataFrame, test: pl.DataFrame):
        expected = {
            name: validation.expected_predictions(frame)
            for name, frame in {"valid": valid, "test": test}.items()
        }
        counted = metrics.select("split", "model", "n_predictions").unique()
        problems = [
            f"{row['model']} on {row['split']}: {row['n_predictions']:,} predictions, expected "
            f"{expected[row['split']]:,}"
            for row in counted.iter_rows(named=True)
            if row["n_predictions"] != expected[row["split"]]
        ]
        missing = set(expected) - set(counted["split"])
        problems += [f"no metrics for split {name}" for name in sorted(missing)]
        return result(problems, **{f"expected_{k}": v for k, v in expected.items()})

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
        at_k = metrics.filter((pl.col("split") == "test") & (pl.col("k") == k))
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
