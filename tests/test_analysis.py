import base64
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from sbr_dagster.data import schema
from sbr_dagster.data import statistics as analysis
from sbr_dagster.reports import plots

T0 = datetime(2000, 1, 1, tzinfo=UTC)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def frame() -> pl.DataFrame:
    # session 0: 3 events over 100 s; session 1: 1 event; session 2: 2 events 1 day apart (user 2).
    rows = [
        (0, 1, 10, 5, 0),
        (0, 1, 11, 4, 40),
        (0, 1, 12, 4, 100),
        (1, 1, 10, 1, 5000),
        (2, 2, 13, 3, 10_000),
        (2, 2, 10, 3, 10_000 + 86_400),
    ]
    return pl.DataFrame(
        {
            "session_id": [r[0] for r in rows],
            "user_id": [r[1] for r in rows],
            "item_id": [r[2] for r in rows],
            "rating": [r[3] for r in rows],
            "timestamp": [T0 + timedelta(seconds=r[4]) for r in rows],
        },
        schema=schema.SPLIT,
    )


def test_lengths_and_durations_per_session():
    assert analysis.session_lengths(frame()).tolist() == [3, 1, 2]
    assert analysis.session_durations(frame()).tolist() == [100.0, 0.0, 86_400.0]


def test_session_stats_values_and_json():
    stats = analysis.session_stats(frame())
    assert (stats["events"], stats["sessions"], stats["users"], stats["items"]) == (6, 3, 2, 4)
    assert stats["session_length"] == {
        "min": 1.0,
        "median": 2.0,
        "mean": 2.0,
        "p99": np.percentile([3, 1, 2], 99),
        "max": 3.0,
    }
    assert stats["session_duration_s"]["median"] == 100.0
    assert stats["session_duration_s"]["max"] == 86_400.0
    assert stats["time_span"]["first"] == "2000-01-01T00:00:00+00:00"
    assert stats["time_span"]["days"] == (10_000 + 86_400) / 86_400
    assert stats["ratings"] == {1: 1, 2: 0, 3: 2, 4: 2, 5: 1}
    json.dumps(stats)


def test_session_stats_of_an_empty_frame():
    stats = analysis.session_stats(frame().clear())
    assert stats["events"] == 0
    assert stats["session_length"]["mean"] is None
    assert stats["time_span"]["first"] is None
    json.dumps(stats)


def test_histogram_png_linear_log_and_empty():
    for values, log_x in (([1, 2, 2, 3, 50], False), ([0.0, 1.0, 10.0, 1000.0], True), ([], True)):
        png = plots.histogram_png(np.array(values), "t", "x", log_x=log_x)
        assert png.startswith(PNG_MAGIC)


def test_markdown_image_embeds_the_png():
    png = plots.histogram_png(np.array([1, 2, 3]), "t", "x")
    markdown = plots.markdown_image(png, "lengths")
    prefix = "![lengths](data:image/png;base64,"
    assert markdown.startswith(prefix)
    assert markdown.endswith(")")
    assert base64.b64decode(markdown[len(prefix) : -1]) == png
