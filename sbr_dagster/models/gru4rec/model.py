"""GRU4Rec behind the study's model interface (``SessionModel``).

Importing this module stays cheap: TensorFlow loads with the network, when the model is first
fitted, loaded or asked for scores.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from sbr_dagster.data import gaps
from sbr_dagster.data.arrays import Sessions
from sbr_dagster.data.timeline import Replay
from sbr_dagster.models.base import AfterEpoch, Log
from sbr_dagster.models.gru4rec.config import GRU4RecConfig
from sbr_dagster.models.keras_io import KerasModel
from sbr_dagster.models.ranking import ScoreChunk


class GRU4Rec(KerasModel):
    """Session-parallel GRU over one-hot (or embedded) items, scoring every item (Hidasi et al. 2016)."""

    name = "gru4rec"
    config_class = GRU4RecConfig
    network_name = "GRU4Rec"
    config: GRU4RecConfig

    def fit(
        self, train: Sessions, n_items: int, *, after_epoch: AfterEpoch | None = None, log: Log = print
    ) -> None:
        from sbr_dagster.models.gru4rec.training import new_network, train_network

        if self.config.exclude_seen and (repeated := train.repeats()):
            log(
                f"warning: {repeated:,} train events repeat a movie of their session, and exclude_seen "
                "never recommends a movie the session has seen; set exclude_seen: false on data with repeats"
            )
        self.network = new_network(n_items, self.config)
        train_network(self.network, train, self.config, after_epoch, log)

    @property
    def _uses_ratings(self) -> bool:
        return self.config.rating_dim > 0

    def rank(self, sessions: Sessions) -> np.ndarray:
        from sbr_dagster.models.gru4rec.inference import rank_sessions

        return rank_sessions(
            self._fitted(), sessions, ratings=sessions.ratings if self._uses_ratings else None,
            gaps=gaps.session_gaps(sessions) if self.config.gap_dim else None,
            exclude_seen=self.config.exclude_seen,
        )  # fmt: skip

    def replay_scores(self, stream: Replay) -> Iterator[ScoreChunk]:
        from sbr_dagster.models.gru4rec.inference import replay_scores

        return replay_scores(
            self._fitted(), stream, ratings=stream.ratings if self._uses_ratings else None,
            gaps=gaps.replay_gaps(stream) if self.config.gap_dim else None,
            exclude_seen=self.config.exclude_seen,
        )  # fmt: skip

    def score_next(self, histories: Sessions) -> np.ndarray:
        from sbr_dagster.models.gru4rec.inference import score_histories

        timed = self.config.gap_dim > 0
        scores = score_histories(
            self._fitted(), histories, ratings=histories.ratings if self._uses_ratings else None,
            gaps=gaps.session_gaps(histories) if timed else None,
            next_gaps=gaps.next_gaps(histories) if timed else None,
        )  # fmt: skip
        if self.config.exclude_seen:
            rows = np.repeat(np.arange(histories.n_sessions), np.diff(histories.offsets))
            scores[rows, histories.items] = -np.inf
        return scores

    @classmethod
    def network_class(cls) -> type:
        from sbr_dagster.models.gru4rec.network import GRU4RecNetwork

        return GRU4RecNetwork
