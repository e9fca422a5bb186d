"""The sweep: every experiment of ``experiments.yaml`` through the same modeling assets, and a leaderboard."""

import dagster as dg
import polars as pl

from sbr_dagster.assets import MODELING_TAGS
from sbr_dagster.assets.metadata import table_md
from sbr_dagster.assets.modeling import METRICS_ASSET, model_dir, modeling_assets, ranks_path
from sbr_dagster.core import bundle, leaderboard, plots
from sbr_dagster.core import lake as lake_io
from sbr_dagster.core.experiments import Experiment
from sbr_dagster.resources import DataLake

GROUP = "experiments"
LEADERBOARD_KEY = dg.AssetKey([GROUP, "leaderboard"])
SHOWN = [
    "experiment",
    "definition",
    "change",
    "test_recall_20",
    "test_recall_ci_low_20",
    "test_recall_ci_high_20",
    "test_mrr_20",
    "valid_recall_20",
    "best_epoch",
    "train_s",
    "train_events_per_s",
]


def prefix_of(experiment: Experiment) -> list[str]:
    return [GROUP, experiment.name]


def experiment_assets(experiments: list[Experiment]) -> list[dg.AssetsDefinition]:
    assets = []
    for experiment in experiments:
        assets += modeling_assets(
            experiment.definition,
            prefix=prefix_of(experiment),
            defaults=experiment.config,
            group=GROUP,
            baseline_names=(),
            with_samples=False,
            description=f"Experiment `{experiment.name}` on `{experiment.definition}`: {experiment.change}.",
        )
    metric_keys = {e.name: dg.AssetKey([*prefix_of(e), METRICS_ASSET]) for e in experiments}

    @dg.asset(
        key=LEADERBOARD_KEY,
        deps=list(metric_keys.values()),
        group_name=GROUP,
        kinds={"polars", "parquet"},
        tags=MODELING_TAGS,
        description="One row per experiment (valid/test metrics with CIs, cost) and what each change did.",
    )
    def leaderboard_asset(lake: DataLake) -> dg.Output[pl.DataFrame]:
        tables = {name: lake_io.read_parquet(lake.table_path(key)) for name, key in metric_keys.items()}
        summaries = {e.name: bundle.read_summary(model_dir(lake, prefix_of(e))) for e in experiments}
        board = leaderboard.leaderboard_frame(experiments, tables, summaries)
        test_ranks = {}
        for experiment in experiments:
            ranks = lake_io.read_parquet(ranks_path(lake, prefix_of(experiment))).filter(
                (pl.col("split") == "test") & (pl.col("model") == "gru4rec")
            )
            test_ranks[experiment.name] = (ranks["rank"].to_numpy(), ranks["session"].to_numpy())
        found = leaderboard.findings(experiments, board, test_ranks)
        chart = plots.interval_png(
            board["experiment"].to_list(),
            {
                f"test {m}@20": (
                    board[f"test_{m}_20"],
                    board[f"test_{m}_ci_low_20"],
                    board[f"test_{m}_ci_high_20"],
                )
                for m in ("recall", "mrr")
            },
            "GRU4Rec experiments: test Recall@20 and MRR@20 (95% CI)",
        )
        sentences = (
            "\n".join(f"- {s}" for s in found["sentence"]) if found.height else "- no comparisons declared"
        )
        best = board.row(0, named=True)
        return dg.Output(
            board,
            metadata={
                "experiments": board.height,
                "best_experiment": best["experiment"],
                "best_test_recall_20": best["test_recall_20"],
                "best_test_mrr_20": best["test_mrr_20"],
                "leaderboard": table_md(board.select([c for c in SHOWN if c in board.columns])),
                "findings": dg.MetadataValue.md(sentences),
                "chart": dg.MetadataValue.md(
                    plots.markdown_image(chart, "Recall@20 and MRR@20 per experiment")
                ),
            },
        )

    return [*assets, leaderboard_asset]
