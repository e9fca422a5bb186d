"""A trained model together with everything needed to use it: item index, config and training curve.

The item index is copied next to the model so a bundle stays usable even after the split is rebuilt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from sbr_dagster.core import lake
from sbr_dagster.core.errors import InputDataError

MODEL_FILE = "model.keras"
ITEM_INDEX_FILE = "item_index.parquet"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.parquet"
SUMMARY_FILE = "summary.json"  # best epoch, wall time, events/s, device


@dataclass
class ModelBundle:
    model: Any
    item_index: pl.DataFrame
    config: dict[str, Any]
    history: pl.DataFrame
    summary: dict[str, Any]


def save_bundle(
    directory: str | Path,
    model: Any,
    item_index: pl.DataFrame,
    config: dict[str, Any],
    history: pl.DataFrame,
    summary: dict[str, Any] | None = None,
) -> Path:
    from sbr_dagster.core import training

    directory = lake.as_path(directory)
    # One directory swap: a reader never sees a new item index beside an old model.
    with lake.atomic_directory(directory) as staging:
        lake.write_parquet(item_index, staging / ITEM_INDEX_FILE)
        lake.write_parquet(history, staging / HISTORY_FILE)
        write_json(staging / CONFIG_FILE, config)
        write_json(staging / SUMMARY_FILE, summary or {})
        training.save_model(model, staging / MODEL_FILE)
    return directory


def write_json(path: Path, value: dict[str, Any]) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, default=str))


def load_bundle(directory: str | Path) -> ModelBundle:
    from sbr_dagster.core import training

    with lake.local_copy(directory) as local:
        missing = [f for f in (MODEL_FILE, ITEM_INDEX_FILE, CONFIG_FILE) if not (local / f).is_file()]
        if missing:
            name = lake.as_path(directory)
            raise InputDataError(
                f"no trained model in {name} (missing {', '.join(missing)}): materialize the model asset "
                "first, e.g. `dagster asset materialize -m sbr_dagster.definitions "
                f"--select '+{name.parent.name}/gru4rec'`"
            )
        history = (
            pl.read_parquet(local / HISTORY_FILE) if (local / HISTORY_FILE).is_file() else pl.DataFrame()
        )
        return ModelBundle(
            model=training.load_model(local / MODEL_FILE),
            item_index=pl.read_parquet(local / ITEM_INDEX_FILE),
            config=json.loads((local / CONFIG_FILE).read_text()),
            history=history,
            summary=read_summary(local),
        )


def read_summary(directory: str | Path) -> dict[str, Any]:
    """The training summary alone: cheap, no TensorFlow."""
    path = lake.as_path(directory) / SUMMARY_FILE
    return json.loads(path.read_text()) if path.exists() else {}
