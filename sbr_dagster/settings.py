"""Where things live and which session definitions exist, read from the environment.

Kept free of Dagster so the CLI, benchmarks and tests resolve paths exactly like the pipeline.
"""

from __future__ import annotations

import os
from pathlib import Path

from sbr_dagster.errors import InputDataError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

ENV_ML1M_DIR = "SBR_ML1M_DIR"
ENV_DATA_LAKE = "SBR_DATA_LAKE"
ENV_DEFINITIONS = "SBR_SESSION_DEFINITIONS"
ENV_EXPERIMENTS = "SBR_EXPERIMENTS"  # another experiments file
ENV_ONLY = "SBR_SWEEP_ONLY"  # comma-separated experiment names: run just these
ENV_SEARCH_SPACE = "SBR_SEARCH_SPACE"  # another search space for the tuning job
ENV_TUNE_MODELS = "SBR_TUNE_MODELS"  # comma-separated models the tuning job tunes (default: the space's)
ENV_PARALLEL_STEPS = "SBR_PARALLEL_STEPS"  # steps a run executes at once (default: one per core)

DEFAULT_DEFINITIONS = ("user", "gap_30m", "gap_1h", "gap_1d")  # what the main job builds


def default_lake_root() -> str:
    """``data_lake/`` of the source checkout when run from one, else ``./data_lake``."""
    if (PROJECT_ROOT / "pyproject.toml").is_file():
        return str(PROJECT_ROOT / "data_lake")
    return str(Path.cwd() / "data_lake")


def lake_root() -> str:
    return os.environ.get(ENV_DATA_LAKE) or default_lake_root()


def ml1m_dir() -> str | None:
    return os.environ.get(ENV_ML1M_DIR) or None


def definition_names() -> tuple[str, ...]:
    """Session definitions to build: ``SBR_SESSION_DEFINITIONS`` (comma-separated) or the four defaults."""
    raw = os.environ.get(ENV_DEFINITIONS, "")
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    return names or DEFAULT_DEFINITIONS


def cores() -> int:
    """The cores this process may run on (its affinity, which a container's CPU set narrows)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parallel_steps() -> int:
    """``SBR_PARALLEL_STEPS``, or one step per core: 1 runs every step in the run's own process."""
    raw = os.environ.get(ENV_PARALLEL_STEPS, "").strip()
    if not raw:
        return cores()
    if not raw.isdigit() or int(raw) < 1:
        raise InputDataError(f"{ENV_PARALLEL_STEPS} must be a whole number >= 1; got {raw!r}.")
    return int(raw)


def threads_per_step() -> int:
    """Each of the parallel steps' share of the cores, at least one thread."""
    return max(1, cores() // parallel_steps())


def tune_models() -> tuple[str, ...]:
    """``SBR_TUNE_MODELS`` (comma-separated), or empty: every model of the search space."""
    raw = os.environ.get(ENV_TUNE_MODELS, "")
    return tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))


def launch_hint(selection: str) -> str:
    """The command that materializes ``selection`` (an asset selection such as ``+user/gru4rec``)."""
    return f"dg launch --assets '{selection}'"
