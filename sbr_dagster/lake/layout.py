"""Where everything lives in the lake, in one place: every reader and writer asks here.

A table is ``<root>/<key...>.parquet`` for its asset key, e.g. ``user/cleansed`` ->
``<root>/user/cleansed.parquet``, except that the four tables of a split, which only make sense
together, share one folder that is replaced as a whole: ``user/train`` ->
``<root>/user/split/train.parquet``. A trained model is a folder too,
``<root>/<prefix...>/<model name>/``, beside the metrics of its prefix (a session definition, or
``experiments/<experiment>``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sbr_dagster.lake.files import as_path, is_remote

Key = tuple[str, ...]

RAW = "raw"
RATINGS: Key = (RAW, "ratings")
MOVIES: Key = (RAW, "movies")
PREPROCESSED = ("sessions", "cleansed")  # per definition, before the split
SPLITS = ("train", "valid", "test")  # the parts of a split, earliest data first
ITEM_INDEX = "item_index"
SPLIT_TABLES = (*SPLITS, ITEM_INDEX)  # what one split writes, per definition, as one unit
SPLIT_DIR = "split"
METRICS = "metrics"
RANKS = "ranks"  # every prediction's rank per model and split, beside the metrics
SAMPLES = "sample_recommendations"
EXPERIMENTS = "experiments"
LEADERBOARD: Key = (EXPERIMENTS, "leaderboard")
TUNING = "tuning"  # per definition: <definition>/tuning/<model> (trials), <definition>/tuned/<model>
TUNED = "tuned"
BLEND = "blend"  # per definition: <definition>/blend (its test metrics), <definition>/blend_ranks
# The shared test of every variant (data.timeline): cut times, candidates, targets, and the
# comparison of every variant's predictions of them.
TIMELINE = "timeline"
CUTS: Key = (TIMELINE, "cuts")
CANDIDATES: Key = (TIMELINE, "candidates")
TARGETS: Key = (TIMELINE, "targets")
COMPARISON: Key = (TIMELINE, "comparison")
DOWNLOAD = (RAW, "download")  # the verified ml-1m.zip and its extraction
STREAMING_SCRATCH = "streaming"  # partitions of a streaming run, removed when it ends


def table_path(root: str | os.PathLike[str], key: Key) -> Path:
    *folders, name = key
    if len(folders) == 1 and name in SPLIT_TABLES:
        folders.append(SPLIT_DIR)
    return as_path(root).joinpath(*folders, f"{name}.parquet")


def split_dir(root: str | os.PathLike[str], definition: str) -> Path:
    """The folder of ``definition``'s ``SPLIT_TABLES``: written by one directory swap."""
    return as_path(root).joinpath(definition, SPLIT_DIR)


def definition_key(definition: str, table: str) -> Key:
    return (definition, table)


def experiment_prefix(experiment: str) -> Key:
    return (EXPERIMENTS, experiment)


def tuning_key(definition: str, model: str) -> Key:
    """The trials table of ``model``'s search on ``definition``."""
    return (definition, TUNING, model)


def best_trial_model(model: str) -> str:
    """The folder under ``<definition>/tuning`` of the search's best trial's fitted model (a bundle)."""
    return f"{model}_best_trial"


def tuned_prefix(definition: str) -> Key:
    """Where the tuned models of ``definition`` keep their metrics, ranks and bundles."""
    return (definition, TUNED)


def model_dir(root: str | os.PathLike[str], prefix: Key, model: str) -> Path:
    return as_path(root).joinpath(*prefix, model)


def download_dir(root: str | os.PathLike[str]) -> Path:
    """Where the ML-1M archive is cached: in the lake when local, else a local temporary folder."""
    if is_remote(root):
        return Path(tempfile.gettempdir()) / "sbr_dagster_download"
    return as_path(root).joinpath(*DOWNLOAD)
