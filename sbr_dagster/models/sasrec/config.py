"""SASRec's settings: the attention stack's shape, its context, the loss's candidates, the epochs."""

from __future__ import annotations

from dataclasses import dataclass

from sbr_dagster.models.base import ModelConfig


@dataclass(frozen=True)
class SASRecConfig(ModelConfig):
    """Everything that defines a SASRec training run.

    The shape follows Klenitskiy & Vasilev's ML-1M setting (2 blocks, 64 dimensions, the last 200
    events, cross-entropy over every item). Batch and learning rate were chosen on the timeline
    validation targets of ``user``: 128 windows per update (58 updates an epoch on ML-1M) reached
    valid Recall@20 0.102 after 3 epochs; 32 at 2e-3, 0.278 after 4; 16 at 2e-3, 0.307 after 8,
    still rising. The epoch count is left to validation (early stopping within ``epochs``).
    """

    blocks: int = 2  # causal self-attention blocks
    dim: int = 64  # item and position embeddings, attention and feed-forward width
    heads: int = 1
    max_len: int = 200  # the most events of the current session a prediction attends to
    # Context windows advance by this many events once a session is longer than max_len, so a
    # prediction attends to between max_len - context_step + 1 and max_len events (1: exactly
    # max_len, at one forward pass per prediction); 0 means max_len // 4.
    context_step: int = 0
    dropout: float = 0.2  # on the embeddings, the attention weights and each residual branch
    tied: bool = True  # score items with the input item table; False: a separate output table
    learning_rate: float = 0.002
    batch_size: int = 16  # windows per update
    epochs: int = 20  # the most epochs; validation stops it earlier (``patience``)
    patience: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        counts = {
            "blocks": self.blocks, "dim": self.dim, "heads": self.heads, "max_len": self.max_len,
            "batch_size": self.batch_size, "epochs": self.epochs, "patience": self.patience,
        }  # fmt: skip
        for name, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} must be a multiple of heads {self.heads}")
        if not isinstance(self.context_step, int) or not 0 <= self.context_step <= self.max_len:
            raise ValueError(f"context_step must be 0..max_len ({self.max_len}), got {self.context_step!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}")

    @property
    def step(self) -> int:
        """How far the context window moves along a long session (``context_step``)."""
        return self.context_step or max(1, self.max_len // 4)

    def network(self) -> dict[str, object]:
        """The settings that shape the network."""
        return {
            "blocks": self.blocks, "dim": self.dim, "heads": self.heads, "max_len": self.max_len,
            "dropout": self.dropout, "tied": self.tied,
        }  # fmt: skip
