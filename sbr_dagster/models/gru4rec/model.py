"""GRU4Rec behind the study's model interface (``SessionModel``).

Importing this module stays cheap: TensorFlow loads with the network, when the model is first
fitted, loaded or asked for scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sbr_dagster.data.arrays import Sessions
from sbr_dagster.data.timeline import Replay
from sbr_dagster.models.base import AfterEpoch, Log, SessionModel
from sbr_dagster.models.gru4rec.config import GRU4RecConfig
from sbr_dagster.models.keras_io import load_network, save_network

NETWORK_FILE = "model.keras"


class GRU4Rec(SessionModel):
    """Session-parallel GRU over one-hot (or embedded) items, scoring every item (Hidasi et al. 2016)."""

    name = "gru4rec"
    config_class = GRU4RecConfig
    has_weights = True
    weight_files = (NETWORK_FILE,)
    config: GRU4RecConfig

    def __init__(self, config: GRU4RecConfig | None = None, network: Any = None) -> None:
        super().__init__(config)
        self.network = network  # the Keras GRU4RecNetwork, once fitted or loaded

    def fit(
        self, train: Sessions, n_items: int, *, after_epoch: AfterEpoch | None = None, log: Log = print
    ) -> None:
        from sbr_dagster.models.gru4rec.training import new_network, train_network

        self.network = new_network(n_items, self.config)
        train_network(self.network, train, self.config, after_epoch, log)

    @property
    def _uses_ratings(self) -> bool:
        return self.config.rating_dim > 0

    def rank(self, sessions: Sessions) -> np.ndarray:
        from sbr_dagster.models.gru4rec.inference import rank_sessions

        return rank_sessions(self._fitted(), sessions, use_ratings=self._uses_ratings)

    def rank_replay(self, stream: Replay) -> tuple[np.ndarray, np.ndarray]:
        from sbr_dagster.models.gru4rec.inference import replay_ranks

        return replay_ranks(self._fitted(), stream, use_ratings=self._uses_ratings)

    def score_next(self, histories: Sessions) -> np.ndarray:
        from sbr_dagster.models.gru4rec.inference import score_histories

        return score_histories(self._fitted(), histories, use_ratings=self._uses_ratings)

    def _fitted(self):
        if self.network is None:
            raise RuntimeError("GRU4Rec is not fitted: call fit() or load() first")
        return self.network

    @property
    def device(self) -> str:
        from sbr_dagster.models.device import device_name

        return device_name()

    def snapshot(self) -> list[np.ndarray]:
        return [w.copy() for w in self._fitted().get_weights()]

    def restore(self, snapshot: list[np.ndarray]) -> None:
        self._fitted().set_weights(snapshot)

    def save(self, directory: Path) -> None:
        save_network(self._fitted(), Path(directory) / NETWORK_FILE)

    @classmethod
    def load(cls, directory: Path, config: GRU4RecConfig) -> GRU4Rec:
        from sbr_dagster.models.gru4rec.network import GRU4RecNetwork

        return cls(config, load_network(Path(directory) / NETWORK_FILE, "GRU4Rec", GRU4RecNetwork))
