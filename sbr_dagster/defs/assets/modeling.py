"""Training, evaluation and sample-recommendation assets, built by one factory for the main job and the sweep.

Every model goes through the same interface (``models.base.SessionModel``): the training asset of a
model with weights fits it (``training.trainer``) and writes its bundle; the metrics asset loads
those bundles, fits the baselines and ranks every validation and test event with all of them.

No ``from __future__ import annotations`` here: Dagster reads the config class from the
annotation, and the class is made per factory call.
"""

import json
import typing

import dagster as dg
import polars as pl
import pydantic

from sbr_dagster.data.arrays import Sessions
from sbr_dagster.data.timeline import Replay
from sbr_dagster.defs.assets import CODE_VERSION, MODELING_TAGS, training_op_tags
from sbr_dagster.defs.assets.source import MOVIES_KEY, RATINGS_KEY
from sbr_dagster.defs.assets.timeline import REPLAY_INS
from sbr_dagster.defs.metadata import flatten, table_md, table_output
from sbr_dagster.defs.resources import DataLake, PreprocessingSettings, RunSettings
from sbr_dagster.errors import InputDataError
from sbr_dagster.evaluation import streams
from sbr_dagster.evaluation.evaluate import evaluate
from sbr_dagster.evaluation.metrics import SELECTION_K
from sbr_dagster.evaluation.metrics_table import RANKINGS
from sbr_dagster.lake import files, layout
from sbr_dagster.models import registry
from sbr_dagster.models.base import ModelConfig
from sbr_dagster.reports import markdown, plots
from sbr_dagster.serving import bundle
from sbr_dagster.serving.recommender import Recommender
from sbr_dagster.serving.samples import sample_sessions
from sbr_dagster.settings import launch_hint
from sbr_dagster.training import trainer


class SamplesConfig(dg.Config):
    n_sessions: int = 6
    history_length: int = 3
    seed: int = 0


class EvaluationConfig(dg.Config):
    n_bootstrap: int = 1000
    seed: int = 0
    # The baselines' settings are fixed here, so their validation ranks would choose nothing (the
    # tuning job scores them on validation); true ranks them on validation too.
    baselines_on_valid: bool = False


SAMPLE_K = 10  # movies listed per sample session


def training_config_class(defaults: ModelConfig, name: str) -> type[dg.Config]:
    """A Dagster ``Config`` mirroring a model's settings, ``defaults`` as its defaults (shown in the UI)."""
    fields = {}
    for field, (declared, _) in defaults.field_types().items():
        hint, default = declared, getattr(defaults, field)
        if typing.get_origin(declared) is tuple:
            hint, default = list[int], list(default)
        elif typing.get_origin(declared) is typing.Literal:
            hint = str
        fields[field] = (hint, default)
    return pydantic.create_model(name, __base__=dg.Config, **fields)


def split_ins(definition: str, parts: tuple[str, ...]) -> dict[str, dg.AssetIn]:
    return {part: dg.AssetIn(list(layout.definition_key(definition, part))) for part in parts}


def scoring_ins(definition: str, parts: tuple[str, ...]) -> dict[str, dg.AssetIn]:
    """The split tables plus what the timeline protocol replays (the raw ratings and the protocol)."""
    return {**split_ins(definition, parts), "ratings": dg.AssetIn(RATINGS_KEY), **REPLAY_INS}


def variant_streams(
    preprocessing: PreprocessingSettings, definition: str, tables: dict[str, pl.DataFrame], **protocol
) -> dict[str, Replay]:
    """The streams of the splits in ``tables`` (valid and/or test) for ``definition`` under the run's
    split method and rating floor; ``protocol``: ``item_index``, ``ratings``, ``cuts``, ``targets``."""
    return streams.split_streams(
        preprocessing.split_method, definition, tables=tables, min_rating=preprocessing.min_rating,
        parts=tuple(tables), **protocol,
    )  # fmt: skip


def trained_bundles(
    lake: DataLake, prefix: layout.Key, names: tuple[str, ...], definition: str, item_index: pl.DataFrame
) -> dict[str, bundle.ModelBundle]:
    """The saved bundles of ``names`` under ``prefix``; one trained on another split of the definition
    is an error that says what to re-train (its scores would index other movies)."""
    bundles = {name: bundle.load_bundle(lake.model_dir(prefix, name)) for name in names}
    for name, loaded in bundles.items():
        if not bundle.same_items(loaded, item_index):
            raise InputDataError(
                f"{'/'.join([*prefix, name])} was trained on another split of {definition} (its item "
                f"index differs); re-train it: {launch_hint('/'.join([*prefix, name]))}"
            )
    return bundles


def training_asset(
    definition: str, model: str, defaults: ModelConfig, *, prefix: layout.Key, group: str, description: str
) -> dg.AssetsDefinition:
    """``<prefix>/<model>``: the model fitted on train, its best validation epoch kept, as a bundle."""
    key = dg.AssetKey([*prefix, model])
    TrainingConfig = training_config_class(defaults, f"TrainingConfig_{'_'.join(prefix)}_{model}")

    @dg.asset(
        key=key,
        ins=scoring_ins(definition, ("train", "valid", layout.ITEM_INDEX)),
        group_name=group,
        kinds={"tensorflow", "keras"},
        tags=MODELING_TAGS,
        op_tags=training_op_tags(model),
        code_version=CODE_VERSION,
        description=description or f"{model} trained on `{definition}` (best validation epoch kept).",
    )
    def train_asset(
        context: dg.AssetExecutionContext,
        config: TrainingConfig,
        lake: DataLake,
        run_settings: RunSettings,  # checks every op setting of the run when it starts
        preprocessing: PreprocessingSettings,
        train: pl.DataFrame,
        valid: pl.DataFrame,
        item_index: pl.DataFrame,
        ratings: pl.DataFrame,
        cuts: pl.DataFrame,
        targets: pl.DataFrame,
    ) -> dg.MaterializeResult:
        fitted = registry.build(model, config.model_dump())
        context.log.info(f"training {key.to_user_string()} with {fitted.config.to_dict()}")
        validation = variant_streams(
            preprocessing, definition, {"valid": valid}, item_index=item_index, ratings=ratings,
            cuts=cuts, targets=targets,
        )  # fmt: skip
        result = trainer.fit(
            fitted, Sessions.of(train, item_index), item_index.height, validation["valid"],
            log=context.log.info,
        )  # fmt: skip
        history = pl.DataFrame(result.history)
        directory = bundle.save_bundle(
            lake.model_dir(prefix, model), fitted, item_index, definition, history, result.summary()
        )
        selection = (trainer.VALID_RECALL, trainer.VALID_MRR)
        curve = plots.curves_png(
            history["epoch"].to_list(),
            {"train loss": history["loss"].to_list()},
            {col: history[col].to_list() for col in selection if col in history.columns},
            f"{key.to_user_string()}: training curve",
        )
        best = history.filter(pl.col("epoch") == result.best_epoch).row(0, named=True)
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(directory)),
                "config": dg.MetadataValue.json(fitted.config.to_dict()),
                **flatten(result.summary()),
                **{f"best_{col}": float(best.get(col, float("nan"))) for col in selection},
                "curve": dg.MetadataValue.md(
                    table_md(history).value + "\n\n" + plots.markdown_image(curve, "training curve")
                ),
            }
        )

    return train_asset


def modeling_assets(
    definition: str,
    *,
    prefix: layout.Key | None = None,
    trained: dict[str, ModelConfig] | None = None,
    group: str | None = None,
    baseline_names: tuple[str, ...] = registry.BASELINES,
    description: str = "",
    with_samples: bool = True,
) -> list[dg.AssetsDefinition]:
    """Per trained model ``<prefix>/<model>``, then ``<prefix>/metrics`` for them and the baselines.

    ``trained`` maps each model with weights to its default settings (default: the primary model).
    """
    prefix = prefix or (definition,)
    group = group or definition
    trained = trained or {registry.PRIMARY: registry.make_config(registry.PRIMARY)}
    model_keys = [dg.AssetKey([*prefix, name]) for name in trained]
    assets = [
        training_asset(definition, name, defaults, prefix=prefix, group=group, description=description)
        for name, defaults in trained.items()
    ]
    evaluated = ", ".join([*trained, *baseline_names])

    @dg.asset(
        key=[*prefix, layout.METRICS],
        ins=scoring_ins(definition, ("train", "valid", "test", layout.ITEM_INDEX)),
        deps=model_keys,
        group_name=group,
        kinds={"tensorflow", "parquet"},
        tags=MODELING_TAGS,
        code_version=CODE_VERSION,
        description=f"Recall@k / MRR@k of {evaluated} on `{definition}` test (and of the trained models on "
        "valid), ranked among all candidates and among the unseen ones, on all and on liked targets, "
        "95% bootstrap CIs.",
    )
    def metrics_asset(
        context: dg.AssetExecutionContext,
        config: EvaluationConfig,
        lake: DataLake,
        run_settings: RunSettings,
        preprocessing: PreprocessingSettings,
        train: pl.DataFrame,
        valid: pl.DataFrame,
        test: pl.DataFrame,
        item_index: pl.DataFrame,
        ratings: pl.DataFrame,
        cuts: pl.DataFrame,
        targets: pl.DataFrame,
    ) -> dg.Output[pl.DataFrame]:
        bundles = trained_bundles(lake, prefix, tuple(trained), definition, item_index)
        models = {name: loaded.model for name, loaded in bundles.items()}
        train_sessions = Sessions.of(train, item_index)
        for name in baseline_names:
            models[name] = registry.build(name)
            models[name].fit(train_sessions, item_index.height)
        method = preprocessing.split_method
        splits = variant_streams(
            preprocessing, definition, {"valid": valid, "test": test}, item_index=item_index,
            ratings=ratings, cuts=cuts, targets=targets,
        )  # fmt: skip
        skip = () if config.baselines_on_valid else [("valid", name) for name in baseline_names]
        result = evaluate(
            models, splits, definition=definition, protocol=method, n_boot=config.n_bootstrap,
            seed=config.seed, log=context.log.info, skip=skip,
        )  # fmt: skip
        metrics = result.metrics
        files.write_parquet(result.ranks, lake.table_path((*prefix, layout.RANKS)))
        # The headline cut-off only, test first: the full table is the asset's value.
        numbers = {
            "/".join(
                [row[c] for c in ("split", "model", "ranking", "slice")] + [f"{measure}@{row['k']}"]
            ): row[measure]
            for row in metrics.filter(pl.col("k") == SELECTION_K)
            .sort(pl.col("split") != "test", maintain_order=True)
            .iter_rows(named=True)
            for measure in ("recall", "mrr")
        }
        by_split = {
            f"{name}_{ranking}": metrics.filter(
                (pl.col("split") == name) & (pl.col("ranking") == ranking) & (pl.col("slice") == "all")
            )
            for name in splits
            for ranking in RANKINGS
        }
        return table_output(
            metrics,
            {
                "protocol": method,
                **{
                    f"comparison_{name}": dg.MetadataValue.md(markdown.comparison_markdown(frame))
                    for name, frame in sorted(
                        by_split.items(), key=lambda item: not item[0].startswith("test")
                    )
                },
                **flatten(numbers),
                **{f"n_predictions/{name}": stream.target_events.size for name, stream in splits.items()},
                **flatten(result.predictions_per_s, "predictions_per_s/"),
                "model_config": dg.MetadataValue.json(
                    json.loads(json.dumps({name: b.config for name, b in bundles.items()}, default=str))
                ),
            },
        )

    assets.append(metrics_asset)
    if not with_samples:
        return assets

    @dg.asset(
        key=[*prefix, layout.SAMPLES],
        ins={"test": split_ins(definition, ("test",))["test"], "movies": dg.AssetIn(MOVIES_KEY)},
        deps=model_keys,
        group_name=group,
        kinds={"tensorflow"},
        tags=MODELING_TAGS,
        code_version=CODE_VERSION,
        description=f"Top-{SAMPLE_K} lists for real test sessions beside the movie watched next, "
        "to judge by eye.",
    )
    def sample_recommendations_asset(
        config: SamplesConfig,
        lake: DataLake,
        run_settings: RunSettings,
        test: pl.DataFrame,
        movies: pl.DataFrame,
    ) -> dg.MaterializeResult:
        sections = []
        for name in trained:
            recommender = Recommender.from_bundle(bundle.load_bundle(lake.model_dir(prefix, name)), movies)
            samples = sample_sessions(
                recommender, test, n_sessions=config.n_sessions, prefix_len=config.history_length,
                k=SAMPLE_K, seed=config.seed,
            )  # fmt: skip
            text = markdown.samples_markdown(
                samples, k=SAMPLE_K, prefix_len=config.history_length, seed=config.seed
            )
            sections.append(text if len(trained) == 1 else f"### {name}\n\n{text}")
        return dg.MaterializeResult(metadata={"samples": dg.MetadataValue.md("\n".join(sections))})

    assets.append(sample_recommendations_asset)
    return assets
