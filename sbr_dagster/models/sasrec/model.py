"""SASRec behind the study's model interface (``SessionModel``).

Importing this module stays cheap: TensorFlow loads with the network, when the model is first
fitted, loaded or asked for scores.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from sbr_dagster.data.arrays import Sessions, prediction_index
from sbr_dagster.data.timeline import Replay
from sbr_dagster.models.base import AfterEpoch, Log
from sbr_dagster.models.keras_io import KerasModel
from sbr_dagster.models.ranking import ScoreChunk
from sbr_dagster.models.sasrec.config import SASRecConfig


class SASRec(KerasModel):
    """Causal self-attention over the current session's last ``max_len`` events, scoring every item."""

    name = "sasrec"
    config_class = SASRecConfig
    network_name = "SASRec"
    config: SASRecConfig

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
        return context_ranks(self._fitted(), self.config, items, begin, event, items[event])

    def replay_scores(self, stream: Replay) -> Iterator[ScoreChunk]:
        from sbr_dagster.models.sasrec.inference import replay_scores

        return replay_scores(self._fitted(), self.config, stream)

    def score_next(self, histories: Sessions) -> np.ndarray:
        from sbr_dagster.models.sasrec.inference import context_states, scores

        offsets = np.asarray(histories.offsets, dtype=np.int64)
        items = np.asarray(histories.items, dtype=np.int64)
        states = context_states(self._fitted(), self.config, items, offsets[:-1], offsets[1:])
        return scores(self._fitted(), states)

    @classmethod
    def network_class(cls) -> type:
        from sbr_dagster.models.sasrec.network import SASRecNetwork

        return SASRecNetwork
