"""SASRec's network: its tables start independent, and the seed fixes them."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from sbr_dagster.models.sasrec.config import SASRecConfig
from sbr_dagster.models.sasrec.training import new_network


def _tables(seed: int) -> dict[str, np.ndarray]:
    network = new_network(12, SASRecConfig(blocks=1, dim=8, max_len=6, tied=False, seed=seed))
    return {
        "items": np.asarray(network.item_table)[:6],
        "positions": np.asarray(network.position_table),
        "outputs": np.asarray(network.output_table)[:6],
    }


def test_item_position_and_output_tables_start_from_different_draws():
    tables = _tables(0)
    assert not np.allclose(tables["items"], tables["positions"])
    assert not np.allclose(tables["items"], tables["outputs"])
    assert not np.allclose(tables["positions"], tables["outputs"])


def test_the_seed_fixes_the_initial_tables():
    first, again, other = _tables(3), _tables(3), _tables(4)
    for name, table in first.items():
        np.testing.assert_array_equal(table, again[name])
        assert not np.allclose(table, other[name])
