"""Turning statistics, tables and charts into Dagster metadata people can read and chart in the UI."""

import warnings
from collections.abc import Mapping
from typing import Any

import dagster as dg
import numpy as np
import polars as pl

from sbr_dagster.data import statistics
from sbr_dagster.lake import files
from sbr_dagster.reports import markdown, plots


def flatten(stats: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested stats dicts become flat ``a/b`` metadata keys; numbers stay numbers so the UI can chart them."""
    flat: dict[str, Any] = {}
    for key, value in stats.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}/"))
        elif isinstance(value, (bool, np.bool_)):
            flat[name] = bool(value)
        elif isinstance(value, (int, np.integer)):
            flat[name] = int(value)
        elif isinstance(value, (float, np.floating)):
            flat[name] = dg.MetadataValue.float(float(value))
        elif value is None:
            flat[name] = dg.MetadataValue.null()
        else:
            flat[name] = str(value)
    return flat


def table_output(frame: pl.DataFrame, metadata: Mapping[str, Any]) -> dg.Output[pl.DataFrame]:
    """A table for the lake, versioned by its content: re-building the same rows marks nothing stale."""
    with warnings.catch_warnings():  # data versions are a beta API of Dagster; it works as documented
        warnings.simplefilter("ignore", dg.BetaWarning)
        version = dg.DataVersion(files.fingerprint(frame))
        return dg.Output(frame, metadata=dict(metadata), data_version=version)


def table_md(frame: pl.DataFrame) -> dg.MetadataValue:
    """A small frame as a Markdown table in the UI."""
    return dg.MetadataValue.md(markdown.table(frame))


def session_plots(frame: pl.DataFrame, title: str) -> dg.MetadataValue:
    """Session-length and session-duration histograms as one markdown block of embedded PNGs."""
    lengths = statistics.session_lengths(frame)
    hours = statistics.session_durations(frame) / 3600.0
    length_png = plots.histogram_png(lengths, f"{title}: session length", "events per session", log_x=True)
    duration_png = plots.histogram_png(
        np.maximum(hours, 1.0 / 60), f"{title}: session duration", "hours (min 1 minute)", log_x=True
    )
    return dg.MetadataValue.md(
        "\n\n".join(
            [
                plots.markdown_image(length_png, "session length histogram"),
                plots.markdown_image(duration_png, "session duration histogram"),
            ]
        )
    )
