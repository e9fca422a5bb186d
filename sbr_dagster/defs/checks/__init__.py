"""Asset checks; the invariants themselves live in :mod:`sbr_dagster.data.validation`."""
