"""Shared fixtures: small data in ML-1M format, and the real ML-1M when ``SBR_ML1M_DIR`` names it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sbr_dagster.testing import synthetic


@pytest.fixture(scope="session")
def ml1m_like_dir(tmp_path_factory) -> Path:
    """A generated dataset in the exact ML-1M file format, big enough to train on in seconds."""
    return synthetic.write_ml1m_like(tmp_path_factory.mktemp("ml1m_like"), n_users=120, n_items=150, seed=7)


@pytest.fixture(scope="session")
def real_ml1m_dir() -> Path:
    directory = os.environ.get("SBR_ML1M_DIR")
    if not directory or not (Path(directory) / "ratings.dat").is_file():
        pytest.skip("real MovieLens 1M not available: set SBR_ML1M_DIR to its directory")
    return Path(directory)
