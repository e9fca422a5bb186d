"""Checks on a metrics table: every event ranked, every metric a proportion, GRU4Rec above popularity."""

import dagster as dg
import polars as pl

from sbr_dagster.checks.preprocessing import result
from sbr_dagster.core import validation


def evaluation_checks(
    definition: str, prefix: list[str] | None = None, compare_with_pop: bool = True
) -> list[dg.AssetChecksDefinition]:
    prefix = prefix or [definition]
    metrics_key = dg.AssetKey([*prefix, "metrics"])
    parts = {part: dg.AssetIn([definition, part]) for part in ("valid", "test")}

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
        return result(
            validation.proportion_problems(
                metrics, ["recall", "mrr", "recall_ci_low", "recall_ci_high", "mrr_ci_low", "mrr_ci_high"]
            )
        )

    checks = [every_event_ranked, metrics_are_proportions]
    if compare_with_pop:

        @dg.asset_check(
            asset=metrics_key,
            name="gru4rec_beats_popularity",
            blocking=True,
            description="GRU4Rec's test Recall@20 exceeds most-popular's: otherwise it is broken.",
        )
        def gru4rec_beats_popularity(metrics: pl.DataFrame):
            at20 = metrics.filter((pl.col("split") == "test") & (pl.col("k") == 20))
            recall = dict(zip(at20["model"], at20["recall"], strict=True))
            if "gru4rec" not in recall or "pop" not in recall:
                return result([f"need gru4rec and pop test Recall@20, have {sorted(recall)}"])
            problems = (
                []
                if recall["gru4rec"] > recall["pop"]
                else [f"gru4rec Recall@20 {recall['gru4rec']:.4f} <= pop {recall['pop']:.4f}"]
            )
            return result(problems, gru4rec_recall_20=recall["gru4rec"], pop_recall_20=recall["pop"])

        checks.append(gru4rec_beats_popularity)
    return checks
