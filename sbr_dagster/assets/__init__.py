"""Dagster assets, split by domain; each module only wires core functions into the graph."""
