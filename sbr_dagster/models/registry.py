"""Every model the study knows, by name: adding a model is one module plus one entry here."""

from __future__ import annotations

from typing import Any

from sbr_dagster.errors import InputDataError
from sbr_dagster.models.base import ModelConfig, SessionModel
from sbr_dagster.models.baselines import ItemKNN, Markov, Popularity, SequentialRules
from sbr_dagster.models.gru4rec.model import GRU4Rec
from sbr_dagster.models.neighbours import SKNN, STAN, VSKNN, RecentPopularity
from sbr_dagster.models.sasrec.model import SASRec

MODELS: dict[str, type[SessionModel]] = {
    model.name: model
    for model in (
        GRU4Rec,
        SASRec,
        Popularity,
        RecentPopularity,
        Markov,
        SequentialRules,
        ItemKNN,
        SKNN,
        VSKNN,
        STAN,
    )
}
# Trained by their own asset and kept as a bundle; the rest are fitted where they are evaluated.
TRAINED = tuple(name for name, model in MODELS.items() if model.has_weights)
BASELINES = tuple(name for name, model in MODELS.items() if not model.has_weights)
PRIMARY = GRU4Rec.name  # the study's main model: the main job trains it; experiments change it
REFERENCE = Popularity.name  # what every trained model must beat on test, or it is broken


def model_class(name: str) -> type[SessionModel]:
    if name not in MODELS:
        raise InputDataError(f"unknown model {name!r}: use one of {', '.join(MODELS)}")
    return MODELS[name]


def make_config(name: str, settings: dict[str, Any] | None = None) -> ModelConfig:
    """``name``'s settings from a plain dict, as a one-line user error when one is wrong."""
    try:
        return model_class(name).config_class.from_dict(dict(settings or {}))
    except (TypeError, ValueError) as error:
        raise InputDataError(f"{name} settings: {error}") from error


def build(name: str, settings: dict[str, Any] | ModelConfig | None = None) -> SessionModel:
    """A fresh, unfitted ``name`` model with ``settings`` (a dict or the model's config)."""
    config = settings if isinstance(settings, ModelConfig) else make_config(name, settings)
    return model_class(name)(config)
