"""Entry point: ``dagster dev`` / ``dagster asset materialize -m sbr_dagster.definitions``.

One group of assets per session definition (``SBR_SESSION_DEFINITIONS``), sharing the raw tables.
"""

from __future__ import annotations

import dagster as dg

from sbr_dagster import settings
from sbr_dagster.assets import source
from sbr_dagster.assets.preprocessing import preprocessing_assets
from sbr_dagster.checks import preprocessing as preprocessing_checks
from sbr_dagster.resources import default_resources


def build_definitions(definition_names: tuple[str, ...] | None = None) -> dg.Definitions:
    names = definition_names or settings.definition_names()
    assets: list = [source.ratings, source.movies]
    checks: list = [preprocessing_checks.ratings_schema, preprocessing_checks.ml1m_fingerprint]
    for name in names:
        assets += preprocessing_assets(name)
        checks += preprocessing_checks.preprocessing_checks(name)
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        resources=default_resources(),
        jobs=[
            dg.define_asset_job("preprocess", selection=dg.AssetSelection.groups("raw", *names)
                                - dg.AssetSelection.assets(*[])),
        ],
        executor=dg.in_process_executor,
    )


defs = build_definitions()
