"""Dagster assets, one module per mission step; each only wires plain functions into the graph."""

PREPROCESSING_TAGS = {"stage": "preprocessing"}
MODELING_TAGS = {"stage": "modeling"}
