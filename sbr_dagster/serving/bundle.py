"""A trained model together with everything needed to use it: item index, settings and training curve.

The item index is copied next to the model so a bundle stays usable even after the split is rebuilt.
Which model it is comes from ``config.json``, so loading one needs no knowledge of the model here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from sbr_dagster.errors import InputDataError
from sbr_dagster.lake import files
from sbr_dagster.models import registry
from sbr_dagster.models.base import SessionModel
from sbr_dagster.settings import launch_hint

ITEM_INDEX_FILE = "item_index.parquet"
CONFIG_FILE = "config.json"  # model name, session definition, settings
HISTORY_FILE = "history.parquet"  # one row per epoch
SUMMARY_FILE = "summary.json"  # best epoch, wall time, events/s, device


@dataclass
class ModelBundle:
    model: SessionModel
    item_index: pl.DataFrame
    config: dict[str, Any]  # CONFIG_FILE: {"model", "definition", "settings"}
    history: pl.DataFrame
    summary: dict[str, Any]


def same_items(loaded: ModelBundle, item_index: pl.DataFrame) -> bool:
    """Whether ``loaded`` was trained on ``item_index`` (else its scores index other movies)."""
    return loaded.item_index.sort("item_idx").equals(item_index.sort("item_idx"))


def save_bundle(
    directory: str | Path,
    model: SessionModel,
    item_index: pl.DataFrame,
    definition: str,
    history: pl.DataFrame,
    summary: dict[str, Any] | None = None,
) -> Path:
    directory = files.as_path(directory)
    # One directory swap: a reader never sees a new item index beside an old model.
    with files.atomic_directory(directory) as staging:
        files.write_parquet(item_index, staging / ITEM_INDEX_FILE)
        files.write_parquet(history, staging / HISTORY_FILE)
        config = {"model": model.name, "definition": definition, "settings": model.config.to_dict()}
        write_json(staging / CONFIG_FILE, config)
        write_json(staging / SUMMARY_FILE, summary or {})
        model.save(staging)
    return directory


def write_json(path: Path, value: dict[str, Any]) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, default=str))


def read_config(directory: Path) -> dict[str, Any]:
    """``config.json``; a bundle from before models had names is GRU4Rec with its settings flat."""
    config = json.loads((directory / CONFIG_FILE).read_text())
    if "model" not in config:
        settings = {k: v for k, v in config.items() if k != "definition"}
        config = {"model": registry.PRIMARY, "definition": config.get("definition"), "settings": settings}
    return config


def load_bundle(directory: str | Path) -> ModelBundle:
    with files.local_copy(directory) as local:
        config = read_config(local) if (local / CONFIG_FILE).is_file() else None
        model_class = registry.model_class(config["model"]) if config else None
        needed = (CONFIG_FILE, ITEM_INDEX_FILE, *(model_class.weight_files if model_class else ()))
        missing = [name for name in needed if not (local / name).is_file()]
        if missing:
            name = files.as_path(directory)
            raise InputDataError(
                f"no trained model in {name} (missing {', '.join(missing)}): materialize the asset that "
                f"trains it first; its key is the folder's path in the lake, e.g. "
                f"`{launch_hint('+user/' + name.name)}`"
            )
        history = (
            pl.read_parquet(local / HISTORY_FILE) if (local / HISTORY_FILE).is_file() else pl.DataFrame()
        )
        settings = registry.make_config(config["model"], config["settings"])
        return ModelBundle(
            model=model_class.load(local, settings),
            item_index=pl.read_parquet(local / ITEM_INDEX_FILE),
            config=config,
            history=history,
            summary=read_summary(local),
        )


def read_summary(directory: str | Path) -> dict[str, Any]:
    """The training summary alone: cheap, no TensorFlow."""
    path = files.as_path(directory) / SUMMARY_FILE
    return json.loads(path.read_text()) if path.exists() else {}
