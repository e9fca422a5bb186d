"""What the lake holds for serving: the movies table and the trained models, found by ``layout``."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from sbr_dagster import settings
from sbr_dagster.data import schema
from sbr_dagster.errors import InputDataError
from sbr_dagster.lake import layout
from sbr_dagster.models import registry
from sbr_dagster.serving.bundle import CONFIG_FILE, load_bundle
from sbr_dagster.serving.recommender import Recommender


def read_movies_table(lake_root: str | Path) -> pl.DataFrame:
    """The lake's movies table, checked against ``schema.MOVIES``."""
    path = layout.table_path(lake_root, layout.MOVIES)
    movies_key = "/".join(layout.MOVIES)
    if not path.is_file():
        raise InputDataError(
            f"no movies table at {path}: materialize it first, e.g. `{settings.launch_hint(movies_key)}` "
            "(or point --lake / SBR_DATA_LAKE at the data lake that has it)"
        )
    movies = pl.read_parquet(path)
    problems = schema.schema_errors(movies, schema.MOVIES)
    if problems:
        raise InputDataError(
            f"movies table {path} has an unexpected layout ({'; '.join(problems)}): "
            f"re-materialize it with `{settings.launch_hint(movies_key)}`"
        )
    return movies


def trained_models(lake_root: str | Path) -> list[str]:
    """``<definition>/<model>`` of every bundle directly under a definition of the lake."""
    root = Path(lake_root)
    return sorted(
        f"{p.parent.parent.name}/{p.parent.name}"
        for name in registry.TRAINED
        for p in root.glob(f"*/{name}/{CONFIG_FILE}")
    )


def load_recommender(
    definition: str,
    lake_root: str | Path | None = None,
    *,
    model: str = registry.PRIMARY,
    model_dir: str | Path | None = None,
) -> Recommender:
    """The recommender of ``model`` trained on ``definition``: its bundle plus the movies table.

    ``lake_root`` defaults to ``settings.lake_root()`` (``SBR_DATA_LAKE``); ``model_dir`` overrides
    the bundle location (e.g. a sweep's model).
    """
    lake = Path(lake_root if lake_root is not None else settings.lake_root())
    registry.model_class(model)
    directory = Path(model_dir) if model_dir is not None else layout.model_dir(lake, (definition,), model)
    movies = read_movies_table(lake)
    try:
        trained = load_bundle(directory)
    except InputDataError as error:
        found = trained_models(lake)
        hint = f"; trained models in {lake}: {', '.join(found)}" if found else ""
        raise InputDataError(f"{error}{hint}") from None
    return Recommender.from_bundle(trained, movies)
