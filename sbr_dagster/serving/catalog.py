"""What the lake holds for serving: the movies table and the trained models, found by ``layout``.

Every name that becomes part of a path is checked first: a definition must match the session
definition grammar and a model must be one with a trained bundle, and the bundle's resolved
location must lie inside the resolved lake root, so no name can reach a file outside the lake.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import polars as pl

from sbr_dagster import settings
from sbr_dagster.data import schema
from sbr_dagster.data.sessions import GRAMMAR, parse_definition
from sbr_dagster.errors import InputDataError
from sbr_dagster.lake import files, layout
from sbr_dagster.models import registry
from sbr_dagster.serving.bundle import CONFIG_FILE, ITEM_INDEX_FILE, load_bundle
from sbr_dagster.serving.recommender import Recommender

_POINT_AT_LAKE = f"point --lake / {settings.ENV_DATA_LAKE} at the data lake directory"


def check_definition(definition: str) -> str:
    """``definition`` when it is a session definition name (``user``, ``gap_1h``, ...), else a user error."""
    if not definition.strip():
        raise InputDataError(f"session definition is empty: expected {GRAMMAR}, e.g. gap_1h or user")
    parse_definition(definition)
    return definition


def check_model(model: str) -> str:
    """``model`` when it has trained bundles to serve (``registry.TRAINED``), else a user error."""
    if model in registry.TRAINED:
        return model
    trained = ", ".join(registry.TRAINED)
    if model in registry.BASELINES:
        raise InputDataError(
            f"model {model!r} is a baseline, fitted where it is evaluated: it has no trained model to "
            f"load; use one of {trained}"
        )
    raise InputDataError(f"unknown model {model!r}: use one of {trained}")


def _same_location(a: str | Path, b: str | Path) -> bool:
    a, b = files.as_path(a), files.as_path(b)
    if files.is_remote(a) or files.is_remote(b):
        return str(a).rstrip("/") == str(b).rstrip("/")
    return Path(a).resolve() == Path(b).resolve()


def launch_command(selection: str, lake_root: str | Path, definition: str | None = None) -> str:
    """The command that materializes ``selection`` into ``lake_root`` (and builds ``definition``).

    The pipeline writes to ``settings.lake_root()`` and builds only ``settings.definition_names()``:
    the environment variables are set in front of the command where those differ.
    """
    lake = files.as_path(lake_root)
    env = []
    if not _same_location(lake, settings.lake_root()):
        where = str(lake) if files.is_remote(lake) else str(Path(lake).resolve())
        env.append(f"{settings.ENV_DATA_LAKE}={shlex.quote(where)}")
    if definition is not None and definition not in settings.definition_names():
        env.append(f"{settings.ENV_DEFINITIONS}={shlex.quote(definition)}")
    return " ".join([*env, settings.launch_hint(selection)])


def check_lake(lake_root: str | Path) -> None:
    """A local ``lake_root`` must be an existing directory (an object store is checked when read)."""
    root = files.as_path(lake_root)
    if files.is_remote(root):
        return
    if not root.exists():
        raise InputDataError(
            f"data lake {root} does not exist: {_POINT_AT_LAKE}, or build one there with "
            f"`{launch_command('/'.join(layout.MOVIES), root)}`"
        )
    if not root.is_dir():
        raise InputDataError(f"data lake {root} is a file, not a directory: {_POINT_AT_LAKE}")


def read_movies_table(lake_root: str | Path) -> pl.DataFrame:
    """The lake's movies table, checked against ``schema.MOVIES``."""
    check_lake(lake_root)
    path = layout.table_path(lake_root, layout.MOVIES)
    launch = launch_command("/".join(layout.MOVIES), lake_root)
    if not path.is_file():
        raise InputDataError(
            f"data lake {files.as_path(lake_root)} has no movies table ({path}): materialize it first, "
            f"e.g. `{launch}` (or {_POINT_AT_LAKE} that has it)"
        )
    movies = pl.read_parquet(path)
    problems = schema.schema_errors(movies, schema.MOVIES)
    if problems:
        raise InputDataError(
            f"movies table {path} has an unexpected layout ({'; '.join(problems)}): "
            f"re-materialize it with `{launch}`"
        )
    return movies


def trained_models(lake_root: str | Path) -> list[str]:
    """``<definition>/<model>`` of every bundle directly under a definition of the lake, and
    ``<definition>/tuned/<model>`` of every tuned one."""
    root = files.as_path(lake_root)
    return sorted(
        str(p.parent.relative_to(root))
        for name in registry.TRAINED
        for pattern in (f"*/{name}/{CONFIG_FILE}", f"*/{layout.TUNED}/{name}/{CONFIG_FILE}")
        for p in root.glob(pattern)
    )


def bundle_dir(
    lake_root: str | Path, definition: str, model: str = registry.PRIMARY, *, tuned: bool = False
) -> Path:
    """``<lake>/<definition>/<model>`` (``tuned``: the tuning job's ``<definition>/tuned/<model>``),
    for a valid definition and trained model, inside the lake."""
    check_definition(definition)
    check_model(model)
    lake = files.as_path(lake_root)
    prefix = layout.tuned_prefix(definition) if tuned else (definition,)
    directory = layout.model_dir(lake, prefix, model)
    if not files.is_remote(lake):
        root, resolved = Path(lake).resolve(), Path(directory).resolve()
        if not resolved.is_relative_to(root):
            raise InputDataError(
                f"model directory {directory} resolves to {resolved}, outside the data lake {root}: "
                "the lake's definition and model folders must not link elsewhere"
            )
    return directory


def _trained_hint(lake: Path, none: str = "") -> str:
    found = trained_models(lake)
    return f"; trained models in {lake}: {', '.join(found)}" if found else none


def load_recommender(
    definition: str,
    lake_root: str | Path | None = None,
    *,
    model: str = registry.PRIMARY,
    tuned: bool = False,
    model_dir: str | Path | None = None,
) -> Recommender:
    """The recommender of ``model`` trained on ``definition``: its bundle plus the movies table.

    ``tuned`` takes the tuning job's model (trained with the settings chosen on validation) instead
    of the main job's. ``lake_root`` defaults to ``settings.lake_root()`` (``SBR_DATA_LAKE``);
    ``model_dir`` overrides the bundle location (e.g. a sweep's model), which is then the caller's
    choice and not checked against the lake. Without it, ``definition`` and ``model`` must be valid
    names and the bundle must lie inside the lake.
    """
    lake = files.as_path(lake_root if lake_root is not None else settings.lake_root())
    check_definition(definition)
    check_model(model)
    directory = (
        files.as_path(model_dir)
        if model_dir is not None
        else bundle_dir(lake, definition, model, tuned=tuned)
    )
    movies = read_movies_table(lake)
    if model_dir is None:
        needed = (CONFIG_FILE, ITEM_INDEX_FILE, *registry.model_class(model).weight_files)
        missing = [name for name in needed if not (directory / name).is_file()]
        if missing:
            what = "no such folder" if not directory.exists() else f"missing {', '.join(missing)}"
            asset = "/".join((*layout.tuned_prefix(definition), model)) if tuned else f"{definition}/{model}"
            raise InputDataError(
                f"no {'tuned' if tuned else 'trained'} {model} model for {definition} in {directory} "
                f"({what}): train it first with `{launch_command(f'+{asset}', lake, definition)}`"
                f"{_trained_hint(lake, none=f'; {lake} has no trained models yet')}"
            )
    try:
        trained = load_bundle(directory)
    except InputDataError as error:
        raise InputDataError(f"{error}{_trained_hint(lake)}") from None
    return Recommender.from_bundle(trained, movies)
