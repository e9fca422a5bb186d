"""The tuning job: per (definition, model) a search on validation, then the tuned model tested once.

``<definition>/tuning/<model>`` runs ``experiments.tuning.tune`` on the definition's train split and
validation stream (the trials table is its value; the best settings, the trials and a plot of the
search are its metadata) and keeps the best trial's fitted model beside it (a model with weights).
``<definition>/tuned/<model>`` takes that model when it is the best trial's of the table it reads (or
fits the model with those settings, best validation epoch kept), saves its bundle when it has weights,
and ranks the test targets once.
The main job never runs these: its models keep their fixed defaults, so its time stays bounded.

No ``from __future__ import annotations`` here: Dagster reads the config class from the annotation.
"""

import json

import dagster as dg
import polars as pl

from sbr_dagster.data.arrays import Sessions
from sbr_dagster.defs.assets import CODE_VERSION, MODELING_TAGS
from sbr_dagster.defs.assets.modeling import scoring_ins, variant_streams
from sbr_dagster.defs.assets.timeline import TARGETS_KEY, protocol_markdown
from sbr_dagster.defs.metadata import flatten, table_md, table_output
from sbr_dagster.defs.resources import DataLake, PreprocessingSettings
from sbr_dagster.evaluation import comparison, streams
from sbr_dagster.evaluation.evaluate import evaluate
from sbr_dagster.evaluation.metrics import SELECTION_K
from sbr_dagster.experiments import tuning
from sbr_dagster.experiments.search_space import SearchSpace
from sbr_dagster.lake import files, layout
from sbr_dagster.models import registry
from sbr_dagster.reports import plots
from sbr_dagster.serving import bundle
from sbr_dagster.training import trainer

GROUP = layout.TUNING
FINDINGS: layout.Key = (layout.TUNING, "findings")  # the tuned models' paired verdicts
NO_FINDINGS = pl.DataFrame(schema={"topic": pl.String, "a": pl.String, "b": pl.String, "sentence": pl.String})


BEST_TRIAL = "trial"  # in the kept model's summary: which trial it is


def best_trial_bundle(
    directory, trials: pl.DataFrame, settings: dict, item_index: pl.DataFrame
) -> bundle.ModelBundle | None:
    """The search's kept model when it is the best trial of ``trials`` (its number, validation scores
    and settings) on this item index; None when there is none or it is another search's."""
    if not (directory / bundle.CONFIG_FILE).exists():
        return None
    best = tuning.best_trial(trials)
    summary = bundle.read_summary(directory)
    scores = [best["valid_recall_20"], best["valid_mrr_20"]]
    if summary.get(BEST_TRIAL) != best["trial"] or summary.get("valid_scores") != scores:
        return None
    kept = bundle.load_bundle(directory)
    same = tuning.same_settings(kept.model, registry.build(kept.config["model"], settings))
    return kept if same and bundle.same_items(kept, item_index) else None


def main_job_model(
    lake: DataLake, definition: str, model: str, item_index: pl.DataFrame, log
) -> tuning.Fitted | None:
    """The main job's trained ``model`` of ``definition`` when the lake has it on this item index: the
    search scores it for a trial with its settings (the defaults) instead of training it again."""
    directory = lake.model_dir((definition,), model)
    if model not in registry.TRAINED or not (directory / bundle.CONFIG_FILE).exists():
        return None
    loaded = bundle.load_bundle(directory)
    source = "/".join((definition, model))
    if not bundle.same_items(loaded, item_index):
        log(f"{source} was trained on another split of {definition}: every trial trains its own model")
        return None
    fit = trainer.Training.of_summary(loaded.history.to_dicts(), loaded.summary)
    return tuning.Fitted(loaded.model, fit, source)


class TuningConfig(dg.Config):
    trials: int = 0  # 0: the search space file's budget
    wall_s: float = 0.0  # 0: the file's budget
    seed: int = 0
    # The main job's trained model of the definition (its defaults) stands in for the trial with its settings.
    reuse_main_job: bool = True


def tuning_assets(definition: str, model: str, space: SearchSpace) -> list[dg.AssetsDefinition]:
    tuning_key = dg.AssetKey(list(layout.tuning_key(definition, model)))
    tuned_prefix = layout.tuned_prefix(definition)
    search_prefix, best_name = layout.tuning_key(definition, model)[:-1], layout.best_trial_model(model)
    parts = ("train", "valid", layout.ITEM_INDEX)

    @dg.asset(
        key=tuning_key,
        ins=scoring_ins(definition, parts),
        group_name=GROUP,
        kinds={"optuna", "parquet"},
        tags=MODELING_TAGS,
        code_version=CODE_VERSION,
        description=f"Optuna search of {model}'s settings on `{definition}` validation (the search space "
        "file's ranges and budget); one row per trial.",
    )
    def tuning_asset(
        context: dg.AssetExecutionContext,
        config: TuningConfig,
        lake: DataLake,
        preprocessing: PreprocessingSettings,
        train: pl.DataFrame,
        valid: pl.DataFrame,
        item_index: pl.DataFrame,
        ratings: pl.DataFrame,
        cuts: pl.DataFrame,
        targets: pl.DataFrame,
    ) -> dg.Output[pl.DataFrame]:
        validation = variant_streams(
            preprocessing, definition, {"valid": valid}, item_index=item_index, ratings=ratings,
            cuts=cuts, targets=targets,
        )["valid"]  # fmt: skip

        def keep(trial: int, fitted, fit: trainer.Training, scores: tuple[float, float]) -> None:
            if fitted.has_weights:
                summary = {**fit.summary(), BEST_TRIAL: trial, "valid_scores": list(scores)}
                bundle.save_bundle(
                    lake.model_dir(search_prefix, best_name), fitted, item_index, definition,
                    pl.DataFrame(fit.history), summary,
                )  # fmt: skip

        result = tuning.tune(
            model, space, Sessions.of(train, item_index), item_index.height, validation,
            trials=config.trials or None, wall_s=config.wall_s or None, seed=config.seed,
            log=context.log.info, keep=keep,
            fitted=main_job_model(lake, definition, model, item_index, context.log.info)
            if config.reuse_main_job else None,
        )  # fmt: skip
        trials = result.trials
        search = plots.search_png(
            trials["trial"].to_list(), trials["valid_recall_20"].to_list(), trials["state"].to_list(),
            f"{tuning_key.to_user_string()}: validation Recall@{SELECTION_K} per trial",
        )  # fmt: skip
        return table_output(
            trials,
            {
                "best_settings": dg.MetadataValue.json(result.best_settings),
                f"best_valid_recall_{SELECTION_K}": result.best_value,
                "trials": table_md(trials),
                "search": dg.MetadataValue.md(plots.markdown_image(search, "search")),
                "n_trials": trials.height,
                "n_complete": int((trials["state"] == "complete").sum()),
                "n_pruned": int((trials["state"] == "pruned").sum()),
                "n_reused": int((trials["fitted_by"] != tuning.TRIAL_FIT).sum()),
                "wall_s": result.wall_s,
            },
        )

    @dg.asset(
        key=[*tuned_prefix, model],
        ins={**scoring_ins(definition, (*parts, "test")), "trials": dg.AssetIn(tuning_key)},
        group_name=GROUP,
        kinds={"parquet"},
        tags=MODELING_TAGS,
        code_version=CODE_VERSION,
        description=f"{model} with its tuned settings, fitted on `{definition}` train (best validation "
        "epoch kept) and tested once; its metrics table.",
    )
    def tuned_asset(
        context: dg.AssetExecutionContext,
        lake: DataLake,
        preprocessing: PreprocessingSettings,
        train: pl.DataFrame,
        valid: pl.DataFrame,
        test: pl.DataFrame,
        item_index: pl.DataFrame,
        ratings: pl.DataFrame,
        cuts: pl.DataFrame,
        targets: pl.DataFrame,
        trials: pl.DataFrame,
    ) -> dg.Output[pl.DataFrame]:
        settings = tuning.best_settings(trials, space.of(model))
        split = variant_streams(
            preprocessing, definition, {"valid": valid, "test": test}, item_index=item_index,
            ratings=ratings, cuts=cuts, targets=targets,
        )  # fmt: skip
        kept = best_trial_bundle(lake.model_dir(search_prefix, best_name), trials, settings, item_index)
        if kept is not None:
            context.log.info(f"{model}: the best trial's fitted model, trial {kept.summary[BEST_TRIAL]}")
            fitted, history = kept.model, kept.history
            summary = {k: v for k, v in kept.summary.items() if k not in (BEST_TRIAL, "valid_scores")}
        else:
            fitted = registry.build(model, settings)
            fit = trainer.fit(
                fitted,
                Sessions.of(train, item_index),
                item_index.height,
                split["valid"],
                log=context.log.info,
            )
            history, summary = pl.DataFrame(fit.history), fit.summary()
        if fitted.has_weights:
            bundle.save_bundle(
                lake.model_dir(tuned_prefix, model), fitted, item_index, definition, history, summary
            )
        name = tuning.tuned_name(model)
        result = evaluate(
            {name: fitted}, {"test": split["test"]}, definition=definition,
            protocol=preprocessing.split_method, log=context.log.info,
        )  # fmt: skip
        files.write_parquet(result.ranks, lake.table_path((*tuned_prefix, f"{model}_{layout.RANKS}")))
        headline = result.metrics.filter((pl.col("k") == SELECTION_K) & (pl.col("slice") == "all"))
        return table_output(
            result.metrics,
            {
                "settings": dg.MetadataValue.json(json.loads(json.dumps(fitted.config.to_dict()))),
                **flatten(summary),
                "refitted": kept is None,
                **{
                    f"test/{row['ranking']}/recall@{SELECTION_K}": row["recall"]
                    for row in headline.iter_rows(named=True)
                },
                "n_predictions/test": split["test"].target_events.size,
            },
        )

    return [tuning_asset, tuned_asset]


def tuned_findings_asset(definitions: tuple[str, ...], models: tuple[str, ...]) -> dg.AssetsDefinition:
    """``tuning/findings``: every tuned model of every definition on the shared test targets, paired.

    Where the main job's ranks of a definition are in the lake, each tuned model is also paired with its
    default self (did tuning help?); either way, each tuned trained model meets every other tuned model.
    """
    tuned_keys = [dg.AssetKey([*layout.tuned_prefix(d), m]) for d in definitions for m in models]

    @dg.asset(
        key=list(FINDINGS),
        ins={"targets": dg.AssetIn(TARGETS_KEY)},
        deps=tuned_keys,
        group_name=GROUP,
        kinds={"polars", "parquet"},
        tags=MODELING_TAGS,
        code_version=CODE_VERSION,
        description="The tuned models on the same test targets: each against its default self (where the "
        "main job ran) and every tuned structure against every other tuned model, with paired 95% intervals.",
    )
    def tuned_findings(context: dg.AssetExecutionContext, lake: DataLake, targets: pl.DataFrame) -> dg.Output:
        metrics, ranks, defaults = {}, {}, {}
        for definition in definitions:
            prefix = layout.tuned_prefix(definition)
            metrics[definition] = pl.concat(
                [files.read_parquet(lake.table_path((*prefix, m))) for m in models]
            )
            frames = [files.read_parquet(lake.table_path((*prefix, f"{m}_{layout.RANKS}"))) for m in models]
            main = lake.table_path((definition, layout.RANKS))
            if main.exists():
                frames.append(files.read_parquet(main))
                defaults[definition] = tuple(frames[-1]["model"].unique().to_list())
            ranks[definition] = pl.concat(frames, how="vertical_relaxed")
        table = comparison.comparison_frame(metrics)
        on_timeline = streams.all_on_timeline(metrics)
        asked = tuning.tuning_questions(list(definitions), models, defaults)
        found = comparison.protocol_findings(ranks, targets, asked, on_timeline)
        found = NO_FINDINGS if found is None else found
        context.log.info(
            f"tuning findings: {found.height} paired findings over {len(definitions)} definitions"
        )
        return table_output(
            found,
            {
                "findings": dg.MetadataValue.md(protocol_markdown(found, on_timeline)),
                "paired_with_defaults": sorted(defaults),
                f"test_at_{SELECTION_K}": table_md(comparison.headline(table)),
            },
        )

    return tuned_findings
