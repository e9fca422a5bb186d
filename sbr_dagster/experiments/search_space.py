"""The tuning job's search space, declared in YAML beside the experiments and checked on load.

Each model's parameters become Optuna suggestions (``suggest``); a typo in a model or setting name,
or a range a model would refuse, fails when the file is read, as one line naming the file and key.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sbr_dagster.errors import InputDataError
from sbr_dagster.models import registry
from sbr_dagster.settings import ENV_SEARCH_SPACE

DEFAULT_FILE = Path(__file__).resolve().parent / "search_space.yaml"


@dataclass(frozen=True)
class Parameter:
    name: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] | None = None
    fixed: Any = None

    def suggest(self, trial) -> Any:
        """This parameter's value for an Optuna ``trial``."""
        if self.choices is not None:
            # Optuna's choices must be plain scalars: lists (GRU widths) travel as JSON text.
            labels = [json.dumps(choice) for choice in self.choices]
            return json.loads(trial.suggest_categorical(self.name, labels))
        if self.low is None:
            return self.fixed
        if isinstance(self.low, int) and isinstance(self.high, int):
            return trial.suggest_int(self.name, self.low, self.high, step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), step=self.step, log=self.log)

    def trial_value(self, value: Any) -> Any:
        """``value`` as Optuna holds it for this parameter (a choice's JSON label), or None when it lies
        outside the parameter's range or choices (or the parameter is fixed: not Optuna's)."""
        if self.choices is not None:
            label = json.dumps(value)
            return label if label in (json.dumps(choice) for choice in self.choices) else None
        if self.low is None or not isinstance(value, int | float) or not self.low <= value <= self.high:
            return None
        return value

    def values(self) -> list[Any]:
        """Values this parameter can take that a model must accept (the ends of a range)."""
        if self.choices is not None:
            return list(self.choices)
        return [self.fixed] if self.low is None else [self.low, self.high]


@dataclass(frozen=True)
class SearchSpace:
    trials: int
    wall_s: float
    models: dict[str, tuple[Parameter, ...]]

    def suggest(self, model: str, trial) -> dict[str, Any]:
        return {p.name: p.suggest(trial) for p in self.models[model]}

    def of(self, model: str) -> tuple[Parameter, ...]:
        if model not in self.models:
            raise InputDataError(
                f"the search space has no entry for {model!r}; add one under models: or tune one of "
                f"{', '.join(self.models)}"
            )
        return self.models[model]


def search_space_file() -> Path:
    return Path(os.environ.get(ENV_SEARCH_SPACE) or DEFAULT_FILE)


def load_search_space(path: str | Path | None = None) -> SearchSpace:
    import yaml

    path = Path(path) if path else search_space_file()
    if not path.is_file():
        raise InputDataError(
            f"search space file {path} does not exist; set {ENV_SEARCH_SPACE} to a YAML file"
        )
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise InputDataError(f"{path}{where} is not valid YAML; fix that line.") from None
    return parse_search_space(document, str(path))


def _count(value: Any, where: str, *, positive_float: bool = False) -> Any:
    ok = isinstance(value, int | float) if positive_float else isinstance(value, int)
    if isinstance(value, bool) or not ok or value <= 0:
        kind = "a positive number" if positive_float else "an integer >= 1"
        raise InputDataError(f"{where} must be {kind}, got {value!r}")
    return value


def _parameter(name: str, spec: Any, where: str) -> Parameter:
    if not isinstance(spec, dict):
        raise InputDataError(
            f"{where} must be {{low, high}}, {{choices: [...]}} or {{fixed: value}}, got {spec!r}"
        )
    known = {"low", "high", "log", "step", "choices", "fixed"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise InputDataError(f"{where}: unknown keys {unknown}; use low/high (log, step), choices or fixed")
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise InputDataError(f"{where}.choices must be a non-empty list, got {choices!r}")
        return Parameter(name, choices=tuple(choices))
    if "fixed" in spec:
        return Parameter(name, fixed=spec["fixed"])
    low, high = spec.get("low"), spec.get("high")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
    if not numbers or low > high:
        raise InputDataError(f"{where} needs numbers low <= high, got low {low!r}, high {high!r}")
    log = spec.get("log", False)
    if not isinstance(log, bool) or (log and low <= 0):
        raise InputDataError(f"{where}.log must be true or false, and a log range must start above 0")
    return Parameter(name, low=low, high=high, log=log, step=spec.get("step"))


def parse_search_space(document: Any, origin: str) -> SearchSpace:
    if not isinstance(document, dict) or not isinstance(document.get("models"), dict):
        raise InputDataError(f"{origin} needs a 'models:' mapping of model names to their parameters")
    unknown = sorted(set(document) - {"budget", "models"})
    if unknown:
        raise InputDataError(f"{origin}: unknown top-level keys {unknown}; use budget and models")
    budget = document.get("budget") or {}
    if not isinstance(budget, dict) or sorted(set(budget) - {"trials", "wall_s"}):
        raise InputDataError(f"{origin}: budget takes trials and wall_s, got {budget!r}")
    trials = _count(budget.get("trials", 20), f"{origin}: budget.trials")
    wall_s = _count(budget.get("wall_s", 3600), f"{origin}: budget.wall_s", positive_float=True)
    models = {}
    for model, parameters in document["models"].items():
        where = f"{origin}: models.{model}"
        config_class = registry.model_class(model).config_class if model in registry.MODELS else None
        if config_class is None:
            raise InputDataError(f"{where}: unknown model; use one of {', '.join(registry.MODELS)}")
        if not isinstance(parameters, dict) or not parameters:
            raise InputDataError(f"{where} must map settings to ranges")
        fields = config_class.field_types()
        parsed = []
        for name, spec in parameters.items():
            if name not in fields:
                raise InputDataError(f"{where}.{name}: {model} has no such setting; known: {sorted(fields)}")
            parameter = _parameter(name, spec, f"{where}.{name}")
            for value in parameter.values():  # the model must accept every end of the range
                try:
                    registry.make_config(model, {name: value})
                except InputDataError as error:
                    raise InputDataError(f"{where}.{name}: {value!r} is refused ({error})") from None
            parsed.append(parameter)
        models[model] = tuple(parsed)
    return SearchSpace(trials=trials, wall_s=float(wall_s), models=models)
