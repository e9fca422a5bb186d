"""The sweep: every experiment of ``experiments.yaml`` through the same modeling assets, and a leaderboard
(with a row for each tuned trained model the tune job has tested on a definition the sweep uses)."""

import dagster as dg
import polars as pl

from sbr_dagster.defs.assets import MODELING_TAGS
from sbr_dagster.defs.assets.modeling import modeling_assets
from sbr_dagster.defs.metadata import table_md
from sbr_dagster.defs.resources import DataLake
from sbr_dagster.experiments import leaderboard, tuning
from sbr_dagster.experiments.declarations import Experiment
from sbr_dagster.experiments.leaderboard import K
from sbr_dagster.lake import files, layout
from sbr_dagster.models import registry
from sbr_dagster.reports import plots
from sbr_dagster.serving import bundle

GROUP = layout.EXPERIMENTS
LEADERBOARD_KEY = dg.AssetKey(list(layout.LEADERBOARD))
SHOWN = [
    "experiment",
    "definition",
    "model",
    "change",
    "protocol",
    f"test_recall_{K}",
    f"test_recall_ci_low_{K}",
    f"test_recall_ci_high_{K}",
    f"test_mrr_{K}",
    f"test_unseen_recall_{K}",
    f"test_liked_recall_{K}",
    f"valid_recall_{K}",
    "best_epoch",
    "train_s",
    "train_events_per_s",
]


def prefix_of(experiment: Experiment) -> layout.Key:
    return layout.experiment_prefix(experiment.name)


def tuned_entries(
    lake: DataLake, experiments: list[Experiment]
) -> list[tuple[Experiment, pl.DataFrame, dict, pl.DataFrame]]:
    """Each tuned trained model in the lake (``<definition>/tuned/<model>``) of a definition the sweep
    uses, as a leaderboard entry: its experiment, metrics, training summary and test ranks, with the
    tables' model named as the experiment's."""
    entries = []
    for definition in dict.fromkeys(e.definition for e in experiments):
        prefix = layout.tuned_prefix(definition)
        for model in registry.TRAINED:
            directory = lake.model_dir(prefix, model)
            paths = lake.table_path((*prefix, model)), lake.table_path((*prefix, f"{model}_{layout.RANKS}"))
            if not ((directory / bundle.CONFIG_FILE).exists() and all(p.exists() for p in paths)):
                continue
            settings = bundle.read_config(directory)["settings"]
            experiment = leaderboard.tuned_experiment(
                definition, model, registry.make_config(model, settings), experiments
            )
            named = pl.col("model").replace(tuning.tuned_name(model), model)
            table, ranks = (files.read_parquet(path).with_columns(named) for path in paths)
            entries.append((experiment, table, bundle.read_summary(directory), ranks))
    return entries


def experiment_assets(experiments: list[Experiment]) -> list[dg.AssetsDefinition]:
    assets = []
    for experiment in experiments:
        assets += modeling_assets(
            experiment.definition,
            prefix=prefix_of(experiment),
            trained={experiment.model: experiment.config},
            group=GROUP,
            baseline_names=(),
            with_samples=False,
            description=f"Experiment `{experiment.name}` on `{experiment.definition}`: {experiment.change}.",
        )
    metric_keys = {e.name: dg.AssetKey([*prefix_of(e), layout.METRICS]) for e in experiments}

    @dg.asset(
        key=LEADERBOARD_KEY,
        deps=list(metric_keys.values()),
        group_name=GROUP,
        kinds={"polars", "parquet"},
        tags=MODELING_TAGS,
        description="One row per experiment (valid/test metrics with CIs, cost) and what each change did; "
        "a row per tuned trained model too, where the tune job has tested one on the sweep's definitions.",
    )
    def leaderboard_asset(lake: DataLake) -> dg.Output[pl.DataFrame]:
        tables = {name: files.read_parquet(lake.table_path(key)) for name, key in metric_keys.items()}
        summaries = {e.name: bundle.read_summary(lake.model_dir(prefix_of(e), e.model)) for e in experiments}
        ranks = {
            e.name: files.read_parquet(lake.table_path((*prefix_of(e), layout.RANKS))) for e in experiments
        }
        entries = list(experiments)
        for experiment, table, summary, tuned_ranks in tuned_entries(lake, experiments):
            entries.append(experiment)
            tables[experiment.name], summaries[experiment.name] = table, summary
            ranks[experiment.name] = tuned_ranks
        board = leaderboard.leaderboard_frame(entries, tables, summaries)
        test_ranks = {
            e.name: ranks[e.name].filter((pl.col("split") == "test") & (pl.col("model") == e.model))
            for e in entries
        }
        found = leaderboard.findings(entries, board, test_ranks)
        chart = plots.interval_png(
            board["experiment"].to_list(),
            {
                f"test {m}@{K}": (
                    board[f"test_{m}_{K}"],
                    board[f"test_{m}_ci_low_{K}"],
                    board[f"test_{m}_ci_high_{K}"],
                )
                for m in ("recall", "mrr")
            },
            f"Experiments: test Recall@{K} and MRR@{K} (95% CI)",
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
                f"best_test_recall_{K}": best[f"test_recall_{K}"],
                f"best_test_mrr_{K}": best[f"test_mrr_{K}"],
                "leaderboard": table_md(board.select([c for c in SHOWN if c in board.columns])),
                "findings": dg.MetadataValue.md(sentences),
                "chart": dg.MetadataValue.md(
                    plots.markdown_image(chart, f"Recall@{K} and MRR@{K} per experiment")
                ),
            },
        )

    return [*assets, leaderboard_asset]
