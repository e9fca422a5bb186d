"""SASRec behind the study's model interface (``SessionModel``).

Importing this module stays cheap: TensorFlow loads with the network, when the model is first
fitted, loaded or asked for scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sbr_dagster.data.arrays import Sessions, prediction_index
from sbr_dagster.data.timeline import Replay
from sbr_dagster.models.base import AfterEpoch, Log, SessionModel
from sbr_dagster.models.keras_io import load_network, save_network
from sbr_dagster.models.sasrec.config import SASRecConfig

NETWORK_FILE = "model.keras"


class SASRec(SessionModel):
    """Causal self-attention over the current session's last ``max_len`` events, scoring every item."""

    name = "sasrec"
    config_class = SASRecConfig
    has_weights = True
    weight_files = (NETWORK_FILE,)
    config: SASRecConfig

    def __init__(self, config: SASRecConfig | None = None, network: Any = None) -> None:
        super().__init__(config)
        self.network = network

    def fit(
        self, train: Sessions, n_items: int, *, after_epoch: AfterEpoch | None = None, log: Log = print
    ) -> None:
        from sbr_dagster.models.sasrec.training import new_network, train_network

        self.network = new_network(n_items, self.config)
        train_network(self.network, train, self.config, after_epoch, log)

    def rank(self, sessions: Sessions) -> np.ndarray:
        from sbr_dagster.models.sasrec.inference import context_ranks

        session, event = prediction_index(sessions.offsets)
        begin = np.asarray(sessions.offsets, dtype=np.int64)[session]
        items = np.asarray(sessions.items, dtype=np.int64)
        return context_ranks(self._fitted(), self.config, items, begin, event, items[event])[0]

    def rank_replay(self, stream: Replay) -> tuple[np.ndarray, np.ndarray]:
        from sbr_dagster.models.sasrec.inference import replay_ranks

        return replay_ranks(self._fitted(), self.config, stream)

    def score_next(self, histories: Sessions) -> np.ndarray:
        from sbr_dagster.models.sasrec.inference import context_states, scores

        offsets = np.asarray(histories.offsets, dtype=np.int64)
        items = np.asarray(histories.items, dtype=np.int64)
        states = context_states(self._fitted(), self.config, items, offsets[:-1], offsets[1:])
        return scores(self._fitted(), states)

    def _fitted(self):
        if self.network is None:
            raise RuntimeError("SASRec is not fitted: call fit() or load() first")
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
    def load(cls, directory: Path, config: SASRecConfig) -> SASRec:
        from sbr_dagster.models.sasrec.network import SASRecNetwork

        return cls(config, load_network(Path(directory) / NETWORK_FILE, "SASRec", SASRecNetwork))
