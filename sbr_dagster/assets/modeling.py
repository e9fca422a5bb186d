"""GRU4Rec training and evaluation assets, built by one factory for the main pipeline and the sweep.

No ``from __future__ import annotations`` here: Dagster reads the config class from the
annotation, and the class is made per factory call.
"""

import dataclasses
import json
import typing

import dagster as dg
import polars as pl
import pydantic

from sbr_dagster.assets import MODELING_TAGS
from sbr_dagster.assets.metadata import flatten, table_md
from sbr_dagster.assets.source import MOVIES_KEY
from sbr_dagster.core import bundle, plots, recommend, study
from sbr_dagster.core import lake as lake_io
from sbr_dagster.core.evaluation import comparison_markdown
from sbr_dagster.core.model import GRU4RecConfig
from sbr_dagster.resources import DataLake

MODEL_ASSET = "gru4rec"
METRICS_ASSET = "metrics"


class SamplesConfig(dg.Config):
    n_sessions: int = 6
    history_length: int = 3
    seed: int = 0


class EvaluationConfig(dg.Config):
    n_bootstrap: int = 1000
    seed: int = 0


def training_config_class(defaults: GRU4RecConfig, name: str) -> type[dg.Config]:
    """A Dagster ``Config`` mirroring ``GRU4RecConfig``, ``defaults`` as its defaults (shown in the UI)."""
    hints = typing.get_type_hints(GRU4RecConfig)
    fields = {}
    for field in dataclasses.fields(GRU4RecConfig):
        hint = hints[field.name]
        default = getattr(defaults, field.name)
        if typing.get_origin(hint) is tuple:
            hint, default = list[int], list(default)
        elif typing.get_origin(hint) is typing.Literal:
            hint = str
        fields[field.name] = (hint, default)
    return pydantic.create_model(name, __base__=dg.Config, **fields)


def model_dir(lake: DataLake, prefix: list[str]):
    return lake.path(*prefix, MODEL_ASSET)


def ranks_path(lake: DataLake, prefix: list[str]):
    """Every prediction's rank per model and split, beside the metrics: paired comparisons need them."""
    return lake.path(*prefix, "ranks.parquet")


def modeling_assets(
    definition: str,
    *,
    prefix: list[str] | None = None,
    defaults: GRU4RecConfig | None = None,
    group: str | None = None,
    baseline_names: tuple[str, ...] = ("pop", "markov", "sr", "item_knn"),
    description: str = "",
    with_samples: bool = True,
) -> list[dg.AssetsDefinition]:
    """``<prefix>/gru4rec`` (the trained bundle) and ``<prefix>/metrics`` (valid and test metrics)."""
    prefix = prefix or [definition]
    group = group or definition
    model_key = dg.AssetKey([*prefix, MODEL_ASSET])
    split = {part: dg.AssetIn([definition, part]) for part in ("train", "valid", "test", "item_index")}
    TrainingConfig = training_config_class(defaults or GRU4RecConfig(), f"TrainingConfig_{'_'.join(prefix)}")

    @dg.asset(
        key=model_key,
        ins={part: split[part] for part in ("train", "valid", "item_index")},
        group_name=group,
        kinds={"tensorflow", "keras"},
        tags=MODELING_TAGS,
        description=description or f"GRU4Rec trained on `{definition}` (best validation epoch kept).",
    )
    def model_asset(
        context: dg.AssetExecutionContext,
        config: TrainingConfig,
        lake: DataLake,
        train: pl.DataFrame,
        valid: pl.DataFrame,
        item_index: pl.DataFrame,
    ) -> dg.MaterializeResult:
        core_config = GRU4RecConfig.from_dict(config.model_dump())
        context.log.info(f"training {model_key.to_user_string()} with {core_config.to_dict()}")
        fit = study.train_gru4rec(train, valid, item_index, core_config, log=context.log.info)
        history = pl.DataFrame(fit.history)
        directory = bundle.save_bundle(
            model_dir(lake, prefix),
            fit.model,
            item_index,
            {"definition": definition, **core_config.to_dict()},
            history,
            summary={
                "best_epoch": fit.best_epoch,
                "epochs_run": history.height,
                "stopped_early": fit.stopped_early,
                "wall_s": fit.wall_s,
                "events_per_s": fit.events_per_s,
                "device": fit.device,
            },
        )
        curve = plots.curves_png(
            history["epoch"].to_list(),
            {"train loss": history["loss"].to_list()},
            {
                col: history[col].to_list()
                for col in ("valid_recall_20", "valid_mrr_20")
                if col in history.columns
            },
            f"{model_key.to_user_string()}: training curve",
        )
        best = history.filter(pl.col("epoch") == fit.best_epoch).row(0, named=True)
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(directory)),
                "config": dg.MetadataValue.json(core_config.to_dict()),
                "best_epoch": fit.best_epoch,
                "epochs_run": history.height,
                "stopped_early": fit.stopped_early,
                "best_valid_recall_20": float(best.get("valid_recall_20", float("nan"))),
                "best_valid_mrr_20": float(best.get("valid_mrr_20", float("nan"))),
                "wall_s": float(fit.wall_s),
                "train_events_per_s": float(fit.events_per_s),
                "device": fit.device,
                "curve": dg.MetadataValue.md(
                    table_md(history).value + "\n\n" + plots.markdown_image(curve, "training curve")
                ),
            }
        )

    @dg.asset(
        key=[*prefix, METRICS_ASSET],
        ins=split,
        deps=[model_key],
        group_name=group,
        kinds={"tensorflow", "parquet"},
        tags=MODELING_TAGS,
        description=f"Recall@k / MRR@k of GRU4Rec{' and baselines' if baseline_names else ''} "
        f"on `{definition}` valid and test, full ranking, 95% bootstrap CIs.",
    )
    def metrics_asset(
        context: dg.AssetExecutionContext,
        config: EvaluationConfig,
        lake: DataLake,
        train: pl.DataFrame,
        valid: pl.DataFrame,
        test: pl.DataFrame,
        item_index: pl.DataFrame,
    ) -> dg.Output[pl.DataFrame]:
        trained = bundle.load_bundle(model_dir(lake, prefix))
        result = study.evaluate(
            trained.model,
            trained.config.get("rating_dim", 0) > 0,
            trained.item_index,
            train,
            {"valid": valid, "test": test},
            definition=definition,
            baseline_names=baseline_names,
            n_boot=config.n_bootstrap,
            seed=config.seed,
            log=context.log.info,
        )
        metrics = result.metrics
        lake_io.write_parquet(result.ranks, ranks_path(lake, prefix))
        numbers = {
            f"{row['split']}/{row['model']}/{measure}@{row['k']}": row[measure]
            for row in metrics.iter_rows(named=True)
            for measure in ("recall", "mrr")
        }
        test_rows = metrics.filter(pl.col("split") == "test")
        return dg.Output(
            metrics,
            metadata={
                **flatten(numbers),
                "n_predictions/valid": int(metrics.filter(pl.col("split") == "valid")["n_predictions"][0]),
                "n_predictions/test": int(test_rows["n_predictions"][0]),
                **flatten({f"predictions_per_s/{k}": v for k, v in result.predictions_per_s.items()}),
                "comparison_test": dg.MetadataValue.md(comparison_markdown(test_rows)),
                "comparison_valid": dg.MetadataValue.md(
                    comparison_markdown(metrics.filter(pl.col("split") == "valid"))
                ),
                "model_config": dg.MetadataValue.json(json.loads(json.dumps(trained.config, default=str))),
            },
        )

    if not with_samples:
        return [model_asset, metrics_asset]

    @dg.asset(
        key=[*prefix, "sample_recommendations"],
        ins={"test": split["test"], "movies": dg.AssetIn(MOVIES_KEY)},
        deps=[model_key],
        group_name=group,
        kinds={"tensorflow"},
        tags=MODELING_TAGS,
        description="Top-10 lists for real test sessions beside the movie watched next, to judge by eye.",
    )
    def sample_recommendations_asset(
        config: SamplesConfig, lake: DataLake, test: pl.DataFrame, movies: pl.DataFrame
    ) -> dg.MaterializeResult:
        recommender = recommend.Recommender.from_bundle(bundle.load_bundle(model_dir(lake, prefix)), movies)
        text = recommend.sample_recommendations_markdown(
            recommender,
            test,
            n_sessions=config.n_sessions,
            prefix_len=config.history_length,
            k=10,
            seed=config.seed,
        )
        return dg.MaterializeResult(metadata={"samples": dg.MetadataValue.md(text)})

    return [model_asset, metrics_asset, sample_recommendations_asset]
