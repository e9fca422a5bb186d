"""Entry point: ``dagster dev`` / ``dagster asset materialize -m sbr_dagster.definitions``.

One group of assets per session definition (``SBR_SESSION_DEFINITIONS``), sharing the raw tables.
"""

from __future__ import annotations

import dagster as dg

from sbr_dagster import settings
from sbr_dagster.assets import source
from sbr_dagster.assets.modeling import modeling_assets
from sbr_dagster.assets.preprocessing import preprocessing_assets
from sbr_dagster.checks import evaluation as evaluation_checks
from sbr_dagster.checks import preprocessing as preprocessing_checks
from sbr_dagster.resources import default_resources

PREPROCESSING_KINDS = ("polars",)


def build_definitions(
    definition_names: tuple[str, ...] | None = None, resources: dict[str, object] | None = None
) -> dg.Definitions:
    """The whole pipeline for ``definition_names``; ``resources`` override the environment-driven defaults."""
    names = definition_names or settings.definition_names()
    assets: list = [source.ratings, source.movies]
    checks: list = [preprocessing_checks.ratings_schema, preprocessing_checks.ml1m_fingerprint]
    for name in names:
        assets += preprocessing_assets(name) + modeling_assets(name)
        checks += preprocessing_checks.preprocessing_checks(name) + evaluation_checks.evaluation_checks(name)
    preprocessing = dg.AssetSelection.groups("raw", *names) & dg.AssetSelection.tag("stage", "preprocessing")
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        resources={**default_resources(), **(resources or {})},
        jobs=[
            dg.define_asset_job(
                "preprocess",
                selection=preprocessing,
                description="Raw tables, sessions, cleansing and splits for every definition.",
            ),
            dg.define_asset_job(
                "everything",
                selection=dg.AssetSelection.all(),
                description="Preprocess, train and evaluate every session definition.",
            ),
        ],
        executor=dg.in_process_executor,
    )


defs = build_definitions()
