"""Dagster assets, split by domain; each module only wires core functions into the graph."""

PREPROCESSING_TAGS = {"stage": "preprocessing"}
MODELING_TAGS = {"stage": "modeling"}
