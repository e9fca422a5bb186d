"""A lake with a movies table and two tiny trained GRU4Rec bundles, shared by the serving tests.

Built once per test session: ``test_recommend``, ``test_cli`` and ``test_cli_safety`` use it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from sbr_dagster.data import schema
from sbr_dagster.data.arrays import Sessions
from sbr_dagster.lake import files as lake
from sbr_dagster.lake import layout
from sbr_dagster.models.gru4rec.config import GRU4RecConfig
from sbr_dagster.models.gru4rec.model import GRU4Rec
from sbr_dagster.serving import bundle

N_ITEMS = 12
UNSEEN_ID = 999  # a movie of the movies table that never occurs in training
DEFINITION = "gap_1h"
RATED_DEFINITION = "user"  # its model is rating-aware


def item_ids() -> np.ndarray:
    """Movie ids unlike the dense indices, so any id/index mix-up shows."""
    return (100 + 7 * np.arange(N_ITEMS)).astype(np.int32)


def walk_sessions(seed: int = 0, n_sessions: int = 60, length: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Sessions walking the catalogue in steps of one: item i is followed by item i + 1."""
    starts = np.random.default_rng(seed).integers(0, N_ITEMS, n_sessions)
    items = (starts[:, None] + np.arange(length)) % N_ITEMS
    return items.ravel().astype(np.int32), np.arange(0, items.size + 1, length, dtype=np.int64)


def movies() -> pl.DataFrame:
    ids = [*item_ids().tolist(), UNSEEN_ID]
    return pl.DataFrame(
        {
            "item_id": ids,
            "title": [f"Movie {i}, The" for i in ids],
            "year": [1990 + i % 10 for i in range(len(ids))],
            "genres": [["Drama", "War"] if i % 2 else ["Comedy"] for i in range(len(ids))],
        },
        schema=schema.MOVIES,
    )


def _train_bundle(directory: Path, rating_dim: int, exclude_seen: bool) -> None:
    config = GRU4RecConfig(
        layers=(8,), rating_dim=rating_dim, exclude_seen=exclude_seen, batch_size=8, epochs=1
    )
    model = GRU4Rec(config)
    items, offsets = walk_sessions()
    ratings = np.random.default_rng(1).integers(1, 6, items.size).astype(np.int8)
    model.fit(Sessions(items, offsets, ratings), N_ITEMS, log=lambda _: None)
    item_index = pl.DataFrame(
        {"item_id": item_ids(), "item_idx": np.arange(N_ITEMS), "support": np.bincount(items)},
        schema=schema.ITEM_INDEX,
    )
    bundle.save_bundle(directory, model, item_index, directory.parent.name, pl.DataFrame({"epoch": [1]}))


_LAKES: dict[int, Path] = {}


def build_lake(tmp_path_factory) -> Path:
    """A lake with the movies table, a plain model that scores every movie (``gap_1h``) and a
    rating-aware one that rules out the history (``user``, ``exclude_seen`` as by default).

    Built once per test session: ``test_cli`` reuses it.
    """
    key = id(tmp_path_factory)
    if key not in _LAKES:
        root = tmp_path_factory.mktemp("lake")
        lake.write_parquet(movies(), layout.table_path(root, layout.MOVIES))
        _train_bundle(root / DEFINITION / "gru4rec", rating_dim=0, exclude_seen=False)
        _train_bundle(root / RATED_DEFINITION / "gru4rec", rating_dim=2, exclude_seen=True)
        _LAKES[key] = root
    return _LAKES[key]


def ids(*dense: int) -> list[int]:
    return item_ids()[list(dense)].tolist()
