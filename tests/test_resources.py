"""The preprocessing settings that are not plain numbers: the plausible rating window."""

from datetime import UTC, datetime

import pytest

from sbr_dagster.defs.resources import PreprocessingSettings
from sbr_dagster.errors import InputDataError


def test_the_default_window_runs_from_movielens_start_to_now():
    window = PreprocessingSettings().rating_window()
    assert window.earliest == datetime(1995, 1, 1, tzinfo=UTC)
    assert window.latest_is_now and abs((datetime.now(UTC) - window.latest).total_seconds()) < 60


def test_dates_are_utc_unless_they_name_an_offset():
    window = PreprocessingSettings(earliest_rating="2000-01-01", latest_rating="2003-02-28T12:00:00+02:00")
    window = window.rating_window()
    assert window.earliest == datetime(2000, 1, 1, tzinfo=UTC)
    assert window.latest == datetime(2003, 2, 28, 10, 0, tzinfo=UTC) and not window.latest_is_now


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"latest_rating": "yesterday"}, "latest_rating 'yesterday' is not an ISO date"),
        ({"earliest_rating": "2001-13-01"}, "earliest_rating '2001-13-01' is not an ISO date"),
        ({"earliest_rating": "2030-01-01"}, "earliest_rating 2030-01-01 00:00:00 UTC is after latest_rating"),
    ],
)
def test_a_wrong_window_is_one_line_naming_the_setting(settings, message):
    with pytest.raises(InputDataError, match=message):
        PreprocessingSettings(**settings).rating_window()
