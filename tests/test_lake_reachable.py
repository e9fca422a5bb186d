"""An object-store lake is checked when a run starts: a missing client or unreachable store is one line."""

import pytest

from sbr_dagster.errors import InputDataError
from sbr_dagster.lake import files


def test_a_reachable_store_passes():
    files.check_reachable("memory://sbr-test/lake")


def test_an_unknown_protocol_names_the_lake():
    with pytest.raises(InputDataError, match=r"data lake nosuchstore://b/lake"):
        files.check_reachable("nosuchstore://b/lake")


def test_a_store_that_fails_names_the_lake_and_the_first_line_of_the_cause(monkeypatch):
    def refuse(self):
        raise PermissionError("Access Denied\nRequestId: 123")

    monkeypatch.setattr(type(files.as_path("memory://x/y")), "exists", refuse)
    with pytest.raises(InputDataError) as caught:
        files.check_reachable("memory://x/y")
    assert str(caught.value).startswith("cannot reach data lake memory://x/y: Access Denied. Check")
    assert "\n" not in str(caught.value)
