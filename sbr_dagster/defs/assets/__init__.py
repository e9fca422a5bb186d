"""Dagster assets, one module per mission step; each only wires plain functions into the graph."""

from importlib.metadata import version

PREPROCESSING_TAGS = {"stage": "preprocessing"}
# Every asset's code version: a new release of the package marks what it built stale in the UI.
CODE_VERSION = version("sbr_dagster")
MODELING_TAGS = {"stage": "modeling"}
