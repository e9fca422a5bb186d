"""Session-based movie recommendation on MovieLens 1M, as a Dagster asset pipeline.

The framework-free logic lives in :mod:`sbr_dagster.core`; :mod:`sbr_dagster.assets`,
:mod:`sbr_dagster.checks` and :mod:`sbr_dagster.resources` only wire it into Dagster.
"""
