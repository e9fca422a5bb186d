"""Named experiments: a session definition, a model and its settings, declared in one YAML file.

The sweep trains and evaluates every experiment through the same assets as the main pipeline; this
module only reads and validates the declarations, so a typo fails at load time, not mid-sweep.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sbr_dagster.data import sessions
from sbr_dagster.errors import InputDataError
from sbr_dagster.models import registry
from sbr_dagster.models.base import ModelConfig
from sbr_dagster.settings import ENV_EXPERIMENTS, ENV_ONLY

DEFAULT_FILE = Path(__file__).resolve().parent / "experiments.yaml"
DEFAULT_MODEL = registry.PRIMARY  # an experiment that names no model changes it
_NAME = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class Experiment:
    name: str
    definition: str
    model: str  # a ``models.registry`` name
    config: ModelConfig  # that model's settings
    compare_to: str | None  # the experiment this one changes one thing of; the leaderboard reports the gain
    change: str  # in words, what differs from ``compare_to``


def experiments_file() -> Path:
    return Path(os.environ.get(ENV_EXPERIMENTS) or DEFAULT_FILE)


def load_experiments(path: str | Path | None = None, only: list[str] | None = None) -> list[Experiment]:
    """Experiments of ``path`` (default: ``SBR_EXPERIMENTS`` or the packaged file), optionally a subset."""
    import yaml

    path = Path(path) if path else experiments_file()
    if only is None and os.environ.get(ENV_ONLY):
        only = [name.strip() for name in os.environ[ENV_ONLY].split(",") if name.strip()]
    if not path.is_file():
        raise InputDataError(f"experiments file {path} does not exist; set {ENV_EXPERIMENTS} to a YAML file")
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise InputDataError(f"{path}{where} is not valid YAML ({problem}); fix that line.") from None
    return parse_experiments(document, str(path), only)


def parse_experiments(
    document: dict[str, Any], origin: str, only: list[str] | None = None
) -> list[Experiment]:
    defaults = document.get("defaults") or {}
    if not isinstance(defaults, dict) or any(not isinstance(v, dict) for v in defaults.values()):
        raise InputDataError(
            f"{origin}: 'defaults' maps a model name to its settings, "
            "e.g. defaults: {gru4rec: {epochs: 4}}"
        )
    for model in defaults:
        _model_name(model, f"{origin}, defaults")
    entries = document.get("experiments") or []
    if not isinstance(entries, list) or not entries:
        raise InputDataError(f"{origin}: 'experiments' must be a non-empty list")
    experiments = [
        _experiment(entry, defaults, f"{origin}, experiment #{i + 1}") for i, entry in enumerate(entries)
    ]
    names = [e.name for e in experiments]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise InputDataError(f"{origin}: experiment names must be unique; repeated: {duplicated}")
    for experiment in experiments:
        if experiment.compare_to is not None and experiment.compare_to not in names:
            raise InputDataError(
                f"{origin}: experiment {experiment.name!r} compares to an unknown experiment "
                f"{experiment.compare_to!r}"
            )
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise InputDataError(f"unknown experiments {unknown}; declared in {origin}: {names}")
        experiments = [e for e in experiments if e.name in only]
    return experiments


def _experiment(entry: Any, defaults: dict[str, Any], where: str) -> Experiment:
    if not isinstance(entry, dict) or "name" not in entry or "definition" not in entry:
        raise InputDataError(f"{where}: each experiment needs at least 'name' and 'definition'")
    name = str(entry["name"])
    if not _NAME.match(name):
        raise InputDataError(f"{where}: name {name!r} may only use letters, digits and '_'")
    unknown = sorted(set(entry) - {"name", "definition", "model", "settings", "compare_to", "change"})
    if unknown:
        raise InputDataError(f"{where} ({name}): unknown keys {unknown}")
    sessions.parse_definition(str(entry["definition"]))
    model = _model_name(entry.get("model", DEFAULT_MODEL), f"{where} ({name})")
    settings = entry.get("settings") or {}
    if not isinstance(settings, dict):
        raise InputDataError(f"{where} ({name}): 'settings' must map {model} settings to values")
    try:
        config = registry.make_config(model, {**defaults.get(model, {}), **settings})
    except InputDataError as error:
        raise InputDataError(f"{where} ({name}): {error}") from error
    return Experiment(
        name=name,
        definition=str(entry["definition"]),
        model=model,
        config=config,
        compare_to=entry.get("compare_to"),
        change=str(entry.get("change", "")),
    )


def _model_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or value not in registry.MODELS:
        raise InputDataError(f"{where}: model must be one of {', '.join(registry.MODELS)}, got {value!r}")
    return value
