"""The whole pipeline: raw tables, one asset group per session definition, the sweep, and the jobs.

One group of assets per session definition (``SBR_SESSION_DEFINITIONS``), sharing the raw tables,
plus the ``experiments`` group: the sweep of ``experiments.yaml`` and its leaderboard.
"""

import sys

import dagster as dg

from sbr_dagster import settings
from sbr_dagster.data import sessions
from sbr_dagster.defs.assets import PREPROCESSING_TAGS, source
from sbr_dagster.defs.assets.blend import blend_asset
from sbr_dagster.defs.assets.experiments import GROUP as EXPERIMENTS_GROUP
from sbr_dagster.defs.assets.experiments import experiment_assets, prefix_of
from sbr_dagster.defs.assets.modeling import modeling_assets
from sbr_dagster.defs.assets.preprocessing import preprocessing_assets
from sbr_dagster.defs.assets.timeline import timeline_assets
from sbr_dagster.defs.assets.tuning import tuned_findings_asset, tuning_assets
from sbr_dagster.defs.checks import evaluation as evaluation_checks
from sbr_dagster.defs.checks import preprocessing as preprocessing_checks
from sbr_dagster.defs.resources import RunSettings, default_resources
from sbr_dagster.errors import InputDataError
from sbr_dagster.experiments.declarations import Experiment, load_experiments
from sbr_dagster.experiments.search_space import SearchSpace, load_search_space
from sbr_dagster.lake import layout
from sbr_dagster.models import registry

# The main job trains GRU4Rec on every definition, and SASRec too on a viewer's whole history (its
# attention reads up to 200 earlier ratings; the time-gap definitions cut that to a sitting).
MAIN_MODELS = {"user": (registry.PRIMARY, "sasrec")}


def main_models(definition: str) -> tuple[str, ...]:
    """The trained models the main job fits on ``definition`` (their defaults)."""
    return MAIN_MODELS.get(definition, (registry.PRIMARY,))


def executor() -> dg.ExecutorDefinition:
    """``SBR_PARALLEL_STEPS`` steps at once, each in a process forked from one that has the code
    loaded (``sbr_dagster.step_process``); 1 runs them one by one in the run's own process."""
    steps = settings.parallel_steps()
    if steps == 1:
        return dg.in_process_executor
    fixed = {
        "max_concurrent": steps,
        "start_method": {"forkserver": {"preload_modules": ["sbr_dagster.step_process"]}},
    }
    # An empty schema: a run config's ``execution`` block is refused, not silently dropped.
    return dg.multiprocess_executor.configured(lambda _: fixed, name="parallel_steps", config_schema={})


def build_definitions(
    definition_names: tuple[str, ...] | None = None,
    resources: dict[str, object] | None = None,
    experiments: list[Experiment] | None = None,
    space: SearchSpace | None = None,
    tune_models: tuple[str, ...] | None = None,
) -> dg.Definitions:
    """The whole pipeline; arguments override the environment (definitions, resources, experiments,
    the tuning job's search space and models)."""
    names = definition_names or settings.definition_names()
    if definition_names is None:  # from the environment: a wrong name is the variable's fault
        for name in names:
            try:
                sessions.parse_definition(name)
            except InputDataError as error:
                raise InputDataError(f"{settings.ENV_DEFINITIONS}: {error}") from None
    experiments = load_experiments() if experiments is None else experiments
    # Definitions only experiments use (e.g. a rating policy) get their tables, not a model of their own.
    extra = tuple(dict.fromkeys(e.definition for e in experiments if e.definition not in names))

    assets: list = source.raw_assets() + timeline_assets(names)
    checks: list = preprocessing_checks.raw_checks()
    for name in (*names, *extra):
        assets += preprocessing_assets(name)
        checks += preprocessing_checks.preprocessing_checks(name)
    for name in names:
        models = main_models(name)
        assets += modeling_assets(name, trained={m: registry.make_config(m) for m in models})
        checks += evaluation_checks.evaluation_checks(name, beat_reference=models)
        assets.append(blend_asset(name, models))
    checks.append(evaluation_checks.trained_beats_baselines())
    if experiments:
        assets += experiment_assets(experiments)
        for experiment in experiments:
            checks += evaluation_checks.evaluation_checks(
                experiment.definition, prefix=prefix_of(experiment), beat_reference=()
            )

    space = load_search_space() if space is None else space
    tuned = tune_models if tune_models is not None else settings.tune_models() or tuple(space.models)
    for model in tuned:
        if model not in space.models:
            raise InputDataError(
                f"{settings.ENV_TUNE_MODELS}: {model!r} has no search space; tune one of "
                f"{', '.join(space.models)}"
            )
    for name in names:
        for model in tuned:
            assets += tuning_assets(name, model, space)
    if tuned:
        assets.append(tuned_findings_asset(names, tuned))

    trained = [(name, model) for name in names for model in main_models(name)]
    trained += [("__".join(prefix_of(e)), e.model) for e in experiments]
    run_settings = RunSettings(models={f"{prefix}__{model}": model for prefix, model in trained})
    experiments_group = dg.AssetSelection.groups(EXPERIMENTS_GROUP)
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        resources={**default_resources(run_settings), **(resources or {})},
        jobs=[
            dg.define_asset_job(
                "preprocess",
                # Only the definitions asked for: those only experiments use are built by the sweep.
                selection=dg.AssetSelection.tag(*next(iter(PREPROCESSING_TAGS.items())))
                & dg.AssetSelection.groups(layout.RAW, layout.TIMELINE, *names),
                description="Raw tables, the shared timeline, sessions, cleansing and splits for every "
                "definition.",
            ),
            dg.define_asset_job(
                "everything",
                selection=dg.AssetSelection.groups(layout.RAW, layout.TIMELINE, *names),
                description="Preprocess, train and evaluate every session definition, and compare them on "
                "the shared timeline (not the sweep).",
            ),
            dg.define_asset_job(
                "tune",
                selection=dg.AssetSelection.groups(layout.TUNING),
                description="Search each model's settings on validation (search_space.yaml), then fit "
                "the tuned model and test it once; the splits must exist (the preprocess job).",
            ),
            dg.define_asset_job(
                "blend",
                selection=dg.AssetSelection.groups(layout.BLEND),
                description="Blend each definition's trained models with its best neighbour method, "
                "weights chosen on validation, tested once; the main job's models and ranks must exist.",
            ),
            dg.define_asset_job(
                "sweep",
                selection=experiments_group.upstream(),
                description="Every experiment of experiments.yaml and the leaderboard.",
            ),
        ],
        executor=executor(),
    )


@dg.definitions
def pipeline() -> dg.Definitions:
    """What ``dg`` and ``dagster`` load: the pipeline for the environment's settings.

    A wrong setting (``SBR_SESSION_DEFINITIONS``, the experiments file) ends the command with one
    ``error:`` line instead of the loader's traceback around it.
    """
    try:
        return build_definitions()
    except InputDataError as error:
        sys.stderr.write(f"error: {error}\n")
        raise SystemExit(2) from None
