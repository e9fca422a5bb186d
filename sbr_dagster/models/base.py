"""The one interface every model of the study implements, so evaluation, training and serving never branch.

A model is fitted on train ``Sessions``, ranks every next event of other sessions among all items
(``ranking.target_ranks``), scores every target of a replayed timeline (which ``rank_replay`` ranks
both ways), scores the item after arbitrary histories (recommendations), and, when
it has trained weights, saves and loads them. Iterative models report each epoch to the caller's
``after_epoch``, which validates, keeps the best state (``snapshot``/``restore``) and may stop them:
the epoch loop's policy lives in ``sbr_dagster.training``, not in every model.
"""

from __future__ import annotations

import dataclasses
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from sbr_dagster.data.arrays import Sessions
from sbr_dagster.data.timeline import Replay
from sbr_dagster.models.ranking import ScoreChunk, replay_ranks

Log = Callable[[str], object]


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The trainer's word on one epoch, so a model can act on a plateau (decay its learning rate)."""

    stop: bool = False  # end training now
    improved: bool = True  # the best validation score so far; False: a plateau epoch


AfterEpoch = Callable[[dict[str, float]], Verdict]  # one epoch's row in, the trainer's verdict out


class ModelConfig:
    """Mixin for a model's frozen settings dataclass: plain dicts in and out, unknown keys refused."""

    def to_dict(self) -> dict[str, Any]:
        return {
            field.name: list(value) if isinstance(value := getattr(self, field.name), tuple) else value
            for field in dataclasses.fields(self)  # type: ignore[arg-type]
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Self:
        """Build from a plain dict (YAML, run config); an unknown key is an error, never ignored."""
        known = {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} settings {unknown}; known: {sorted(known)}")
        return cls(**values)

    @classmethod
    def field_types(cls) -> dict[str, tuple[Any, Any]]:
        """Each setting's type and default, for front ends that build forms (Dagster config)."""
        hints = typing.get_type_hints(cls)
        return {f.name: (hints[f.name], f.default) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class NoSettings(ModelConfig):
    """For models without a knob."""


class SessionModel(ABC):
    """Next-item model over sessions of dense item_idx."""

    name: ClassVar[str]  # registry key, bundle folder and the metrics tables' ``model``
    config_class: ClassVar[type[ModelConfig]] = NoSettings
    has_weights: ClassVar[bool] = False  # trained state worth a bundle (``save``/``load``)
    weight_files: ClassVar[tuple[str, ...]] = ()  # what ``save`` writes
    # The model's own order among items of equal score (``ranking.target_ranks``); None: ties count
    # against it.
    tie_order: np.ndarray | None = None

    def __init__(self, config: ModelConfig | None = None) -> None:
        self.config = config if config is not None else self.config_class()
        if not isinstance(self.config, self.config_class):
            raise TypeError(f"{self.name} takes a {self.config_class.__name__}, got {type(config).__name__}")

    @abstractmethod
    def fit(
        self, train: Sessions, n_items: int, *, after_epoch: AfterEpoch | None = None, log: Log = print
    ) -> None:
        """Learn from ``train``; iterative models call ``after_epoch(row)`` after each epoch."""

    @abstractmethod
    def rank(self, sessions: Sessions) -> np.ndarray:
        """Rank of every prediction's target among all items, in prediction order (int64)."""

    @abstractmethod
    def score_next(self, histories: Sessions) -> np.ndarray:
        """Scores ``[n_sessions, n_items]`` of the item following each whole session of ``histories``."""

    @abstractmethod
    def replay_scores(self, stream: Replay) -> Iterator[ScoreChunk]:
        """Scores over all candidates of ``stream``'s targets, each from what the model knows before
        it, replaying each user's timeline (``data.timeline.Replay``): ``(rows, scores)`` chunks,
        ``rows`` indexing ``stream.target_events``, every target in one chunk. What ``rank_replay``
        ranks, and what an ensemble combines."""

    def rank_replay(self, stream: Replay) -> tuple[np.ndarray, np.ndarray]:
        """Ranks of ``stream``'s target events among all candidates and among those the viewer has not
        rated before (``ranking.replay_ranks`` over ``replay_scores``)."""
        return replay_ranks(stream, self.replay_scores(stream), self.tie_order)

    @property
    def epochs(self) -> int:
        """Most epochs ``fit`` runs (1 for a model fitted in one pass)."""
        return int(getattr(self.config, "epochs", 1))

    @property
    def patience(self) -> int:
        """Epochs without a better validation score before the trainer stops ``fit``."""
        return int(getattr(self.config, "patience", 1))

    @property
    def device(self) -> str:
        return "CPU"

    def snapshot(self) -> Any:
        """The state ``restore`` brings back (the best epoch's weights); None when there is none."""
        return None

    def restore(self, snapshot: Any) -> None:  # noqa: B027 (nothing to restore by default)
        """Return to a ``snapshot``."""

    def save(self, directory: Path) -> None:
        """Write the trained state into the (empty, local) ``directory``."""
        raise NotImplementedError(f"{self.name} has no trained weights to save")

    @classmethod
    def load(cls, directory: Path, config: ModelConfig) -> SessionModel:
        """The model ``save`` wrote into ``directory``."""
        raise NotImplementedError(f"{cls.name} has no trained weights to load")
