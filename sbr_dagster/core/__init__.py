"""Framework-free core: plain functions over Polars frames and NumPy arrays, testable without Dagster."""
